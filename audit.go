package tierpix

import (
	"context"
	"strconv"
	"time"
)

// Change is one entry of the audit log: who changed what, when, and how. The services
// record one in the transaction of every change they make, so the log holds exactly the
// changes that happened. It never holds a password or a token: a new password is recorded
// as changed, a token by its number.
type Change struct {
	ID         int64
	At         time.Time
	ActorID    int64  // 0: the operator at the command line
	Actor      string // the actor's username; "" for the operator
	Action     string // one of the Action constants
	ObjectType string // one of the Object constants
	ObjectID   string // a user's number, a tier's name, an image's id
	ObjectRepr string // what the object was called: a username, a tier's name, an image's file name
	Fields     []FieldChange
}

// FieldChange is one field a change set: its old and new values as shown to an admin. A
// field set at creation has no Old; a secret has neither, only Note.
type FieldChange struct {
	Field string `json:"field"`
	Old   string `json:"old,omitempty"`
	New   string `json:"new,omitempty"`
	Note  string `json:"note,omitempty"`
}

// What a change did.
const (
	ActionCreate      = "create"
	ActionUpdate      = "update"
	ActionDelete      = "delete"
	ActionMintToken   = "mint_token"
	ActionRevokeToken = "revoke_token"
	ActionEndSessions = "end_sessions"
	ActionPassword    = "change_password" // a user's change of their own password
)

// Actions lists the actions, for filters.
var Actions = []string{ActionCreate, ActionUpdate, ActionDelete, ActionMintToken, ActionRevokeToken, ActionEndSessions, ActionPassword}

// What a change was made to.
const (
	ObjectUser  = "user"
	ObjectTier  = "tier"
	ObjectImage = "image"
)

// ObjectTypes lists the object types, for filters.
var ObjectTypes = []string{ObjectUser, ObjectTier, ObjectImage}

// ChangeQuery selects a page of the audit log, newest first. Empty fields select all.
type ChangeQuery struct {
	Actor      string // username; OperatorActor for the command line
	Action     string
	ObjectType string
	ObjectID   string
	Since      time.Time // inclusive; zero: no bound
	Until      time.Time // exclusive; zero: no bound
	Before     int64     // keyset: entries older than this ID; 0 is the newest
	After      int64     // keyset, backwards: entries newer than this ID, for a previous page
	Limit      int
}

// ChangeCursor names where a page of the log starts: the entries older than the entry id
// (the next page), or, newer, those newer than it (the previous page).
func ChangeCursor(id int64, newer bool) string {
	if newer {
		return "n" + strconv.FormatInt(id, 10)
	}
	return "o" + strconv.FormatInt(id, 10)
}

// ParseChangeCursor sets q's Before or After from a ChangeCursor (EINVALID "cursor" for
// anything else).
func (q *ChangeQuery) ParseChangeCursor(c string) error {
	if len(c) > 1 {
		if id, err := strconv.ParseInt(c[1:], 10, 64); err == nil && id > 0 {
			switch c[0] {
			case 'o':
				q.Before = id
				return nil
			case 'n':
				q.After = id
				return nil
			}
		}
	}
	return Invalid("cursor", "is not a cursor this list handed out")
}

// OperatorActor is how a ChangeQuery names the operator at the command line.
const OperatorActor = "-"

// ChangePage is a page of the audit log, newest first, with what its links need.
type ChangePage struct {
	Changes []Change
	// More says whether entries older than the page exist; Newer, whether newer ones do.
	More, Newer bool
}

// AuditService reads the audit log; admins only.
type AuditService interface {
	ListChanges(ctx context.Context, actor *Identity, q ChangeQuery) (ChangePage, error)
}
