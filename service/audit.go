package service

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/tierpix/tierpix"
)

var _ tierpix.AuditService = (*Service)(nil)

// audited runs fn, the change, and records c in the audit log in the same transaction, so
// the log holds a change if and only if it happened. fn fills in what it learns (the object's
// id once created, the fields as stored); the actor is set here.
func (s *Service) audited(ctx context.Context, actor *tierpix.Identity, c *tierpix.Change, fn func(ctx context.Context) error) error {
	return s.st.InTx(ctx, func(ctx context.Context) error {
		if err := fn(ctx); err != nil {
			return err
		}
		if actor != nil {
			c.ActorID, c.Actor = actor.User.ID, actor.User.Username
		}
		return s.st.Record(ctx, c)
	})
}

// ListChanges returns a page of the audit log, newest first, for admins.
func (s *Service) ListChanges(ctx context.Context, actor *tierpix.Identity, q tierpix.ChangeQuery) (tierpix.ChangePage, error) {
	if err := tierpix.RequireAdmin(actor); err != nil {
		return tierpix.ChangePage{}, err
	}
	if q.Action != "" && !slices.Contains(tierpix.Actions, q.Action) {
		return tierpix.ChangePage{}, tierpix.Invalid("action", "must be one of "+strings.Join(tierpix.Actions, ", "))
	}
	if q.ObjectType != "" && !slices.Contains(tierpix.ObjectTypes, q.ObjectType) {
		return tierpix.ChangePage{}, tierpix.Invalid("object_type", "must be one of "+strings.Join(tierpix.ObjectTypes, ", "))
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Until.After(q.Since) {
		return tierpix.ChangePage{}, tierpix.Invalid("until", "must be later than since")
	}
	page, err := s.st.ListChanges(ctx, q)
	if err != nil {
		return tierpix.ChangePage{}, fmt.Errorf("list changes: %w", err)
	}
	return page, nil
}

// userObject is how the log names a user: by number, which a later user of the same name
// does not share, and by username.
func userObject(u *tierpix.User) (id, repr string) {
	return strconv.FormatInt(u.ID, 10), u.Username
}

// userFields lists what differs between two versions of a user; nil stands for none (a
// creation or a deletion). A password is only said to have changed.
func userFields(old, cur *tierpix.User) []tierpix.FieldChange {
	var d diff
	addField(&d, "tier", old, cur, func(u *tierpix.User) string { return u.TierName })
	addField(&d, "is_admin", old, cur, func(u *tierpix.User) string { return strconv.FormatBool(u.IsAdmin) })
	if old != nil && cur != nil && old.PasswordHash != cur.PasswordHash {
		d = append(d, tierpix.FieldChange{Field: "password", Note: "changed"})
	}
	return d
}

// tierFields lists what differs between two versions of a tier, as userFields does.
func tierFields(old, cur *tierpix.Tier) []tierpix.FieldChange {
	var d diff
	addField(&d, "thumbnail_heights", old, cur, func(t *tierpix.Tier) string { return joinInts(t.ThumbnailHeights) })
	addField(&d, "original_link", old, cur, func(t *tierpix.Tier) string { return strconv.FormatBool(t.OriginalLink) })
	addField(&d, "expiring_links", old, cur, func(t *tierpix.Tier) string { return strconv.FormatBool(t.ExpiringLinks) })
	return d
}

// imageFields describes an image: as created, or as it was when deleted.
func imageFields(img *tierpix.Image, owner string, deleted bool) []tierpix.FieldChange {
	fields := []tierpix.FieldChange{
		{Field: "owner", New: owner},
		{Field: "name", New: img.Name},
		{Field: "format", New: img.Format},
		{Field: "dimensions", New: fmt.Sprintf("%d×%d", img.Width, img.Height)},
		{Field: "size_bytes", New: strconv.FormatInt(img.SizeBytes, 10)},
	}
	if deleted {
		for i := range fields {
			fields[i].Old, fields[i].New = fields[i].New, ""
		}
	}
	return fields
}

type diff []tierpix.FieldChange

// addField appends the field when its values in old and cur differ; a nil side has no value.
func addField[T any](d *diff, field string, old, cur *T, value func(*T) string) {
	var o, n string
	if old != nil {
		o = value(old)
	}
	if cur != nil {
		n = value(cur)
	}
	if old == nil || cur == nil || o != n {
		*d = append(*d, tierpix.FieldChange{Field: field, Old: o, New: n})
	}
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}
