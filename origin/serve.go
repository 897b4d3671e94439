package origin

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/problem"
	"github.com/tierpix/tierpix/signing"
	"github.com/valyala/fasthttp"
)

// renderVersion is part of every thumbnail ETag and of the name of every disk cache file.
// Bump it when a change to rendering changes the bytes of a variant, so caches downstream do
// not keep the old ones as current and the disk cache does not serve old renders under the
// new ETag (nodes on either side of a rolling upgrade share the directory).
//
// Version 2: thumbnails are forced to the width that the original's aspect ratio gives, which
// moves some widths by a pixel or more.
const renderVersion = "2"

// errNoImage is the answer for links to images that do not exist (any more) and for paths that
// are not links at all: the two are deliberately indistinguishable.
var errNoImage = tierpix.Errorf(tierpix.ENOTFOUND, "No such image.")

// handleImage serves GET and HEAD /i/{signed path}.
func (o *Origin) handleImage(ctx *fasthttp.RequestCtx) {
	now := o.cfg.Now()
	link, err := o.signer.Verify(ctx.Path(), now)
	switch {
	case err == nil:
	case errors.Is(err, signing.ErrMalformed):
		problem.Error(ctx, o.logger, errNoImage)
		return
	case errors.Is(err, signing.ErrSignature):
		problem.Error(ctx, o.logger, tierpix.Errorf(tierpix.EFORBIDDEN, "The link's signature is not valid."))
		return
	case errors.Is(err, signing.ErrExpired):
		problem.Error(ctx, o.logger, tierpix.Errorf(tierpix.EGONE, "The link has expired."))
		return
	default:
		problem.Error(ctx, o.logger, fmt.Errorf("verify link: %w", err))
		return
	}

	m, err := o.lookup(link.ImageID)
	if err != nil {
		problem.Error(ctx, o.logger, err)
		return
	}
	if m.notFound {
		problem.Error(ctx, o.logger, errNoImage)
		return
	}
	if err := authorize(m.tier, link); err != nil {
		problem.Error(ctx, o.logger, err)
		return
	}

	if link.Variant.IsOriginal() {
		o.serveOriginal(ctx, &m, link, now)
		return
	}
	o.serveThumbnail(ctx, &m, link, now)
}

// authorize checks a verified link against the owner's tier as it is now: links outlive tier
// changes, so a signature alone does not grant a variant.
func authorize(tier tierpix.Tier, link signing.Link) error {
	if link.Expires != 0 && !tier.ExpiringLinks {
		return tierpix.Errorf(tierpix.EFORBIDDEN, "The owner's tier does not include expiring links.")
	}
	if link.Variant.IsOriginal() {
		if !tier.OriginalLink {
			return tierpix.Errorf(tierpix.EFORBIDDEN, "The owner's tier does not include the original.")
		}
		return nil
	}
	if !tier.AllowsHeight(link.Variant.Height) {
		return tierpix.Errorf(tierpix.EFORBIDDEN, "The owner's tier does not include %d px thumbnails.", link.Variant.Height)
	}
	return nil
}

// serveOriginal streams the uploaded file. HEAD only stats it.
func (o *Origin) serveOriginal(ctx *fasthttp.RequestCtx, m *metaEntry, link signing.Link, now time.Time) {
	img := &m.img
	etag := `"` + img.ID + `-o"`
	path := o.store.OriginalPath(img.ID)
	if ctx.IsHead() {
		info, err := os.Stat(path)
		if err != nil {
			problem.Error(ctx, o.logger, originalError(img.ID, err))
			return
		}
		if o.writeHeaders(ctx, m, link, now, etag, img.ContentType()) {
			return
		}
		ctx.Response.Header.SetContentLength(int(info.Size()))
		return
	}
	f, err := os.Open(path)
	if err != nil {
		problem.Error(ctx, o.logger, originalError(img.ID, err))
		return
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		problem.Error(ctx, o.logger, fmt.Errorf("stat original %s: %w", img.ID, err))
		return
	}
	if o.writeHeaders(ctx, m, link, now, etag, img.ContentType()) {
		f.Close()
		return
	}
	// fasthttp closes f (an io.Closer) once the body is written or the connection fails.
	ctx.SetBodyStream(f, int(info.Size()))
}

// originalError maps a failure to reach the original: gone means deleted since the lookup.
func originalError(id string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return errNoImage
	}
	return fmt.Errorf("open original %s: %w", id, err)
}

// serveThumbnail answers with the variant at its effective height.
func (o *Origin) serveThumbnail(ctx *fasthttp.RequestCtx, m *metaEntry, link signing.Link, now time.Time) {
	img := &m.img
	eff := link.Variant.Height
	if img.Height > 0 && img.Height < eff {
		eff = img.Height
	}
	etag := `"` + img.ID + "-h" + strconv.Itoa(eff) + "-v" + renderVersion + `"`
	// A 304 needs no body, so a conditional request for a cached variant renders nothing.
	if o.writeHeaders(ctx, m, link, now, etag, img.ContentType()) {
		return
	}
	e, err := o.thumbnail(*img, eff)
	if err != nil {
		ctx.Response.Header.Del(fasthttp.HeaderETag)
		ctx.Response.Header.Del(fasthttp.HeaderLastModified)
		ctx.Response.Header.Del(fasthttp.HeaderExpires)
		problem.Error(ctx, o.logger, err)
		return
	}
	// The cached body is never modified, so fasthttp may send it without a copy.
	ctx.Response.SetBodyRaw(e.body)
}

// writeHeaders sets the representation and caching headers of a 200 and reports whether the
// request's If-None-Match matched etag, in which case it has answered 304 and the caller is
// done. It runs only after verification and authorization.
func (o *Origin) writeHeaders(ctx *fasthttp.RequestCtx, m *metaEntry, link signing.Link, now time.Time, etag, contentType string) bool {
	h := &ctx.Response.Header
	h.Set(fasthttp.HeaderETag, etag)
	maxAge := o.cfg.MaxAge
	if link.Expires != 0 {
		exp := time.Unix(link.Expires, 0)
		maxAge = min(maxAge, max(exp.Sub(now), 0))
		h.Set(fasthttp.HeaderExpires, exp.UTC().Format(http.TimeFormat))
	}
	h.Set(fasthttp.HeaderCacheControl, "public, max-age="+strconv.FormatInt(int64(maxAge/time.Second), 10))
	if m.lastModified != "" {
		h.Set(fasthttp.HeaderLastModified, m.lastModified)
	}
	h.Set(fasthttp.HeaderXContentTypeOptions, "nosniff")
	// The list may arrive over several header lines, which count as one list (RFC 9110 5.3).
	for _, inm := range ctx.Request.Header.PeekAll(fasthttp.HeaderIfNoneMatch) {
		if etagMatches(string(inm), etag) {
			ctx.SetStatusCode(fasthttp.StatusNotModified)
			return true
		}
	}
	ctx.SetContentType(contentType)
	return false
}

// etagMatches implements If-None-Match's weak comparison (RFC 9110 13.1.2): "*" matches any
// current representation, and W/ prefixes are ignored on either side.
func etagMatches(header, etag string) bool {
	etag = strings.TrimPrefix(etag, "W/")
	for _, tag := range strings.Split(header, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
			return true
		}
	}
	return false
}

// ServePreview answers with a thumbnail of image id at height h (or the original's own height
// when smaller) whatever its owner's tier allows, from the same caches as signed links. The
// admin UI serves it behind an admin session; no link reaches it. Its caching headers are
// private: the answer depends on who asks, so no shared cache may keep it.
func (o *Origin) ServePreview(ctx *fasthttp.RequestCtx, id string, h int) {
	if !validID(id) || h < 1 || h > tierpix.MaxThumbnailHeight {
		problem.Error(ctx, o.logger, errNoImage)
		return
	}
	m, err := o.lookup(id)
	if err != nil {
		problem.Error(ctx, o.logger, err)
		return
	}
	if m.notFound {
		problem.Error(ctx, o.logger, errNoImage)
		return
	}
	link := signing.Link{ImageID: id, Variant: signing.Variant{Height: h}}
	o.serveThumbnail(ctx, &m, link, o.cfg.Now())
	if ctx.Response.StatusCode() < 400 {
		ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "private, max-age=300")
	}
}
