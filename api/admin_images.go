package api

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/tierpix/tierpix"
	"github.com/valyala/fasthttp"
)

// adminImageJSON is an image in the admin's list of everyone's images: its owner instead of
// its links, which belong to the owner.
type adminImageJSON struct {
	ID          string `json:"id"`
	Owner       string `json:"owner"`
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Width       int    `json:"width"`
	Height      int    `json:"height"`
	SizeBytes   int64  `json:"size_bytes"`
	CreatedAt   string `json:"created_at"`
}

// adminCursorOwner is the owner id sealed into the cursors of the admin's image list: 0 is no
// user's id, so those cursors are useless on a user's own list and the other way round.
const adminCursorOwner = 0

// handleListAllImages serves GET /api/admin/images: every user's images, or one owner's with
// ?owner=, newest first, one query a page.
func (a *API) handleListAllImages(ctx *fasthttp.RequestCtx, caller *tierpix.Identity) error {
	limit, err := parseLimit(ctx)
	if err != nil {
		return err
	}
	owner, byOwner := queryArg(ctx, "owner")
	var ownerID int64
	if byOwner {
		target, err := a.svc.FindUser(dbContext(ctx), caller, owner)
		if err != nil {
			return err
		}
		ownerID = target.User.ID
	}
	var cursor int64
	if c, ok := queryArg(ctx, "cursor"); ok {
		if cursor, err = a.decodeSeqCursor(c, adminCursorOwner-ownerID); err != nil {
			return err
		}
	}
	dbctx := dbContext(ctx)
	imgs, prev, next, err := pageBySeq(cursor, limit, func(img *tierpix.OwnedImage) int64 { return img.Seq },
		func(before int64, n int) ([]tierpix.OwnedImage, error) {
			return a.svc.ListAllImages(dbctx, caller, ownerID, before, n)
		},
		func(after int64, n int) ([]tierpix.OwnedImage, error) {
			return a.svc.ListAllImagesOldest(dbctx, caller, ownerID, after, n)
		})
	if err != nil {
		return err
	}
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if byOwner {
		q.Set("owner", owner)
	}
	out := seqPage[adminImageJSON]{}
	a.seqLinks(&out.First, &out.Previous, &out.Next, "/api/admin/images", q, prev, next, adminCursorOwner-ownerID)
	results := make([]adminImageJSON, len(imgs))
	for i := range imgs {
		img := &imgs[i]
		results[i] = adminImageJSON{
			ID:          img.ID,
			Owner:       img.Owner,
			Name:        img.Name,
			ContentType: img.ContentType(),
			Width:       img.Width,
			Height:      img.Height,
			SizeBytes:   img.SizeBytes,
			CreatedAt:   formatTime(img.CreatedAt),
		}
	}
	out.Results = results
	a.writeJSON(ctx, http.StatusOK, out)
	return nil
}

// handleDeleteAnyImage serves DELETE /api/admin/images/{id}: any user's image, as its owner
// would delete it.
func (a *API) handleDeleteAnyImage(ctx *fasthttp.RequestCtx, caller *tierpix.Identity) error {
	return noContent(ctx, a.svc.DeleteAnyImage(dbContext(ctx), caller, pathParam(ctx, "id")))
}
