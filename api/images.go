package api

import (
	"crypto/aes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/signing"
	"github.com/tierpix/tierpix/store"
	"github.com/valyala/fasthttp"
)

// Page sizes of list endpoints.
const (
	defaultPageSize = 20
	maxPageSize     = 100
)

// maxNameBytes bounds a stored image name; longer client file names are cut at a character
// boundary.
const maxNameBytes = 255

// uploadField is the multipart field that carries the image.
const uploadField = "image"

type imageJSON struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	ContentType string    `json:"content_type"`
	Width       int       `json:"width"`
	Height      int       `json:"height"`
	SizeBytes   int64     `json:"size_bytes"`
	CreatedAt   string    `json:"created_at"`
	Links       linksJSON `json:"links"`
}

type linksJSON struct {
	Thumbnails []thumbnailJSON `json:"thumbnails"`
	Original   string          `json:"original,omitempty"`
}

// thumbnailJSON is one thumbnail of an image: its negotiated link (WebP to a client whose
// Accept lists it, the original's format otherwise) and its explicit WebP link, which
// answers WebP whatever the Accept, for caches that cannot vary on it.
type thumbnailJSON struct {
	Height  int    `json:"height"`
	URL     string `json:"url"`
	WebPURL string `json:"webp_url"`
}

// page is the body of every paginated list. Next is null on the last page.
type page[T any] struct {
	Results []T     `json:"results"`
	Next    *string `json:"next"`
}

func (p page[T]) nextPage() *string { return p.Next }

// formatTime is the one timestamp format of the API: RFC 3339 in UTC.
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// linkBuilder signs the links of many images into one scratch buffer, so a list page costs
// one allocation per thumbnail (both its links) and per original, and no database work: the
// tier comes from the caller's identity.
type linkBuilder struct {
	a   *API
	buf []byte
}

func (b *linkBuilder) url(l signing.Link) string {
	b.buf = append(b.buf[:0], b.a.cfg.PublicURL...)
	b.buf = b.a.signer.AppendPath(b.buf, l)
	return string(b.buf)
}

// thumbnail signs the two permanent links of image id's thumbnail of height h, the
// negotiated one and the WebP one, into one string that both slice: a thumbnail costs one
// allocation, however many links it has.
func (b *linkBuilder) thumbnail(id string, h int) thumbnailJSON {
	b.buf = append(b.buf[:0], b.a.cfg.PublicURL...)
	b.buf = b.a.signer.AppendPath(b.buf, signing.Link{ImageID: id, Variant: signing.Thumbnail(h)})
	n := len(b.buf)
	b.buf = append(b.buf, b.a.cfg.PublicURL...)
	b.buf = b.a.signer.AppendPath(b.buf, signing.Link{ImageID: id, Variant: signing.ThumbnailAs(h, tierpix.FormatWebP)})
	s := string(b.buf)
	return thumbnailJSON{Height: h, URL: s[:n], WebPURL: s[n:]}
}

// image returns the JSON of img with the permanent links tier allows.
func (b *linkBuilder) image(img *tierpix.Image, tier *tierpix.Tier) imageJSON {
	thumbs := make([]thumbnailJSON, len(tier.ThumbnailHeights))
	for i, h := range tier.ThumbnailHeights {
		thumbs[i] = b.thumbnail(img.ID, h)
	}
	links := linksJSON{Thumbnails: thumbs}
	if tier.OriginalLink {
		links.Original = b.url(signing.Link{ImageID: img.ID, Variant: signing.Original})
	}
	return imageJSON{
		ID:          img.ID,
		Name:        img.Name,
		ContentType: img.ContentType(),
		Width:       img.Width,
		Height:      img.Height,
		SizeBytes:   img.SizeBytes,
		CreatedAt:   formatTime(img.CreatedAt),
		Links:       links,
	}
}

func (a *API) links() *linkBuilder { return &linkBuilder{a: a, buf: make([]byte, 0, 256)} }

// handleMe serves GET /api/me.
func (a *API) handleMe(ctx *fasthttp.RequestCtx, id *tierpix.Identity) error {
	a.writeJSON(ctx, http.StatusOK, struct {
		Username string   `json:"username"`
		IsAdmin  bool     `json:"is_admin"`
		Tier     tierJSON `json:"tier"`
	}{id.User.Username, id.User.IsAdmin, newTierJSON(&id.Tier)})
	return nil
}

// handleListImages serves GET /api/images: one query for the page (plus one to
// authenticate), whatever the page size.
func (a *API) handleListImages(ctx *fasthttp.RequestCtx, id *tierpix.Identity) error {
	limit, err := parseLimit(ctx)
	if err != nil {
		return err
	}
	var cursor int64
	if c, ok := queryArg(ctx, "cursor"); ok {
		if cursor, err = a.decodeSeqCursor(c, id.User.ID); err != nil {
			return err
		}
	}
	dbctx := dbContext(ctx)
	imgs, prev, next, err := pageBySeq(cursor, limit, func(img *tierpix.Image) int64 { return img.Seq },
		func(before int64, n int) ([]tierpix.Image, error) { return a.svc.ListImages(dbctx, id, before, n) },
		func(after int64, n int) ([]tierpix.Image, error) { return a.svc.ListImagesOldest(dbctx, id, after, n) })
	if err != nil {
		return err
	}
	lb := a.links()
	out := seqPage[imageJSON]{Results: make([]imageJSON, len(imgs))}
	for i := range imgs {
		out.Results[i] = lb.image(&imgs[i], &id.Tier)
	}
	a.seqLinks(&out.First, &out.Previous, &out.Next, "/api/images", url.Values{"limit": {strconv.Itoa(limit)}}, prev, next, id.User.ID)
	a.writeJSON(ctx, http.StatusOK, out)
	return nil
}

// handleGetImage serves GET /api/images/{id}.
func (a *API) handleGetImage(ctx *fasthttp.RequestCtx, id *tierpix.Identity) error {
	img, err := a.svc.FindImage(dbContext(ctx), id, pathParam(ctx, "id"))
	if err != nil {
		return err
	}
	a.writeJSON(ctx, http.StatusOK, a.links().image(&img, &id.Tier))
	return nil
}

// handleDeleteImage serves DELETE /api/images/{id}.
func (a *API) handleDeleteImage(ctx *fasthttp.RequestCtx, id *tierpix.Identity) error {
	return noContent(ctx, a.svc.DeleteImage(dbContext(ctx), id, pathParam(ctx, "id")))
}

type expiringLinkRequest struct {
	ExpiresIn *int    `json:"expires_in"`
	Height    *int    `json:"height"`
	Format    *string `json:"format"`
}

// handleExpiringLink serves POST /api/images/{id}/expiring-links.
func (a *API) handleExpiringLink(ctx *fasthttp.RequestCtx, id *tierpix.Identity) error {
	var req expiringLinkRequest
	if err := decodeJSON(ctx, &req); err != nil {
		return err
	}
	img, err := a.svc.FindImage(dbContext(ctx), id, pathParam(ctx, "id"))
	if err != nil {
		return err
	}
	tier := &id.Tier
	height := 0
	if req.Height != nil {
		height = *req.Height
	}
	refusal := tier.Grants(height, true)
	if refusal == tierpix.NoExpiringLinks {
		return tierpix.Errorf(tierpix.EFORBIDDEN, "The %s tier has no expiring links.", tier.Name)
	}

	fields := map[string]string{}
	if req.ExpiresIn == nil {
		fields["expires_in"] = "This field is required."
	} else if *req.ExpiresIn < tierpix.MinExpirySeconds || *req.ExpiresIn > tierpix.MaxExpirySeconds {
		fields["expires_in"] = fmt.Sprintf("must be between %d and %d seconds", tierpix.MinExpirySeconds, tierpix.MaxExpirySeconds)
	}
	if req.Height != nil && (height == 0 || refusal == tierpix.NoHeight) {
		fields["height"] = allowedHeightsMessage(tier)
	}
	variant := signing.Thumbnail(height)
	if req.Format != nil {
		variant.Format = *req.Format
		if msg := formatMessage(variant, fields["height"] != ""); msg != "" {
			fields["format"] = msg
		}
	}
	if len(fields) > 0 {
		return &tierpix.Error{Code: tierpix.EINVALID, Message: "The request has invalid fields.", Fields: fields}
	}
	if refusal == tierpix.NoOriginal {
		return tierpix.Errorf(tierpix.EFORBIDDEN, "The %s tier has no access to originals; ask for a thumbnail height.", tier.Name)
	}

	expires := a.cfg.Now().Unix() + int64(*req.ExpiresIn)
	u := a.links().url(signing.Link{ImageID: img.ID, Variant: variant, Expires: expires})
	a.writeJSON(ctx, http.StatusCreated, struct {
		URL       string `json:"url"`
		ExpiresAt string `json:"expires_at"`
	}{u, formatTime(time.Unix(expires, 0))})
	return nil
}

// formatMessage returns the error of the format v names, or "" if signing.Variant.Validate,
// the one rule of what a link's format may be, accepts it. badHeight says the height already
// has its own error: the format is then judged as a thumbnail's, so that a wrong height is
// not reported as a wrong format too.
func formatMessage(v signing.Variant, badHeight bool) string {
	if badHeight {
		v.Height = 1
	}
	if v.Format != "" && v.Validate() == nil {
		return ""
	}
	if v.IsOriginal() {
		return "Originals are never converted: give a height for a WebP thumbnail, or leave format out."
	}
	return fmt.Sprintf("must be %q, or left out for the format the client negotiates", tierpix.FormatWebP)
}

func allowedHeightsMessage(tier *tierpix.Tier) string {
	if len(tier.ThumbnailHeights) == 0 {
		return "The tier has no thumbnail heights; leave height out for the original."
	}
	hs := make([]string, len(tier.ThumbnailHeights))
	for i, h := range tier.ThumbnailHeights {
		hs[i] = strconv.Itoa(h)
	}
	return "must be one of the tier's heights: " + strings.Join(hs, ", ")
}

// handleUpload serves POST /api/images. The body is read as a stream: the image part goes to
// a temp file under the size cap, is validated by libvips, and only then moved into place by
// the store. Any failure removes the temp file, so a rejected upload leaves no row and no file.
//
// What is left of a refused body is read and dropped by API.drainRefused (up to the body
// limit), so the client, or nginx streaming the body to us, gets the answer rather than a
// reset connection.
func (a *API) handleUpload(ctx *fasthttp.RequestCtx, id *tierpix.Identity) (err error) {
	defer a.uploads.countRejected(&err)
	mt, params, err := mime.ParseMediaType(string(ctx.Request.Header.ContentType()))
	if err != nil || mt != "multipart/form-data" {
		return tierpix.Errorf(tierpix.EUNSUPPORTED, "The body must be multipart/form-data with the image in the field %q.", uploadField)
	}
	boundary := params["boundary"]
	if boundary == "" {
		return tierpix.Errorf(tierpix.EINVALID, "The multipart/form-data Content-Type has no boundary.")
	}
	cl := ctx.Request.Header.ContentLength()
	if cl > a.MaxRequestBodySize() {
		return a.errUploadTooLarge()
	}
	if err := a.st.CheckSpace(int64(max(cl, 0))); err != nil {
		return err
	}

	stream := ctx.RequestBodyStream()
	if stream == nil {
		// The server parsed the form before the handler ran (no StreamRequestBody, or no
		// DisablePreParseMultipartForm); take the image from there.
		return a.uploadFromParsedForm(ctx, id)
	}

	// The limit bounds the whole body, small fields included; a part that runs into it is
	// too large, not malformed.
	idle := &idleReader{r: stream, conn: ctx.Conn(), idle: a.cfg.BodyIdleTimeout, end: time.Now().Add(maxUploadTime)}
	body := &io.LimitedReader{R: idle, N: int64(a.MaxRequestBodySize()) + 1}
	malformed := func(err error) error {
		if idle.timedOut {
			ctx.SetConnectionClose()
			return tierpix.Errorf(tierpix.ETIMEOUT, "The body sent nothing for %d seconds; the upload was dropped.", int(a.cfg.BodyIdleTimeout/time.Second))
		}
		if body.N <= 0 {
			return a.errUploadTooLarge()
		}
		return tierpix.Errorf(tierpix.EINVALID, "The multipart body is malformed or was cut off.")
	}
	mr := multipart.NewReader(body, boundary)
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return tierpix.Invalid(uploadField, "This field is required.")
		} else if err != nil {
			return malformed(err)
		}
		switch part.FormName() {
		case uploadField:
			if csrfPending(ctx) {
				// A browser form sends its fields in order, the token before the file; the
				// image of a form without one is refused unread.
				return errCSRF()
			}
			return a.storeUpload(ctx, id, part, part.FileName(), malformed)
		case csrfField:
			if csrfPending(ctx) {
				token, err := io.ReadAll(io.LimitReader(part, 256))
				if err != nil {
					return malformed(err)
				}
				if err := a.passCSRF(ctx, string(token)); err != nil {
					return err
				}
				continue
			}
		}
		if _, err := io.Copy(io.Discard, part); err != nil {
			return malformed(err)
		}
	}
}

// uploadFromParsedForm takes the image from a multipart form fasthttp has already read.
func (a *API) uploadFromParsedForm(ctx *fasthttp.RequestCtx, id *tierpix.Identity) error {
	form, err := ctx.MultipartForm()
	if err != nil {
		return tierpix.Errorf(tierpix.EINVALID, "The multipart body is malformed or was cut off.")
	}
	defer ctx.Request.RemoveMultipartFormFiles()
	if csrfPending(ctx) {
		var token string
		if v := form.Value[csrfField]; len(v) > 0 {
			token = v[0]
		}
		if err := a.passCSRF(ctx, token); err != nil {
			return err
		}
	}
	files := form.File[uploadField]
	if len(files) == 0 {
		return tierpix.Invalid(uploadField, "This field is required.")
	}
	fh := files[0]
	if fh.Size > a.cfg.MaxUploadBytes {
		return a.errUploadTooLarge()
	}
	f, err := fh.Open()
	if err != nil {
		return fmt.Errorf("open parsed upload: %w", err)
	}
	defer f.Close()
	return a.storeUpload(ctx, id, f, fh.Filename, func(error) error {
		return tierpix.Errorf(tierpix.EINVALID, "The multipart body is malformed or was cut off.")
	})
}

func (a *API) errUploadTooLarge() error {
	return tierpix.Errorf(tierpix.ETOOLARGE, "The image is larger than the %d-byte limit.", a.cfg.MaxUploadBytes)
}

// storeUpload spools src to a temp file, validates it and hands it to the store. readFailed
// turns an error reading src (the client's body) into the client error it stands for.
func (a *API) storeUpload(ctx *fasthttp.RequestCtx, id *tierpix.Identity, src io.Reader, filename string, readFailed func(error) error) error {
	// The temp file stays open, and so locked against sweeps, until the row is in.
	tmp, err := a.st.CreateTemp()
	if err != nil {
		return err
	}
	tmpPath := tmp.Name()
	stored := false
	defer func() {
		tmp.Close()
		if stored {
			return
		}
		if err := os.Remove(tmpPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			a.logger.Error("remove rejected upload", "path", tmpPath, "err", err)
		}
	}()

	r := &readTracker{r: io.LimitReader(src, a.cfg.MaxUploadBytes+1)}
	n, err := io.Copy(tmp, r)
	if err != nil {
		if r.err != nil {
			return readFailed(r.err)
		}
		return store.FileError(err, "write upload temp file")
	}
	if n > a.cfg.MaxUploadBytes {
		return a.errUploadTooLarge()
	}
	// The upload is on disk now: refuse it if it took the data dir below the reserve.
	if err := a.st.CheckSpace(0); err != nil {
		return err
	}

	img, err := a.svc.AddImage(dbContext(ctx), id, tmpPath, sanitizeName(filename), n)
	if err != nil {
		return err
	}
	stored = true
	a.uploads.stored(n)

	ctx.Response.Header.Set("Location", a.cfg.PublicURL+"/api/images/"+img.ID)
	a.writeJSON(ctx, http.StatusCreated, a.links().image(&img, &id.Tier))
	return nil
}

// maxUploadTime bounds an upload's body as a whole, however steadily it trickles in: at
// this pace a 50 MiB image needs 15 KB/s.
const maxUploadTime = time.Hour

// idleReader reads an upload's body from the client's connection with a read deadline renewed
// on every read: a body that keeps moving is never cut (the server's own deadline covers the
// headers only), one that sends nothing for idle fails with timedOut set. end bounds the whole.
type idleReader struct {
	r        io.Reader
	conn     net.Conn
	idle     time.Duration
	end      time.Time
	timedOut bool
}

func (r *idleReader) Read(p []byte) (int, error) {
	deadline := time.Now().Add(r.idle)
	if deadline.After(r.end) {
		deadline = r.end
	}
	r.conn.SetReadDeadline(deadline) //nolint:errcheck // a failed deadline only makes the read fail sooner
	n, err := r.r.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		r.timedOut = true
	}
	return n, err
}

// readTracker remembers the error of the reader it wraps, so that a failed copy can be told
// apart: the client's body (4xx) or the disk (5xx).
type readTracker struct {
	r   io.Reader
	err error
}

func (t *readTracker) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		t.err = err
	}
	return n, err
}

// sanitizeName makes a client's file name safe to store and show: its base name (either
// slash), valid UTF-8 without control or bidi-override characters, at most maxNameBytes, and
// "image" when nothing is left.
func sanitizeName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.ToValidUTF8(name, "")
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if len(name) > maxNameBytes {
		cut := maxNameBytes
		for cut > 0 && !utf8.RuneStart(name[cut]) {
			cut--
		}
		name = strings.TrimSpace(name[:cut])
	}
	if name == "" || name == "." || name == ".." {
		return "image"
	}
	return name
}

// queryArg returns a query parameter and whether it is present at all, so that "limit=" is
// refused rather than taken for the default.
func queryArg(ctx *fasthttp.RequestCtx, name string) (string, bool) {
	args := ctx.QueryArgs()
	if !args.Has(name) {
		return "", false
	}
	return string(args.Peek(name)), true
}

func parseLimit(ctx *fasthttp.RequestCtx) (int, error) {
	s, ok := queryArg(ctx, "limit")
	if !ok {
		return defaultPageSize, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxPageSize {
		return 0, tierpix.Invalid("limit", fmt.Sprintf("must be an integer between 1 and %d", maxPageSize))
	}
	return n, nil
}

// An image-list cursor is the sequence number the next page starts after, sealed with AES
// together with the owner's id: sequence numbers are global, so in the clear they would tell
// a user how many images everyone else uploaded between two of theirs. The owner inside
// makes another user's cursor invalid rather than a window on their list. One AES block, no
// nonce: the same position always gives the same cursor, which is harmless (the holder knows
// the position) and keeps next URLs stable.
func (a *API) encodeSeqCursor(seq, owner int64) string {
	var b [aes.BlockSize]byte
	binary.BigEndian.PutUint64(b[:8], uint64(seq))
	binary.BigEndian.PutUint64(b[8:], uint64(owner))
	a.cursors.Encrypt(b[:], b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// seqLinks sets a seqPage's links: the list at path with the query q, at the neighbours'
// cursors (0: none), sealed for owner. The first page is linked from any page with a previous.
func (a *API) seqLinks(first, previous, next **string, path string, q url.Values, prev, nxt, owner int64) {
	link := func(cursor int64) *string {
		v := url.Values{}
		for k, vs := range q {
			v[k] = vs
		}
		if cursor != 0 {
			v.Set("cursor", a.encodeSeqCursor(cursor, owner))
		}
		u := a.cfg.PublicURL + path + "?" + v.Encode()
		return &u
	}
	if prev != 0 {
		*previous, *first = link(prev), link(0)
	}
	if nxt != 0 {
		*next = link(nxt)
	}
}

// decodeSeqCursor returns the sequence number a cursor holds: positive for the page older
// than it, negative for the page newer than its absolute value.
func (a *API) decodeSeqCursor(c string, owner int64) (int64, error) {
	var b [aes.BlockSize]byte
	if len(c) != base64.RawURLEncoding.EncodedLen(len(b)) {
		return 0, tierpix.Invalid("cursor", "is not a cursor this API handed out")
	}
	if n, err := base64.RawURLEncoding.Strict().Decode(b[:], []byte(c)); err == nil && n == len(b) {
		a.cursors.Decrypt(b[:], b[:])
		seq := int64(binary.BigEndian.Uint64(b[:8]))
		if seq != 0 && int64(binary.BigEndian.Uint64(b[8:])) == owner {
			return seq, nil
		}
	}
	return 0, tierpix.Invalid("cursor", "is not a cursor this API handed out")
}

func encodeStringCursor(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func decodeStringCursor(c string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) == 0 || !utf8.Valid(b) {
		return "", tierpix.Invalid("cursor", "is not a cursor this API handed out")
	}
	return string(b), nil
}
