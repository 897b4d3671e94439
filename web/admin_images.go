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

// adminPreviewHeight is the height of the thumbnails in the admin's image list.
const adminPreviewHeight = 200

// adminImageRow is an image in the list or on its delete confirmation.
type adminImageRow struct {
	ID         string
	Name       string
	Owner      string
	OwnerURL   string // the list filtered by the owner
	Dimensions string // "640×480"
	Size       string
	Created    adminTime
	PreviewURL string
	PreviewW   int // the preview's size, so the page does not jump as pictures arrive
	PreviewH   int
	DeleteURL  string
	DetailURL  string
}

// adminImageList is the data of GET /admin/images.
type adminImageList struct {
	adminLayout
	Owner      string
	OwnerError string
	Oldest     bool   // oldest first, by the Uploaded heading
	SortURL    string // the Uploaded heading's link: the other order
	Images     []adminImageRow
	NextURL    string // empty on the last page
	FirstURL   string // empty on the first page
}

// adminImageDelete is the data of the image's delete confirmation.
type adminImageDelete struct {
	adminLayout
	Image adminImageRow
}

func adminImageURL(id string) string { return "/admin/images/" + url.PathEscape(id) }

func adminImageRowOf(img tierpix.Image, owner string) adminImageRow {
	// The origin serves the preview at min(200, height), never upscaled, at the original's
	// aspect ratio.
	h := min(adminPreviewHeight, img.Height)
	w := max(1, (img.Width*h+img.Height/2)/max(1, img.Height))
	return adminImageRow{
		ID:         img.ID,
		Name:       img.Name,
		Owner:      owner,
		OwnerURL:   "/admin/images?" + url.Values{"owner": {owner}}.Encode(),
		Dimensions: fmt.Sprintf("%d×%d", img.Width, img.Height),
		Size:       adminBytes(img.SizeBytes),
		Created:    adminTimeOf(img.CreatedAt),
		PreviewURL: adminImageURL(img.ID) + "/preview",
		PreviewW:   w,
		PreviewH:   h,
		DeleteURL:  adminImageURL(img.ID) + "/delete",
		DetailURL:  adminImageURL(img.ID),
	}
}

// handleImageList serves GET /admin/images?owner=&o=&before=: everyone's images (or one
// owner's), newest first (o=created_at: oldest first), 50 a page, keyed on seq.
func (w *Web) handleImageList(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok {
		return
	}
	l := w.layoutFor(ctx, id, sess, "Images")
	d := adminImageList{adminLayout: l, Owner: strings.TrimSpace(adminQuery(ctx, "owner")), Oldest: adminQuery(ctx, "o") == "created_at"}
	dbctx := dbContext()
	var ownerID int64
	if d.Owner != "" {
		d.Title = "Images of " + d.Owner
		owner, err := w.svc.FindUser(dbctx, id, d.Owner)
		if tierpix.ErrorCode(err) == tierpix.ENOTFOUND {
			d.OwnerError = fmt.Sprintf("No user is named %q.", d.Owner)
			w.render(ctx, http.StatusOK, "admin_images.html", d)
			return
		} else if err != nil {
			w.adminFail(ctx, l, "/admin", "find owner", err)
			return
		}
		ownerID = owner.User.ID
	}
	// A before that is not a positive number is the first page.
	before, _ := strconv.ParseInt(adminQuery(ctx, "before"), 10, 64)
	list := w.svc.ListAllImages
	if d.Oldest {
		list = w.svc.ListAllImagesOldest
	}
	images, err := list(dbctx, id, ownerID, max(before, 0), adminPageSize+1)
	if err != nil {
		w.adminFail(ctx, l, "/admin", "list images", err)
		return
	}
	filter := url.Values{}
	if d.Owner != "" {
		filter.Set("owner", d.Owner)
	}
	other := url.Values{}
	for k, v := range filter {
		other[k] = v
	}
	if d.Oldest {
		filter.Set("o", "created_at")
	} else {
		other.Set("o", "created_at")
	}
	d.SortURL = "/admin/images"
	if len(other) > 0 {
		d.SortURL += "?" + other.Encode()
	}
	if len(images) > adminPageSize {
		images = images[:adminPageSize]
		v := url.Values{"before": {strconv.FormatInt(images[len(images)-1].Seq, 10)}}
		for k, vs := range filter {
			v[k] = vs
		}
		d.NextURL = "/admin/images?" + v.Encode()
	}
	if before > 0 {
		d.FirstURL = "/admin/images"
		if len(filter) > 0 {
			d.FirstURL += "?" + filter.Encode()
		}
	}
	d.Images = make([]adminImageRow, len(images))
	for i, img := range images {
		d.Images[i] = adminImageRowOf(img.Image, img.Owner)
	}
	w.render(ctx, http.StatusOK, "admin_images.html", d)
}

// handleImagePreview serves GET /admin/images/{id}/preview: the image at 200 px whatever its
// owner's tier allows, from the origin's caches, to admins only.
func (w *Web) handleImagePreview(ctx *fasthttp.RequestCtx) {
	if _, _, ok := w.requireUser(ctx, true); !ok {
		return
	}
	w.previews.ServePreview(ctx, adminParam(ctx, "id"), adminPreviewHeight)
}

// handleImageConfirm serves GET /admin/images/{id}/delete: the confirmation, with the picture.
func (w *Web) handleImageConfirm(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok {
		return
	}
	l := w.layoutFor(ctx, id, sess, "Delete image")
	img, err := w.svc.FindAnyImage(dbContext(), id, adminParam(ctx, "id"))
	if err != nil {
		w.adminFail(ctx, l, "/admin/images", "find image", err)
		return
	}
	w.render(ctx, http.StatusOK, "admin_image_delete.html", adminImageDelete{adminLayout: l, Image: adminImageRowOf(img.Image, img.Owner)})
}

// handleImageDelete serves POST /admin/images/{id}/delete: the row and the original go, and
// the origin forgets every cached render, so the image's links answer 404 at once.
func (w *Web) handleImageDelete(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok || !w.checkForm(ctx) {
		return
	}
	l := w.layoutFor(ctx, id, sess, "Delete image")
	err := w.svc.DeleteAnyImage(dbContext(), id, adminParam(ctx, "id"))
	if err != nil {
		w.adminFail(ctx, l, "/admin/images", "delete image", err)
		return
	}
	w.adminRedirect(ctx, "/admin/images", "Image deleted.")
}

// adminImageDetail is the data of GET /admin/images/{id}.
type adminImageDetail struct {
	adminLayout
	Image   adminImageRow
	Format  string
	UserURL string
	History []adminChangeRow
}

// handleImageDetail serves GET /admin/images/{id}: the image's preview, details, owner and
// history, with the way to delete it.
func (w *Web) handleImageDetail(ctx *fasthttp.RequestCtx) {
	id, sess, ok := w.requireUser(ctx, true)
	if !ok {
		return
	}
	l := w.layoutFor(ctx, id, sess, "Image")
	img, err := w.svc.FindAnyImage(dbContext(), id, adminParam(ctx, "id"))
	if err != nil {
		w.adminFail(ctx, l, "/admin/images", "find image", err)
		return
	}
	hist, err := w.svc.ListChanges(dbContext(), id, tierpix.ChangeQuery{ObjectType: tierpix.ObjectImage, ObjectID: img.ID, Limit: adminRecentActions})
	if err != nil {
		w.adminFail(ctx, l, "/admin/images", "image history", err)
		return
	}
	l.Title = "Image " + img.Name
	d := adminImageDetail{adminLayout: l, Image: adminImageRowOf(img.Image, img.Owner), Format: strings.ToUpper(img.Format), UserURL: adminUserURL(img.Owner)}
	d.History = adminChangeRows(hist.Changes)
	w.render(ctx, http.StatusOK, "admin_image.html", d)
}
