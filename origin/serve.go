package origin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/imaging"
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
// Version 3: thumbnails of images whose tier has several heights are rendered from an
// intermediate (see the package doc), which changes their pixels slightly.
// Version 4: intermediates are resampled by imaging's own reducer, PNG intermediates are
// encoded as served PNGs are (and served as they are at their own height), and PNG
// thumbnails of photographs are encoded anew (a third smaller).
// Version 5: JPEG thumbnails take a quality per image (imaging.Quality), and intermediates
// are made after a plain first render rather than with it.
const renderVersion = "5"

// errNoImage is the answer for links to images that do not exist (any more) and for paths that
// are not links at all: the two are deliberately indistinguishable.
var errNoImage = tierpix.Errorf(tierpix.ENOTFOUND, "No such image.")

// Header names in fasthttp's normal form ("Etag", not "ETag"), for SetCanonical, which skips
// normalising the name: Peek and Del normalise theirs, and must find these.
var (
	headerETag         = []byte("Etag")
	headerCacheControl = []byte(fasthttp.HeaderCacheControl)
	headerExpires      = []byte(fasthttp.HeaderExpires)
	headerLastModified = []byte(fasthttp.HeaderLastModified)
	headerNoSniff      = []byte(fasthttp.HeaderXContentTypeOptions)
	valueNoSniff       = []byte("nosniff")
	headerCSP          = []byte(fasthttp.HeaderContentSecurityPolicy)
	// valueCSP sandboxes every answer under /i/: images share their origin with the admin UI,
	// and a file a browser is talked into rendering as a document (an original served to a
	// tab, an error page) must run nothing and load nothing there.
	valueCSP = []byte("sandbox; default-src 'none'")
	// A thumbnail link's answer depends on the request's Accept when negotiation is on.
	headerVary  = []byte(fasthttp.HeaderVary)
	valueAccept = []byte(fasthttp.HeaderAccept)
)

// contentTypes are the media types of the formats, made once.
var contentTypes = map[string][]byte{
	tierpix.FormatJPEG: []byte(tierpix.ContentTypeOf(tierpix.FormatJPEG)),
	tierpix.FormatPNG:  []byte(tierpix.ContentTypeOf(tierpix.FormatPNG)),
	tierpix.FormatWebP: []byte(tierpix.ContentTypeOf(tierpix.FormatWebP)),
}

// contentTypeOf returns the media type of format as bytes to set.
func contentTypeOf(format string) []byte {
	if ct, ok := contentTypes[format]; ok {
		return ct
	}
	return []byte(tierpix.ContentTypeOf(format))
}

// variantETag is the ETag of image id's variant v: "{id}-h{eff}-v{version}", with "-webp"
// after the height for the WebP rendering, so that each format has its own.
func variantETag(id string, v int) []byte {
	return appendVariantETag(nil, id, v)
}

// appendVariantETag appends the ETag of image id's variant v to dst.
func appendVariantETag(dst []byte, id string, v int) []byte {
	dst = append(append(append(dst, '"'), id...), "-h"...)
	dst = strconv.AppendInt(dst, int64(variantHeight(v)), 10)
	if v&webpVariant != 0 {
		dst = append(dst, "-webp"...)
	}
	return append(append(dst, "-v"+renderVersion...), '"')
}

// acceptsWebP reports whether an Accept header lists image/webp with a quality above 0 (RFC
// 9110 12.5.1). Only an explicit image/webp counts: "image/*" and "*/*" are sent by clients
// that cannot show WebP too. It allocates nothing, as it runs on every thumbnail request.
func acceptsWebP(accept []byte) bool {
	for len(accept) > 0 {
		var item []byte
		item, accept, _ = bytes.Cut(accept, []byte(","))
		mt, params, _ := bytes.Cut(item, []byte(";"))
		if !bytes.EqualFold(bytes.TrimSpace(mt), []byte("image/webp")) {
			continue
		}
		for len(params) > 0 {
			var p []byte
			p, params, _ = bytes.Cut(params, []byte(";"))
			name, val, _ := bytes.Cut(p, []byte("="))
			if bytes.EqualFold(bytes.TrimSpace(name), []byte("q")) && zeroQuality(bytes.TrimSpace(val)) {
				return false
			}
		}
		return true
	}
	return false
}

// zeroQuality reports whether a qvalue is 0 ("0", "0.", "0.0" to "0.000").
func zeroQuality(q []byte) bool {
	if len(q) == 0 || q[0] != '0' {
		return false
	}
	for _, c := range q[1:] {
		if c != '.' && c != '0' {
			return false
		}
	}
	return true
}

// linkSlots is the size of the table of verified paths: enough for the links that are hot at
// any moment (a miss costs one HMAC, about a microsecond), at some 200 bytes a slot in use.
const linkSlots = 1 << 14

// linkWays is how many slots a path may take: the table is set-associative, so that a few
// thousand hot links do not keep evicting each other (direct-mapped, 2 000 links in 16 384
// slots left one in nine of them sharing a slot with another, and each such request paid an
// HMAC and an allocation).
const linkWays = 4

// linkCache remembers link paths that verified, so that a request for a link seen before
// skips the HMAC and the parse. A path's hash picks a set of linkWays slots; a new path takes
// a free slot of its set, or replaces one in turn. Only paths that verified (and had not
// expired) are put in, the Signer's keys never change, and a hit compares the whole path, so
// a slot answers exactly what Verify would, expiry aside, which is checked on every hit.
// Slots are read with atomic loads and written only on a miss, so hits on different cores
// share no written memory.
type linkCache struct {
	seed  maphash.Seed
	slots []atomic.Pointer[linkSlot]
	turn  atomic.Uint32 // picks the slot a put replaces when its set is full
}

// linkSlot is a verified path, its link, and the metadata entry its last request used.
type linkSlot struct {
	hash uint64
	path string
	link signing.Link
	meta atomic.Pointer[metaEntry]
}

func (c *linkCache) init() {
	c.seed = maphash.MakeSeed()
	c.slots = make([]atomic.Pointer[linkSlot], linkSlots)
}

// set returns the slots that path, of hash h, may take.
func (c *linkCache) set(h uint64) []atomic.Pointer[linkSlot] {
	i := int(h&(linkSlots/linkWays-1)) * linkWays
	return c.slots[i : i+linkWays : i+linkWays]
}

// get returns the slot of path, or nil.
func (c *linkCache) get(path []byte) *linkSlot {
	h := maphash.Bytes(c.seed, path)
	set := c.set(h)
	for i := range set {
		if s := set[i].Load(); s != nil && s.hash == h && s.path == string(path) {
			return s
		}
	}
	return nil
}

// put remembers that path verified as link.
func (c *linkCache) put(path []byte, link signing.Link) *linkSlot {
	h := maphash.Bytes(c.seed, path)
	s := &linkSlot{hash: h, path: string(path), link: link}
	set := c.set(h)
	for i := range set {
		if set[i].CompareAndSwap(nil, s) {
			return s
		}
	}
	set[c.turn.Add(1)%linkWays].Store(s)
	return s
}

// verify returns the slot of a request path that verifies at now, from the cache of verified
// paths or by the Signer; on failure it has answered the request.
func (o *Origin) verify(ctx *fasthttp.RequestCtx, now time.Time) *linkSlot {
	path := ctx.Path()
	if s := o.links.get(path); s != nil {
		if s.link.Expires != 0 && now.Unix() >= s.link.Expires {
			problem.Error(ctx, o.logger, tierpix.Errorf(tierpix.EGONE, "The link has expired."))
			return nil
		}
		return s
	}
	link, err := o.signer.Verify(path, now)
	switch {
	case err == nil:
		return o.links.put(path, link)
	case errors.Is(err, signing.ErrMalformed):
		problem.Error(ctx, o.logger, errNoImage)
	case errors.Is(err, signing.ErrSignature):
		problem.Error(ctx, o.logger, tierpix.Errorf(tierpix.EFORBIDDEN, "The link's signature is not valid."))
	case errors.Is(err, signing.ErrExpired):
		problem.Error(ctx, o.logger, tierpix.Errorf(tierpix.EGONE, "The link has expired."))
	default:
		problem.Error(ctx, o.logger, fmt.Errorf("verify link: %w", err))
	}
	return nil
}

// clock returns the time that decides a request's link expiry (Config.Now) and the time that
// decides whether cached metadata is fresh (the monotonic clock). With the real clock both
// are the reading fasthttp took when the request arrived, which saves reading it twice more.
func (o *Origin) clock(ctx *fasthttp.RequestCtx) (now, mono time.Time) {
	if t := ctx.Time(); o.realClock && !t.IsZero() {
		return t, t
	}
	return o.cfg.Now(), time.Now()
}

// handleImage serves GET and HEAD /i/{signed path}.
func (o *Origin) handleImage(ctx *fasthttp.RequestCtx) {
	ctx.Response.Header.SetCanonical(headerCSP, valueCSP)
	now, mono := o.clock(ctx)
	s := o.verify(ctx, now)
	if s == nil {
		return
	}
	link := &s.link
	m := s.meta.Load()
	if m == nil || !m.fresh(mono) {
		var err error
		if m, err = o.lookup(link.ImageID); err != nil {
			problem.Error(ctx, o.logger, err)
			return
		}
		s.meta.Store(m)
	}
	if refusal := refuse(m, link); refusal != nil {
		// A refusal is decided on the store's state as it is now, not on cached metadata: a
		// link the API has just handed out (after a tier upgrade, say) must not be refused
		// for the second or so this node takes to see the change. An entry fetched after the
		// request arrived already is that state. Refusals are rare, so the
		// query costs the hit path nothing; an entry fetched for such a check answers its
		// refusals for recheckEvery without another (a flood of requests for a deleted image
		// costs a query per recheckEvery); when the store cannot answer, the cached refusal
		// stands.
		if m.looked.Before(mono) && !m.confirmedRefusal(mono) {
			if fresh, err := o.fetch(link.ImageID, nil, true); err == nil {
				m = fresh
				s.meta.Store(m)
				refusal = refuse(m, link)
			}
		}
		if refusal != nil {
			problem.Error(ctx, o.logger, refusal)
			return
		}
	}

	if link.Variant.IsOriginal() {
		o.serveOriginal(ctx, m, link, now)
		return
	}
	o.serveThumbnail(ctx, m, link, now)
}

// refuse returns why m refuses link (a missing image, or a variant its owner's tier lacks),
// or nil.
func refuse(m *metaEntry, link *signing.Link) error {
	if m.notFound {
		return errNoImage
	}
	return authorize(&m.tier, link)
}

// authorize checks a verified link against the owner's tier as it is now: links outlive tier
// changes, so a signature alone does not grant a variant.
func authorize(tier *tierpix.Tier, link *signing.Link) error {
	switch tier.Grants(link.Variant.Height, link.Expires != 0) {
	case tierpix.NoExpiringLinks:
		return tierpix.Errorf(tierpix.EFORBIDDEN, "The owner's tier does not include expiring links.")
	case tierpix.NoOriginal:
		return tierpix.Errorf(tierpix.EFORBIDDEN, "The owner's tier does not include the original.")
	case tierpix.NoHeight:
		return tierpix.Errorf(tierpix.EFORBIDDEN, "The owner's tier does not include %d px thumbnails.", link.Variant.Height)
	}
	return nil
}

// serveOriginal streams the uploaded file: from disk, the node's cache of a bucket, or the
// bucket, never read whole into memory. HEAD only learns its length.
func (o *Origin) serveOriginal(ctx *fasthttp.RequestCtx, m *metaEntry, link *signing.Link, now time.Time) {
	img := &m.img
	sctx, cancel := context.WithTimeout(context.Background(), originalWait)
	defer cancel()
	if ctx.IsHead() {
		size, err := o.store.StatOriginal(sctx, *img)
		if err != nil {
			problem.Error(ctx, o.logger, originalError(img.ID, err))
			return
		}
		if o.writeHeaders(ctx, m, link, now, m.originalETag, contentTypeOf(img.Format)) {
			return
		}
		ctx.Response.Header.SetContentLength(int(size))
		return
	}
	// A 304 needs no body, so a conditional request opens nothing.
	if o.writeHeaders(ctx, m, link, now, m.originalETag, contentTypeOf(img.Format)) {
		return
	}
	body, size, err := o.store.OpenOriginal(sctx, *img)
	if err != nil {
		ctx.Response.Header.Del(fasthttp.HeaderETag)
		ctx.Response.Header.Del(fasthttp.HeaderLastModified)
		ctx.Response.Header.Del(fasthttp.HeaderExpires)
		problem.Error(ctx, o.logger, originalError(img.ID, err))
		return
	}
	// fasthttp closes body (an io.Closer) once it is written or the connection fails.
	ctx.SetBodyStream(body, int(size))
}

// originalError keeps the store's client errors (ENOTFOUND: deleted since the lookup;
// EUNAVAILABLE: storage down) and wraps anything else.
func originalError(id string, err error) error {
	var e *tierpix.Error
	if errors.As(err, &e) {
		return err
	}
	return fmt.Errorf("open original %s: %w", id, err)
}

// serveThumbnail answers with the variant at its effective height, in the link's format: WebP
// for an explicit link, else WebP when negotiation is on and the request accepts it (with
// Vary: Accept on every answer, 304s included), the original's format otherwise.
func (o *Origin) serveThumbnail(ctx *fasthttp.RequestCtx, m *metaEntry, link *signing.Link, now time.Time) {
	img := &m.img
	v := link.Variant.Height
	if img.Height > 0 && img.Height < v {
		v = img.Height
	}
	switch {
	case link.Variant.Format == tierpix.FormatWebP:
		v |= webpVariant
	case !o.cfg.NoNegotiation:
		ctx.Response.Header.SetCanonical(headerVary, valueAccept)
		if acceptsWebP(ctx.Request.Header.Peek(fasthttp.HeaderAccept)) {
			v |= webpVariant
		}
	}
	// WebP holds at most 16383 px a side: a thumbnail of a panorama wider than that is
	// answered in the original's format, on either kind of link.
	if v&webpVariant != 0 && img.Width > imaging.MaxWebPSide && imaging.ThumbnailWidth(img.Width, img.Height, variantHeight(v)) > imaging.MaxWebPSide {
		v &^= webpVariant
	}
	// The hit path: everything the answer needs is in the entry.
	if e := o.memGet(img.ID, v); e != nil {
		o.memoryHits.Add(1)
		if !o.writeHeaders(ctx, m, link, now, e.etag, e.contentType) {
			// The cached body is never modified, so fasthttp may send it without a copy.
			ctx.Response.SetBodyRaw(e.body)
		}
		return
	}
	// A 304 needs no body, so a conditional request for a cached variant renders nothing.
	var etag [96]byte
	if o.writeHeaders(ctx, m, link, now, appendVariantETag(etag[:0], img.ID, v), contentTypeOf(variantFormat(img, v))) {
		return
	}
	o.memoryMisses.Add(1)
	if body := o.fromDisk(*img, v, ctx); body != nil {
		// Either the entry's own buffer or one ctx returns to its pool after the answer.
		ctx.Response.SetBodyRaw(body)
		return
	}
	e, err := o.rendered(*img, m.tier, v)
	if err != nil {
		ctx.Response.Header.Del(fasthttp.HeaderETag)
		ctx.Response.Header.Del(fasthttp.HeaderLastModified)
		ctx.Response.Header.Del(fasthttp.HeaderExpires)
		problem.Error(ctx, o.logger, err)
		return
	}
	ctx.Response.SetBodyRaw(e.body)
}

// writeHeaders sets the representation and caching headers of a 200 and reports whether the
// request's If-None-Match matched etag, in which case it has answered 304 and the caller is
// done. It runs only after verification and authorization. For a permanent link every value
// is made already, so it copies bytes and allocates nothing.
func (o *Origin) writeHeaders(ctx *fasthttp.RequestCtx, m *metaEntry, link *signing.Link, now time.Time, etag, contentType []byte) bool {
	h := &ctx.Response.Header
	h.SetCanonical(headerETag, etag)
	if link.Expires == 0 {
		h.SetCanonical(headerCacheControl, o.cacheControl)
	} else {
		exp := time.Unix(link.Expires, 0)
		maxAge := min(o.cfg.MaxAge, max(exp.Sub(now), 0))
		var buf [64]byte
		h.SetCanonical(headerExpires, exp.UTC().AppendFormat(buf[:0], http.TimeFormat))
		b := append(buf[:0], "public, max-age="...)
		h.SetCanonical(headerCacheControl, strconv.AppendInt(b, int64(maxAge/time.Second), 10))
	}
	if m.lastModified != nil {
		h.SetCanonical(headerLastModified, m.lastModified)
	}
	h.SetCanonical(headerNoSniff, valueNoSniff)
	// The list may arrive over several header lines, which count as one list (RFC 9110 5.3).
	for _, inm := range ctx.Request.Header.PeekAll(fasthttp.HeaderIfNoneMatch) {
		if etagMatches(inm, etag) {
			ctx.SetStatusCode(fasthttp.StatusNotModified)
			return true
		}
	}
	h.SetContentTypeBytes(contentType)
	return false
}

// etagMatches implements If-None-Match's weak comparison (RFC 9110 13.1.2): "*" matches any
// current representation, and W/ prefixes are ignored on either side.
func etagMatches(header, etag []byte) bool {
	etag = bytes.TrimPrefix(etag, []byte("W/"))
	for len(header) > 0 {
		var tag []byte
		tag, header, _ = bytes.Cut(header, []byte(","))
		tag = bytes.TrimSpace(tag)
		if string(tag) == "*" || bytes.Equal(bytes.TrimPrefix(tag, []byte("W/")), etag) {
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
	ctx.Response.Header.SetCanonical(headerCSP, valueCSP)
	if !tierpix.ValidImageID(id) || h < 1 || h > tierpix.MaxThumbnailHeight {
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
	o.serveThumbnail(ctx, m, &link, o.cfg.Now())
	if ctx.Response.StatusCode() < 400 {
		ctx.Response.Header.Set(fasthttp.HeaderCacheControl, "private, max-age=300")
	}
}
