package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tierpix/tierpix"
	"github.com/valyala/fasthttp"
)

// adminChangeRow is an audit log entry as the admin pages show it.
type adminChangeRow struct {
	At         adminTime
	Actor      string // "command line" for the operator
	ActorURL   string // the log filtered by this actor
	Action     string // "Changed", "Minted a token for", ...
	ObjectType string
	Object     string
	ObjectURL  string // the object's admin page; it may be gone
	Changes    []string
}

// adminAuditPage is the data of templates/admin_audit.html: the whole log, or one object's
// history, with filters and keyset pagination both ways.
type adminAuditPage struct {
	adminLayout
	Heading    string
	Rows       []adminChangeRow
	Actor      string
	Action     string
	ObjectType string
	ObjectID   string
	Actions    []adminOption
	Types      []adminOption
	Filterable bool // the whole log: the filter form shows
	FirstURL   string
	PrevURL    string
	NextURL    string
}

// adminOption is an option of a select.
type adminOption struct {
	Value, Label string
	Selected     bool
}

// adminActionWords say what an action did, in the log's sentences.
var adminActionWords = map[string]string{
	tierpix.ActionCreate:      "Created",
	tierpix.ActionUpdate:      "Changed",
	tierpix.ActionDelete:      "Deleted",
	tierpix.ActionMintToken:   "Minted a token for",
	tierpix.ActionRevokeToken: "Revoked a token of",
	tierpix.ActionEndSessions: "Signed out everywhere",
	tierpix.ActionPassword:    "Changed their own password",
}

// adminChangeRowOf renders one entry.
func adminChangeRowOf(c *tierpix.Change) adminChangeRow {
	r := adminChangeRow{
		At: adminTimeOf(c.At), Actor: c.Actor, Action: adminActionWords[c.Action],
		ObjectType: c.ObjectType, Object: c.ObjectRepr,
	}
	if c.ActorID == 0 {
		r.Actor = "command line"
		r.ActorURL = "/admin/audit?" + url.Values{"actor": {tierpix.OperatorActor}}.Encode()
	} else {
		r.ActorURL = "/admin/audit?" + url.Values{"actor": {c.Actor}}.Encode()
	}
	if r.Action == "" {
		r.Action = c.Action
	}
	switch c.ObjectType {
	case tierpix.ObjectUser:
		r.ObjectURL = adminUserURL(c.ObjectRepr)
	case tierpix.ObjectTier:
		r.ObjectURL = adminTierURL(c.ObjectID)
	case tierpix.ObjectImage:
		r.ObjectURL = adminImageURL(c.ObjectID)
	}
	for _, f := range c.Fields {
		label := strings.ReplaceAll(f.Field, "_", " ")
		switch {
		case f.Note != "":
			r.Changes = append(r.Changes, label+": "+f.Note)
		case f.Old != "" && f.New != "":
			r.Changes = append(r.Changes, fmt.Sprintf("%s: %s → %s", label, f.Old, f.New))
		case f.New != "":
			r.Changes = append(r.Changes, fmt.Sprintf("%s: %s", label, f.New))
		case f.Old != "":
			r.Changes = append(r.Changes, fmt.Sprintf("%s was %s", label, f.Old))
		}
	}
	return r
}

// adminChangeRows renders entries, in their order.
func adminChangeRows(changes []tierpix.Change) []adminChangeRow {
	rows := make([]adminChangeRow, len(changes))
	for i := range changes {
		rows[i] = adminChangeRowOf(&changes[i])
	}
	return rows
}

// adminRecentActions is how many entries the dashboard shows.
const adminRecentActions = 10

// handleAudit serves GET /admin/audit?actor=&action=&object_type=&object_id=&cursor=: the
// audit log, newest first, filtered.
func (w *Web) handleAudit(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok {
		return
	}
	l := w.layoutFor(ctx, id, sess, "Recent actions")
	q := tierpix.ChangeQuery{
		Actor:      strings.TrimSpace(adminQuery(ctx, "actor")),
		Action:     adminQuery(ctx, "action"),
		ObjectType: adminQuery(ctx, "object_type"),
		ObjectID:   adminQuery(ctx, "object_id"),
	}
	w.auditPage(ctx, l, id, q, "Recent actions", "/admin/audit", true)
}

// handleUserHistory serves GET /admin/users/{username}/history: the changes made to one
// account (by its number: a later user of the same name has a history of their own).
func (w *Web) handleUserHistory(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok {
		return
	}
	username := adminParam(ctx, "username")
	l := w.layoutFor(ctx, id, sess, "History of "+username)
	target, err := w.svc.FindUser(dbContext(), id, username)
	if err != nil {
		w.adminFail(ctx, l, "/admin/users", "find user", err)
		return
	}
	q := tierpix.ChangeQuery{ObjectType: tierpix.ObjectUser, ObjectID: strconv.FormatInt(target.User.ID, 10)}
	w.auditPage(ctx, l, id, q, "History of user "+target.User.Username, adminUserURL(target.User.Username)+"/history", false)
}

// handleTierHistory serves GET /admin/tiers/{name}/history.
func (w *Web) handleTierHistory(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok {
		return
	}
	name := adminParam(ctx, "name")
	l := w.layoutFor(ctx, id, sess, "History of "+name)
	t, err := w.svc.FindTier(dbContext(), name)
	if err != nil {
		w.adminFail(ctx, l, "/admin/tiers", "find tier", err)
		return
	}
	q := tierpix.ChangeQuery{ObjectType: tierpix.ObjectTier, ObjectID: t.Name}
	w.auditPage(ctx, l, id, q, "History of tier "+t.Name, adminTierURL(t.Name)+"/history", false)
}

// handleImageHistory serves GET /admin/images/{id}/history; it stays readable after the
// image is deleted.
func (w *Web) handleImageHistory(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok {
		return
	}
	imageID := adminParam(ctx, "id")
	l := w.layoutFor(ctx, id, sess, "History of image "+imageID)
	if !tierpix.ValidImageID(imageID) {
		w.adminFail(ctx, l, "/admin/images", "image history", tierpix.Errorf(tierpix.ENOTFOUND, "The image does not exist."))
		return
	}
	q := tierpix.ChangeQuery{ObjectType: tierpix.ObjectImage, ObjectID: imageID}
	w.auditPage(ctx, l, id, q, "History of image "+imageID, adminImageURL(imageID)+"/history", false)
}

// auditPage renders a page of the log that q selects; base is the page's own path, for its
// links, which keep the filters when filterable.
func (w *Web) auditPage(ctx *fasthttp.RequestCtx, l adminLayout, id *tierpix.Identity, q tierpix.ChangeQuery, heading, base string, filterable bool) {
	q.Limit = adminPageSize
	if c := adminQuery(ctx, "cursor"); c != "" {
		if err := q.ParseChangeCursor(c); err != nil {
			w.adminFail(ctx, l, base, "audit page", err)
			return
		}
	}
	page, err := w.svc.ListChanges(dbContext(), id, q)
	if err != nil {
		if tierpix.ErrorCode(err) == tierpix.EINVALID {
			q = tierpix.ChangeQuery{Limit: adminPageSize}
			l.Flash = tierpix.ErrorMessage(err)
			page, err = w.svc.ListChanges(dbContext(), id, q)
		}
		if err != nil {
			w.adminFail(ctx, l, "/admin", "list changes", err)
			return
		}
	}
	d := adminAuditPage{adminLayout: l, Heading: heading, Filterable: filterable,
		Actor: q.Actor, Action: q.Action, ObjectType: q.ObjectType, ObjectID: q.ObjectID}
	d.Actions = []adminOption{{Value: "", Label: "Any action"}}
	for _, a := range tierpix.Actions {
		d.Actions = append(d.Actions, adminOption{Value: a, Label: adminActionWords[a], Selected: a == q.Action})
	}
	d.Types = []adminOption{{Value: "", Label: "Anything"}}
	for _, t := range tierpix.ObjectTypes {
		d.Types = append(d.Types, adminOption{Value: t, Label: t, Selected: t == q.ObjectType})
	}
	link := func(cursor string) string {
		v := url.Values{}
		if filterable {
			for k, s := range map[string]string{"actor": q.Actor, "action": q.Action, "object_type": q.ObjectType, "object_id": q.ObjectID} {
				if s != "" {
					v.Set(k, s)
				}
			}
		}
		if cursor != "" {
			v.Set("cursor", cursor)
		}
		if len(v) == 0 {
			return base
		}
		return base + "?" + v.Encode()
	}
	if n := len(page.Changes); n > 0 {
		if page.More {
			d.NextURL = link(tierpix.ChangeCursor(page.Changes[n-1].ID, false))
		}
		if page.Newer {
			d.PrevURL = link(tierpix.ChangeCursor(page.Changes[0].ID, true))
			d.FirstURL = link("")
		}
	}
	d.Rows = adminChangeRows(page.Changes)
	w.render(ctx, http.StatusOK, "admin_audit.html", d)
}
