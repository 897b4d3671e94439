package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/store"
	"github.com/tierpix/tierpix/store/storetest"
)

// TestInTx proves that a transaction's rows, audit entry and files go together: a rollback
// takes back the rows and the original an upload put in place, and a delete's original
// stays on disk until the commit.
func TestInTx(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		boom := errors.New("boom")
		owner := createUser(t, s, "owner", "Basic")

		var img tierpix.Image
		err := s.InTx(ctx, func(ctx context.Context) error {
			img = tierpix.Image{OwnerID: owner.ID, Name: "a.png", Format: "png", Width: 1, Height: 1}
			if err := s.CreateImage(ctx, &img, writeTemp(t, s, "x")); err != nil {
				return err
			}
			if !exists(t, s.OriginalPath(img.ID)) {
				t.Error("the original is not in place inside the transaction")
			}
			if err := s.Record(ctx, &tierpix.Change{Action: tierpix.ActionCreate, ObjectType: tierpix.ObjectImage, ObjectID: img.ID}); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InTx: got %v, want boom", err)
		}
		if _, err := s.FindImage(ctx, img.ID); tierpix.ErrorCode(err) != tierpix.ENOTFOUND {
			t.Fatalf("the image after the rollback: got %v, want ENOTFOUND", err)
		}
		if exists(t, s.OriginalPath(img.ID)) || len(originalFiles(t, s)) != 0 {
			t.Fatal("the original stayed after the rollback")
		}
		page, err := s.ListChanges(ctx, tierpix.ChangeQuery{Limit: 10})
		if err != nil || len(page.Changes) != 0 {
			t.Fatalf("the log after the rollback: got %+v, %v; want it empty", page, err)
		}

		kept := createImage(t, s, owner.ID, "b.png")
		err = s.InTx(ctx, func(ctx context.Context) error {
			if err := s.DeleteImage(ctx, owner.ID, kept.ID); err != nil {
				return err
			}
			if !exists(t, s.OriginalPath(kept.ID)) {
				t.Error("the original went before the commit")
			}
			return s.Record(ctx, &tierpix.Change{Action: tierpix.ActionDelete, ObjectType: tierpix.ObjectImage, ObjectID: kept.ID})
		})
		if err != nil {
			t.Fatal(err)
		}
		if exists(t, s.OriginalPath(kept.ID)) {
			t.Fatal("the original stayed after the commit")
		}
		page, err = s.ListChanges(ctx, tierpix.ChangeQuery{Limit: 10})
		if err != nil || len(page.Changes) != 1 || page.Changes[0].ObjectID != kept.ID {
			t.Fatalf("the log after the commit: got %+v, %v; want the delete", page, err)
		}

		// A tier in use refused inside a transaction is a conflict, not a broken transaction.
		if err := s.CreateTier(ctx, &tierpix.Tier{Name: "Gold", ThumbnailHeights: []int{100}}); err != nil {
			t.Fatal(err)
		}
		createUser(t, s, "goldie", "Gold")
		err = s.InTx(ctx, func(ctx context.Context) error { return s.DeleteTier(ctx, "Gold") })
		wantCode(t, err, tierpix.ECONFLICT)
	})
}

// TestAuditRetention proves the retention sweep deletes entries older than the cut-off, in
// batches, and keeps the rest.
func TestAuditRetention(t *testing.T) {
	storetest.EachClock(t, func(t *testing.T, s *store.Store, c *storetest.Clock) {
		ctx := context.Background()
		for i := range 5 {
			if err := s.Record(ctx, &tierpix.Change{Action: tierpix.ActionUpdate, ObjectType: tierpix.ObjectTier, ObjectID: "Basic"}); err != nil {
				t.Fatal(err)
			}
			if i == 2 {
				c.Advance(48 * time.Hour)
			}
		}
		cutoff := c.Now().Add(-24 * time.Hour)
		n1, err := s.DeleteChangesBefore(ctx, cutoff, 2)
		mustOK(t, err)
		n2, err := s.DeleteChangesBefore(ctx, cutoff, 2)
		mustOK(t, err)
		if n1 != 2 || n2 != 1 {
			t.Fatalf("batches of 2: deleted %d then %d, want 2 then 1", n1, n2)
		}
		page, err := s.ListChanges(ctx, tierpix.ChangeQuery{Limit: 10})
		if err != nil || len(page.Changes) != 2 {
			t.Fatalf("after the sweep: got %+v, %v; want the 2 recent entries", page, err)
		}
	})
}
