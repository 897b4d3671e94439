package web

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/tierpix/tierpix"
	"github.com/valyala/fasthttp"
)

// The bulk deletes, django-admin's "delete selected": the list's checkboxes send a GET to a
// confirmation that names everything that goes (and what cannot, and why), whose form posts
// the same selection back. At most a page of items at once, so one post is bounded work.

// adminBulk is one kind of bulk delete.
type adminBulk struct {
	field     string // the checkboxes' name: "user", "id"
	one, many string // "user", "users"
	list      string // the list it starts from
	action    string // where the confirmation posts
	// plan describes what deleting value takes along, or why it cannot go (refused).
	plan func(w *Web, id *tierpix.Identity, value string) (item, refused string, err error)
	// delete deletes value through the services, which check everything again.
	delete func(w *Web, id *tierpix.Identity, value string) error
}

var adminBulkUsers = adminBulk{
	field: "user", one: "user", many: "users", list: "/admin/users", action: "/admin/delete-users",
	plan: func(w *Web, id *tierpix.Identity, name string) (string, string, error) {
		plan, err := w.svc.PlanDeleteUser(dbContext(), id, name)
		switch {
		case tierpix.ErrorCode(err) == tierpix.ENOTFOUND:
			return "", name + ": there is no such user.", nil
		case err != nil:
			return "", "", err
		case plan.Refusal != nil:
			return "", name + ": " + tierpix.ErrorMessage(plan.Refusal), nil
		}
		return fmt.Sprintf("%s, with %s, %s and %s", plan.User.Username,
			adminCount(plan.Images, "image", "images"), adminCount(plan.Tokens, "API token", "API tokens"),
			adminCount(plan.Sessions, "session", "sessions")), "", nil
	},
	delete: func(w *Web, id *tierpix.Identity, name string) error { return w.svc.DeleteUser(dbContext(), id, name) },
}

var adminBulkImages = adminBulk{
	field: "id", one: "image", many: "images", list: "/admin/images", action: "/admin/delete-images",
	plan: func(w *Web, id *tierpix.Identity, imageID string) (string, string, error) {
		img, err := w.svc.FindAnyImage(dbContext(), id, imageID)
		switch {
		case tierpix.ErrorCode(err) == tierpix.ENOTFOUND:
			return "", imageID + ": there is no such image.", nil
		case err != nil:
			return "", "", err
		}
		row := adminImageRowOf(img.Image, img.Owner)
		return fmt.Sprintf("%s of %s (%s, %s)", row.Name, row.Owner, row.Dimensions, row.Size), "", nil
	},
	delete: func(w *Web, id *tierpix.Identity, imageID string) error {
		return w.svc.DeleteAnyImage(dbContext(), id, imageID)
	},
}

func (w *Web) handleUsersConfirm(ctx *fasthttp.RequestCtx)  { w.bulkConfirm(ctx, &adminBulkUsers) }
func (w *Web) handleUsersDelete(ctx *fasthttp.RequestCtx)   { w.bulkDelete(ctx, &adminBulkUsers) }
func (w *Web) handleImagesConfirm(ctx *fasthttp.RequestCtx) { w.bulkConfirm(ctx, &adminBulkImages) }
func (w *Web) handleImagesDelete(ctx *fasthttp.RequestCtx)  { w.bulkDelete(ctx, &adminBulkImages) }

// adminSelected returns the distinct values of a repeated field, in order, and whether they
// are at most a page.
func adminSelected(values [][]byte) ([]string, bool) {
	var out []string
	seen := map[string]bool{}
	for _, v := range values {
		s := string(v)
		if s == "" || seen[s] {
			continue
		}
		seen[s] = true
		out = append(out, s)
	}
	return out, len(out) <= adminPageSize
}

// bulkConfirm serves GET /admin/delete-users?user=a&user=b (or the images'): the one
// confirmation of a bulk delete.
func (w *Web) bulkConfirm(ctx *fasthttp.RequestCtx, k *adminBulk) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok {
		return
	}
	title := "Delete " + k.many
	l := w.layoutFor(ctx, id, sess, title)
	values, ok := adminSelected(ctx.QueryArgs().PeekMulti(k.field))
	d := adminConfirm{adminLayout: l, Heading: title, Back: k.list, Action: k.action}
	if !ok {
		d.Refusal = fmt.Sprintf("Select at most %d %s at once.", adminPageSize, k.many)
		w.render(ctx, http.StatusBadRequest, "admin_confirm.html", d)
		return
	}
	for _, v := range values {
		item, refused, err := k.plan(w, id, v)
		if err != nil {
			w.adminFail(ctx, l, k.list, "plan "+title, err)
			return
		}
		if refused != "" {
			d.Refused = append(d.Refused, refused)
			continue
		}
		d.Items = append(d.Items, item)
		d.Hidden = append(d.Hidden, adminHidden{Name: k.field, Value: v})
	}
	switch {
	case len(d.Items) > 0:
		n := adminCount(len(d.Items), k.one, k.many)
		d.Message = fmt.Sprintf("Delete %s? Their links stop working at once. This cannot be undone.", n)
		d.Button = "Delete " + n
	case len(values) == 0:
		d.Message = fmt.Sprintf("No %s were selected: tick the ones to delete in the list.", k.many)
	default:
		d.Message = fmt.Sprintf("None of the selected %s can be deleted.", k.many)
	}
	w.render(ctx, http.StatusOK, "admin_confirm.html", d)
}

// bulkDelete serves the confirmation's POST: deletes each selected item through the services
// and says what went and what did not.
func (w *Web) bulkDelete(ctx *fasthttp.RequestCtx, k *adminBulk) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok || !w.checkForm(ctx) {
		return
	}
	l := w.layoutFor(ctx, id, sess, "Delete "+k.many)
	values, ok := adminSelected(ctx.PostArgs().PeekMulti(k.field))
	if !ok {
		w.adminFail(ctx, l, k.list, "delete "+k.many, tierpix.Invalid(k.field, fmt.Sprintf("Select at most %d %s at once.", adminPageSize, k.many)))
		return
	}
	var done, failed []string
	for _, v := range values {
		err := k.delete(w, id, v)
		switch tierpix.ErrorCode(err) {
		case "":
			done = append(done, v)
		case tierpix.ENOTFOUND, tierpix.ECONFLICT, tierpix.EFORBIDDEN:
			failed = append(failed, fmt.Sprintf("%s (%s)", v, strings.TrimSuffix(tierpix.ErrorMessage(err), ".")))
		default:
			w.adminFail(ctx, l, k.list, "delete "+k.one, err)
			return
		}
	}
	msg := fmt.Sprintf("Deleted %s.", adminCount(len(done), k.one, k.many))
	if len(failed) > 0 {
		msg += " Not deleted: " + strings.Join(failed, ", ") + "."
	}
	w.adminRedirect(ctx, k.list, msg)
}
