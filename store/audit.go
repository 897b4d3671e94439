package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tierpix/tierpix"
)

// auditRow is an entry of the audit log as stored.
type auditRow struct {
	ID         int64  `db:"id"`
	At         int64  `db:"at"`
	ActorID    int64  `db:"actor_id"`
	Actor      string `db:"actor"`
	Action     string `db:"action"`
	ObjectType string `db:"object_type"`
	ObjectID   string `db:"object_id"`
	ObjectRepr string `db:"object_repr"`
	Fields     string `db:"fields"`
}

func (r auditRow) change() (tierpix.Change, error) {
	c := tierpix.Change{
		ID: r.ID, At: fromMicros(r.At), ActorID: r.ActorID, Actor: r.Actor, Action: r.Action,
		ObjectType: r.ObjectType, ObjectID: r.ObjectID, ObjectRepr: r.ObjectRepr,
	}
	if err := json.Unmarshal([]byte(r.Fields), &c.Fields); err != nil {
		return tierpix.Change{}, fmt.Errorf("audit entry %d: decode fields: %w", r.ID, err)
	}
	return c, nil
}

// Record adds c to the audit log, setting its ID and time. Called within InTx, it commits
// or rolls back with the change it records; that is how the services call it.
func (s *Store) Record(ctx context.Context, c *tierpix.Change) error {
	fields := c.Fields
	if fields == nil {
		fields = []tierpix.FieldChange{}
	}
	js, err := json.Marshal(fields)
	if err != nil {
		return fmt.Errorf("record change: %w", err)
	}
	now, us := s.nowMicros()
	err = s.get(ctx, s.q(ctx), &c.ID, `INSERT INTO audit_log
		(at, actor_id, actor, action, object_type, object_id, object_repr, fields)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		RETURNING id`,
		us, c.ActorID, c.Actor, c.Action, c.ObjectType, c.ObjectID, c.ObjectRepr, string(js))
	if err != nil {
		return dbError(err, "record change", "The audit entry")
	}
	c.At = now
	return nil
}

// ListChanges returns a page of the audit log, newest first, by keyset on the id: entries
// older than q.Before, or, for a previous page, the q.Limit entries just newer than q.After.
// One statement; the indexes of migration 0005 serve each filter alone.
func (s *Store) ListChanges(ctx context.Context, q tierpix.ChangeQuery) (tierpix.ChangePage, error) {
	if q.Limit < 1 {
		return tierpix.ChangePage{}, tierpix.Invalid("limit", "must be at least 1")
	}
	var where []string
	var args []any
	add := func(cond string, arg any) {
		where = append(where, cond)
		args = append(args, arg)
	}
	switch q.Actor {
	case "":
	case tierpix.OperatorActor:
		add("actor_id = ?", 0)
	default:
		add("actor = ?", q.Actor)
	}
	if q.Action != "" {
		add("action = ?", q.Action)
	}
	if q.ObjectType != "" {
		add("object_type = ?", q.ObjectType)
	}
	if q.ObjectID != "" {
		add("object_id = ?", q.ObjectID)
	}
	if !q.Since.IsZero() {
		add("at >= ?", q.Since.UnixMicro())
	}
	if !q.Until.IsZero() {
		add("at < ?", q.Until.UnixMicro())
	}
	backwards := q.After > 0
	order := "DESC"
	switch {
	case backwards:
		add("id > ?", q.After)
		order = "ASC"
	case q.Before > 0:
		add("id < ?", q.Before)
	}
	query := `SELECT id, at, actor_id, actor, action, object_type, object_id, object_repr, fields FROM audit_log`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	// One row more than the page says whether the page has a neighbour on its far side.
	query += ` ORDER BY id ` + order + ` LIMIT ?`
	args = append(args, q.Limit+1)
	var rows []auditRow
	if err := s.sel(ctx, s.q(ctx), &rows, query, args...); err != nil {
		return tierpix.ChangePage{}, dbError(err, "list changes", "The audit entry")
	}
	var page tierpix.ChangePage
	beyond := len(rows) > q.Limit
	if beyond {
		rows = rows[:q.Limit]
	}
	if backwards {
		slices.Reverse(rows)
		page.Newer, page.More = beyond, true
	} else {
		page.More, page.Newer = beyond, q.Before > 0
	}
	page.Changes = make([]tierpix.Change, len(rows))
	for i, r := range rows {
		c, err := r.change()
		if err != nil {
			return tierpix.ChangePage{}, err
		}
		page.Changes[i] = c
	}
	return page, nil
}

// DeleteChangesBefore deletes audit entries older than before, at most batch of them, and
// says how many went: the retention sweep calls it until it deletes fewer than batch, so no
// one statement holds the table for long.
func (s *Store) DeleteChangesBefore(ctx context.Context, before time.Time, batch int) (int, error) {
	res, err := s.exec(ctx, s.q(ctx), `DELETE FROM audit_log WHERE id IN
		(SELECT id FROM audit_log WHERE at < ? ORDER BY at LIMIT ?)`, before.UnixMicro(), batch)
	if err != nil {
		return 0, dbError(err, "delete old changes", "The audit entry")
	}
	return rowsAffected(res, "delete old changes")
}
