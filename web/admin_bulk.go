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

// adminSelected returns the distinct values of a repeated field, in order, at most a page.
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

// handleUsersConfirm serves GET /admin/delete-users?user=a&user=b: the confirmation of a bulk
// delete of users, each with what goes with them.
func (w *Web) handleUsersConfirm(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok {
		return
	}
	l := w.layoutFor(ctx, id, sess, "Delete users")
	names, ok := adminSelected(ctx.QueryArgs().PeekMulti("user"))
	d := adminConfirm{adminLayout: l, Heading: "Delete users", Back: "/admin/users", Action: "/admin/delete-users"}
	if !ok {
		d.Refusal = fmt.Sprintf("Select at most %d users at once.", adminPageSize)
		w.render(ctx, http.StatusBadRequest, "admin_confirm.html", d)
		return
	}
	for _, name := range names {
		plan, err := w.svc.PlanDeleteUser(dbContext(), id, name)
		switch {
		case tierpix.ErrorCode(err) == tierpix.ENOTFOUND:
			d.Refused = append(d.Refused, fmt.Sprintf("%s: there is no such user.", name))
		case err != nil:
			w.adminFail(ctx, l, "/admin/users", "plan user delete", err)
			return
		case plan.Refusal != nil:
			d.Refused = append(d.Refused, fmt.Sprintf("%s: %s", name, tierpix.ErrorMessage(plan.Refusal)))
		default:
			d.Items = append(d.Items, fmt.Sprintf("%s, with %s, %s and %s", plan.User.Username,
				adminCount(plan.Images, "image", "images"), adminCount(plan.Tokens, "API token", "API tokens"),
				adminCount(plan.Sessions, "session", "sessions")))
			d.Hidden = append(d.Hidden, adminHidden{Name: "user", Value: plan.User.Username})
		}
	}
	switch len(d.Items) {
	case 0:
		d.Message = "None of the selected users can be deleted."
		if len(names) == 0 {
			d.Message = "No users were selected: tick the ones to delete in the list."
		}
	default:
		d.Message = fmt.Sprintf("Delete %s? Their images' links stop working. This cannot be undone.", adminCount(len(d.Items), "user", "users"))
		d.Button = "Delete " + adminCount(len(d.Items), "user", "users")
	}
	w.render(ctx, http.StatusOK, "admin_confirm.html", d)
}

// handleUsersDelete serves POST /admin/delete-users: deletes each confirmed user through the
// service, which checks each again, and says what went and what did not.
func (w *Web) handleUsersDelete(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok || !w.checkForm(ctx) {
		return
	}
	l := w.layoutFor(ctx, id, sess, "Delete users")
	names, ok := adminSelected(ctx.PostArgs().PeekMulti("user"))
	if !ok {
		w.adminFail(ctx, l, "/admin/users", "delete users", tierpix.Invalid("user", fmt.Sprintf("Select at most %d users at once.", adminPageSize)))
		return
	}
	var done, failed []string
	for _, name := range names {
		err := w.svc.DeleteUser(dbContext(), id, name)
		switch tierpix.ErrorCode(err) {
		case "":
			done = append(done, name)
		case tierpix.ENOTFOUND, tierpix.ECONFLICT, tierpix.EFORBIDDEN:
			failed = append(failed, fmt.Sprintf("%s (%s)", name, strings.TrimSuffix(tierpix.ErrorMessage(err), ".")))
		default:
			w.adminFail(ctx, l, "/admin/users", "delete user", err)
			return
		}
	}
	w.adminRedirect(ctx, "/admin/users", adminBulkOutcome(done, failed, "user", "users"))
}

// handleImagesConfirm serves GET /admin/delete-images?id=a&id=b: the confirmation of a bulk
// delete of images.
func (w *Web) handleImagesConfirm(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok {
		return
	}
	l := w.layoutFor(ctx, id, sess, "Delete images")
	ids, ok := adminSelected(ctx.QueryArgs().PeekMulti("id"))
	d := adminConfirm{adminLayout: l, Heading: "Delete images", Back: "/admin/images", Action: "/admin/delete-images"}
	if !ok {
		d.Refusal = fmt.Sprintf("Select at most %d images at once.", adminPageSize)
		w.render(ctx, http.StatusBadRequest, "admin_confirm.html", d)
		return
	}
	for _, imageID := range ids {
		img, err := w.svc.FindAnyImage(dbContext(), id, imageID)
		switch {
		case tierpix.ErrorCode(err) == tierpix.ENOTFOUND:
			d.Refused = append(d.Refused, fmt.Sprintf("%s: there is no such image.", imageID))
		case err != nil:
			w.adminFail(ctx, l, "/admin/images", "find image", err)
			return
		default:
			row := adminImageRowOf(img.Image, img.Owner)
			d.Items = append(d.Items, fmt.Sprintf("%s of %s (%s, %s)", row.Name, row.Owner, row.Dimensions, row.Size))
			d.Hidden = append(d.Hidden, adminHidden{Name: "id", Value: img.ID})
		}
	}
	switch len(d.Items) {
	case 0:
		d.Message = "None of the selected images can be deleted."
		if len(ids) == 0 {
			d.Message = "No images were selected: tick the ones to delete in the list."
		}
	default:
		d.Message = fmt.Sprintf("Delete %s? Their links stop working at once. This cannot be undone.", adminCount(len(d.Items), "image", "images"))
		d.Button = "Delete " + adminCount(len(d.Items), "image", "images")
	}
	w.render(ctx, http.StatusOK, "admin_confirm.html", d)
}

// handleImagesDelete serves POST /admin/delete-images.
func (w *Web) handleImagesDelete(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok || !w.checkForm(ctx) {
		return
	}
	l := w.layoutFor(ctx, id, sess, "Delete images")
	ids, ok := adminSelected(ctx.PostArgs().PeekMulti("id"))
	if !ok {
		w.adminFail(ctx, l, "/admin/images", "delete images", tierpix.Invalid("id", fmt.Sprintf("Select at most %d images at once.", adminPageSize)))
		return
	}
	var done, failed []string
	for _, imageID := range ids {
		err := w.svc.DeleteAnyImage(dbContext(), id, imageID)
		switch tierpix.ErrorCode(err) {
		case "":
			done = append(done, imageID)
		case tierpix.ENOTFOUND:
			failed = append(failed, imageID+" (already gone)")
		default:
			w.adminFail(ctx, l, "/admin/images", "delete image", err)
			return
		}
	}
	w.adminRedirect(ctx, "/admin/images", adminBulkOutcome(done, failed, "image", "images"))
}

// adminBulkOutcome says what a bulk delete did.
func adminBulkOutcome(done, failed []string, one, many string) string {
	msg := fmt.Sprintf("Deleted %s.", adminCount(len(done), one, many))
	if len(failed) > 0 {
		msg += " Not deleted: " + strings.Join(failed, ", ") + "."
	}
	return msg
}
