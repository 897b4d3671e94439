package api

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/tierpix/tierpix"
)

// changeJSON is an audit log entry as the API shows it. actor is null for the operator at
// the command line.
type changeJSON struct {
	ID         int64                 `json:"id"`
	At         string                `json:"at"`
	Actor      *string               `json:"actor"`
	Action     string                `json:"action"`
	ObjectType string                `json:"object_type"`
	ObjectID   string                `json:"object_id"`
	ObjectRepr string                `json:"object_repr"`
	Fields     []tierpix.FieldChange `json:"fields"`
}

func newChangeJSON(c *tierpix.Change) changeJSON {
	j := changeJSON{ID: c.ID, At: formatTime(c.At), Action: c.Action, ObjectType: c.ObjectType,
		ObjectID: c.ObjectID, ObjectRepr: c.ObjectRepr, Fields: c.Fields}
	if c.ActorID != 0 {
		j.Actor = &c.Actor
	}
	if j.Fields == nil {
		j.Fields = []tierpix.FieldChange{}
	}
	return j
}

// changePage is a page of the audit log with DRF's links: the first page, the previous
// (newer) and the next (older) one, each null where there is none.
type changePage struct {
	Results  []changeJSON `json:"results"`
	First    string       `json:"first"`
	Previous *string      `json:"previous"`
	Next     *string      `json:"next"`
}

func (p changePage) nextPage() *string            { return p.Next }
func (p changePage) prevPage() (*string, *string) { return p.Previous, &p.First }

// auditFilters are the query parameters that filter the audit log, kept in its links.
var auditFilters = []string{"actor", "action", "object_type", "object_id", "since", "until"}

// handleListChanges serves GET /api/admin/audit: the audit log, newest first, a page at a
// time by keyset on the entry's id, filtered by actor, action, object and time.
func (a *API) handleListChanges(ctx *fasthttp.RequestCtx, caller *tierpix.Identity) error {
	limit, err := parseLimit(ctx)
	if err != nil {
		return err
	}
	q := tierpix.ChangeQuery{Limit: limit}
	q.Actor, _ = queryArg(ctx, "actor")
	q.Action, _ = queryArg(ctx, "action")
	q.ObjectType, _ = queryArg(ctx, "object_type")
	q.ObjectID, _ = queryArg(ctx, "object_id")
	for _, p := range []struct {
		name string
		t    *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		if v, ok := queryArg(ctx, p.name); ok && v != "" {
			if *p.t, err = time.Parse(time.RFC3339, v); err != nil {
				return tierpix.Invalid(p.name, "must be a time such as 2026-12-05T17:00:00Z (RFC 3339)")
			}
		}
	}
	if c, ok := queryArg(ctx, "cursor"); ok {
		s, err := decodeStringCursor(c)
		if err != nil {
			return err
		}
		if err := q.ParseChangeCursor(s); err != nil {
			return err
		}
	}
	page, err := a.svc.ListChanges(dbContext(ctx), caller, q)
	if err != nil {
		return err
	}
	link := func(cursor string) string {
		v := url.Values{"limit": {strconv.Itoa(limit)}}
		for _, f := range auditFilters {
			if s, ok := queryArg(ctx, f); ok && s != "" {
				v.Set(f, s)
			}
		}
		if cursor != "" {
			v.Set("cursor", cursor)
		}
		return a.cfg.PublicURL + "/api/admin/audit?" + v.Encode()
	}
	out := changePage{Results: make([]changeJSON, len(page.Changes)), First: link("")}
	for i := range page.Changes {
		out.Results[i] = newChangeJSON(&page.Changes[i])
	}
	if n := len(page.Changes); n > 0 {
		if page.More {
			u := link(encodeStringCursor(tierpix.ChangeCursor(page.Changes[n-1].ID, false)))
			out.Next = &u
		}
		if page.Newer {
			u := link(encodeStringCursor(tierpix.ChangeCursor(page.Changes[0].ID, true)))
			out.Previous = &u
		}
	}
	a.writeJSON(ctx, http.StatusOK, out)
	return nil
}

// passwordRequest is the body of POST /api/me/password.
type passwordRequest struct {
	CurrentPassword *string `json:"current_password"`
	NewPassword     *string `json:"new_password"`
}

// handleChangePassword serves POST /api/me/password: the caller changes their own password.
// Every web session of theirs ends, as with an admin's change; tokens stay.
func (a *API) handleChangePassword(ctx *fasthttp.RequestCtx, caller *tierpix.Identity) error {
	var req passwordRequest
	if err := decodeJSON(ctx, &req); err != nil {
		return err
	}
	var cur, next string
	if req.CurrentPassword != nil {
		cur = *req.CurrentPassword
	}
	if req.NewPassword != nil {
		next = *req.NewPassword
	}
	addr := a.signin.ClientAddr(ctx.RemoteIP(), ctx.Request.Header.PeekAll("X-Forwarded-For"))
	return noContent(ctx, a.svc.ChangePassword(dbContext(ctx), caller, cur, next, addr))
}
