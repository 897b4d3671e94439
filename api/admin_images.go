package api

import (
	"fmt"
	"net/http"
	"net/url"

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
	var before int64
	if c, ok := queryArg(ctx, "cursor"); ok {
		if before, err = a.decodeSeqCursor(c, adminCursorOwner-ownerID); err != nil {
			return err
		}
	}
	imgs, err := a.svc.ListAllImages(dbContext(ctx), caller, ownerID, before, limit+1)
	if err != nil {
		return err
	}
	var next *string
	if len(imgs) > limit {
		imgs = imgs[:limit]
		q := url.Values{"limit": {fmt.Sprint(limit)}, "cursor": {a.encodeSeqCursor(imgs[limit-1].Seq, adminCursorOwner-ownerID)}}
		if byOwner {
			q.Set("owner", owner)
		}
		u := a.cfg.PublicURL + "/api/admin/images?" + q.Encode()
		next = &u
	}
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
	a.writeJSON(ctx, http.StatusOK, page[adminImageJSON]{Results: results, Next: next})
	return nil
}

// handleDeleteAnyImage serves DELETE /api/admin/images/{id}: any user's image, as its owner
// would delete it.
func (a *API) handleDeleteAnyImage(ctx *fasthttp.RequestCtx, caller *tierpix.Identity) error {
	return noContent(ctx, a.svc.DeleteAnyImage(dbContext(ctx), caller, pathParam(ctx, "id")))
}
