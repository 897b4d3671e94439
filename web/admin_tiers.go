package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode"

	"github.com/tierpix/tierpix"
	"github.com/valyala/fasthttp"
)

// adminTierRow is a tier in the list.
type adminTierRow struct {
	Name          string
	Heights       string
	OriginalLink  bool
	ExpiringLinks bool
	Builtin       bool
	EditURL       string
	DeleteURL     string
}

// adminTierList is the data of GET /admin/tiers.
type adminTierList struct {
	adminLayout
	Tiers []adminTierRow
}

// adminTierForm is the data of the tier form, new or edit. It holds what was typed, so an
// invalid form comes back as the admin left it.
type adminTierForm struct {
	adminLayout
	adminForm
	New           bool
	Action        string
	Name          string
	Heights       string
	OriginalLink  bool
	ExpiringLinks bool
	Builtin       bool
}

// adminTierDelete is the data of the tier's delete confirmation.
type adminTierDelete struct {
	adminLayout
	Name    string
	Action  string
	Refusal string // why the tier cannot be deleted; no delete button then
}

func adminTierURL(name string) string { return "/admin/tiers/" + url.PathEscape(name) }

func adminJoinHeights(hs []int) string {
	s := make([]string, len(hs))
	for i, h := range hs {
		s[i] = strconv.Itoa(h)
	}
	return strings.Join(s, ", ")
}

// adminParseHeights reads "150, 600" or "150 600" into heights. A word that is not a whole
// number is reported as the field's message; the range of each height is Tier.Validate's.
func adminParseHeights(s string) ([]int, string) {
	words := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	hs := make([]int, 0, len(words))
	for _, word := range words {
		h, err := strconv.Atoi(word)
		if err != nil {
			return nil, fmt.Sprintf("%q is not a whole number: give heights in pixels, separated by commas or spaces.", word)
		}
		hs = append(hs, h)
	}
	return hs, ""
}

// handleTierList serves GET /admin/tiers.
func (w *Web) handleTierList(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok {
		return
	}
	l := w.layoutFor(ctx, id, sess, "Tiers")
	tiers, err := w.svc.ListTiers(dbContext())
	if err != nil {
		w.adminFail(ctx, l, "/admin", "list tiers", err)
		return
	}
	d := adminTierList{adminLayout: l, Tiers: make([]adminTierRow, len(tiers))}
	for i, t := range tiers {
		d.Tiers[i] = adminTierRow{
			Name:          t.Name,
			Heights:       adminJoinHeights(t.ThumbnailHeights),
			OriginalLink:  t.OriginalLink,
			ExpiringLinks: t.ExpiringLinks,
			Builtin:       t.Builtin,
			EditURL:       adminTierURL(t.Name),
			DeleteURL:     adminTierURL(t.Name) + "/delete",
		}
	}
	w.render(ctx, http.StatusOK, "admin_tiers.html", d)
}

// handleTierNew serves GET /admin/tiers/new: the empty form.
func (w *Web) handleTierNew(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok {
		return
	}
	w.render(ctx, http.StatusOK, "admin_tier_form.html", adminTierForm{
		adminLayout: w.layoutFor(ctx, id, sess, "Add tier"),
		New:         true,
		Action:      "/admin/tiers/new",
	})
}

// adminTierFromForm reads the posted tier form into d (what was typed) and t (what it means).
// The message is set when the heights are not numbers.
func adminTierFromForm(ctx *fasthttp.RequestCtx, d *adminTierForm) (tierpix.Tier, string) {
	d.Heights = adminPost(ctx, "thumbnail_heights")
	d.OriginalLink = adminChecked(ctx, "original_link")
	d.ExpiringLinks = adminChecked(ctx, "expiring_links")
	hs, msg := adminParseHeights(d.Heights)
	return tierpix.Tier{Name: d.Name, ThumbnailHeights: hs, OriginalLink: d.OriginalLink, ExpiringLinks: d.ExpiringLinks}, msg
}

// adminTierInvalid normalizes and checks a tier from the form; a non-nil form holds every
// problem found. It normalizes t in place: Normalize compacts the heights' array, so a copy
// normalized alone would leave t's heights zeroed at the end.
func adminTierInvalid(t *tierpix.Tier, heightsMsg string) *adminForm {
	t.Normalize()
	err := t.Validate()
	if err == nil && heightsMsg == "" {
		return nil
	}
	f := adminFormFrom(err)
	if heightsMsg != "" {
		// A word that is not a number says more than the range check of what could be read.
		f.Fields["thumbnail_heights"] = heightsMsg
		f.Error = "Please correct the marked fields."
	}
	return &f
}

// handleTierCreate serves POST /admin/tiers/new.
func (w *Web) handleTierCreate(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok || !w.checkForm(ctx) {
		return
	}
	d := adminTierForm{
		adminLayout: w.layoutFor(ctx, id, sess, "Add tier"),
		New:         true,
		Action:      "/admin/tiers/new",
		Name:        strings.TrimSpace(adminPost(ctx, "name")),
	}
	t, msg := adminTierFromForm(ctx, &d)
	if f := adminTierInvalid(&t, msg); f != nil {
		d.adminForm = *f
		w.render(ctx, http.StatusBadRequest, "admin_tier_form.html", d)
		return
	}
	t, err := w.svc.CreateTier(dbContext(), id, t)
	switch tierpix.ErrorCode(err) {
	case "":
		w.adminRedirect(ctx, "/admin/tiers", fmt.Sprintf("Tier %s created.", t.Name))
	case tierpix.ECONFLICT:
		// The one conflict a new tier can meet is its name.
		d.adminForm = adminForm{Error: "Please correct the marked fields.", Fields: map[string]string{"name": tierpix.ErrorMessage(err)}}
		w.render(ctx, http.StatusConflict, "admin_tier_form.html", d)
	case tierpix.EINVALID:
		d.adminForm = adminFormFrom(err)
		w.render(ctx, http.StatusBadRequest, "admin_tier_form.html", d)
	default:
		w.adminFail(ctx, d.adminLayout, "/admin/tiers", "create tier", err)
	}
}

// handleTierEdit serves GET /admin/tiers/{name}: the edit form.
func (w *Web) handleTierEdit(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok {
		return
	}
	name := adminParam(ctx, "name")
	l := w.layoutFor(ctx, id, sess, "Edit tier "+name)
	t, err := w.svc.FindTier(dbContext(), name)
	if err != nil {
		w.adminFail(ctx, l, "/admin/tiers", "find tier", err)
		return
	}
	l.Title = "Edit tier " + t.Name
	w.render(ctx, http.StatusOK, "admin_tier_form.html", adminTierForm{
		adminLayout:   l,
		Action:        adminTierURL(t.Name),
		Name:          t.Name,
		Heights:       adminJoinHeights(t.ThumbnailHeights),
		OriginalLink:  t.OriginalLink,
		ExpiringLinks: t.ExpiringLinks,
		Builtin:       t.Builtin,
	})
}

// handleTierUpdate serves POST /admin/tiers/{name}. The name cannot change (users refer to
// it), so a posted name is ignored. The tier is read and written in one transaction, and a
// new height applies to every existing image at once, as the origin renders lazily.
func (w *Web) handleTierUpdate(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok || !w.checkForm(ctx) {
		return
	}
	name := adminParam(ctx, "name")
	d := adminTierForm{adminLayout: w.layoutFor(ctx, id, sess, "Edit tier "+name), Action: adminTierURL(name), Name: name}
	t, msg := adminTierFromForm(ctx, &d)
	if f := adminTierInvalid(&t, msg); f != nil {
		if cur, err := w.svc.FindTier(dbContext(), name); err == nil {
			d.Builtin = cur.Builtin
		}
		d.adminForm = *f
		w.render(ctx, http.StatusBadRequest, "admin_tier_form.html", d)
		return
	}
	saved, err := w.svc.UpdateTier(dbContext(), id, name, tierpix.TierUpdate{
		ThumbnailHeights: &t.ThumbnailHeights, OriginalLink: &t.OriginalLink, ExpiringLinks: &t.ExpiringLinks,
	})
	d.Builtin = saved.Builtin
	switch tierpix.ErrorCode(err) {
	case "":
		w.adminRedirect(ctx, "/admin/tiers", fmt.Sprintf("Tier %s saved.", saved.Name))
	case tierpix.EINVALID:
		d.adminForm = adminFormFrom(err)
		w.render(ctx, http.StatusBadRequest, "admin_tier_form.html", d)
	default:
		w.adminFail(ctx, d.adminLayout, "/admin/tiers", "update tier", err)
	}
}

// handleTierConfirm serves GET /admin/tiers/{name}/delete: the confirmation. A builtin tier
// gets the reason instead of a button.
func (w *Web) handleTierConfirm(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok {
		return
	}
	name := adminParam(ctx, "name")
	l := w.layoutFor(ctx, id, sess, "Delete tier "+name)
	t, err := w.svc.CheckDeleteTier(dbContext(), id, name)
	if err != nil && tierpix.ErrorCode(err) != tierpix.ECONFLICT {
		w.adminFail(ctx, l, "/admin/tiers", "find tier", err)
		return
	}
	l.Title = "Delete tier " + t.Name
	d := adminTierDelete{adminLayout: l, Name: t.Name, Action: adminTierURL(t.Name) + "/delete"}
	if err != nil {
		// Refused before anyone confirms: builtin, or users are on it.
		d.Refusal = tierpix.ErrorMessage(err)
	}
	w.render(ctx, http.StatusOK, "admin_tier_delete.html", d)
}

// handleTierDelete serves POST /admin/tiers/{name}/delete. Builtin tiers and tiers users are
// on are refused (409) with the reason on the confirmation page.
func (w *Web) handleTierDelete(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok || !w.checkForm(ctx) {
		return
	}
	name := adminParam(ctx, "name")
	l := w.layoutFor(ctx, id, sess, "Delete tier "+name)
	dbctx := dbContext()
	t, err := w.svc.FindTier(dbctx, name)
	if err != nil {
		w.adminFail(ctx, l, "/admin/tiers", "find tier", err)
		return
	}
	l.Title = "Delete tier " + t.Name
	d := adminTierDelete{adminLayout: l, Name: t.Name, Action: adminTierURL(t.Name) + "/delete"}
	err = w.svc.DeleteTier(dbctx, id, t.Name)
	switch tierpix.ErrorCode(err) {
	case "":
		w.adminRedirect(ctx, "/admin/tiers", fmt.Sprintf("Tier %s deleted.", t.Name))
	case tierpix.ECONFLICT:
		d.Refusal = tierpix.ErrorMessage(err)
		w.render(ctx, http.StatusConflict, "admin_tier_delete.html", d)
	default:
		w.adminFail(ctx, l, "/admin/tiers", "delete tier", err)
	}
}
