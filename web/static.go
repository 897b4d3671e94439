package web

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"mime"
	"path"
	"strings"
	"sync"

	"github.com/valyala/fasthttp"
)

// staticFile is one embedded file of static/, with its validator.
type staticFile struct {
	body        []byte
	contentType string
	etag        string // quoted strong validator: the first 128 bits of the SHA-256 of body
	version     string // the same hash, unquoted, for asset URLs
}

// staticFiles reads static/ once. The files are embedded, so this cannot fail at run time
// unless the build is broken, which the tests catch.
var staticFiles = sync.OnceValue(func() map[string]staticFile {
	files := map[string]staticFile{}
	entries, err := fs.ReadDir(staticFS, "static")
	if err != nil {
		panic("web: read embedded static files: " + err.Error())
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		body, err := fs.ReadFile(staticFS, "static/"+e.Name())
		if err != nil {
			panic("web: read embedded " + e.Name() + ": " + err.Error())
		}
		sum := sha256.Sum256(body)
		v := hex.EncodeToString(sum[:16])
		ct := mime.TypeByExtension(path.Ext(e.Name()))
		switch path.Ext(e.Name()) {
		case ".css":
			ct = "text/css; charset=utf-8"
		case ".ico":
			ct = "image/x-icon"
		case "":
			ct = "application/octet-stream"
		}
		if ct == "" {
			ct = "application/octet-stream"
		}
		files[e.Name()] = staticFile{body: body, contentType: ct, etag: `"` + v + `"`, version: v}
	}
	return files
})

// assetURL is the URL of a static file with its content hash as a query, so pages can tell
// browsers to keep it for a year: a new stylesheet gets a new URL.
func assetURL(name string) string {
	f, ok := staticFiles()[name]
	if !ok {
		return "/static/" + name
	}
	return "/static/" + name + "?v=" + f.version[:12]
}

// handleStatic serves GET /static/{file}: the embedded stylesheet and icon. Pages link them
// through assetURL, with a version in the query, so they are cacheable for a year; a browser
// revalidating gets 304 by its ETag.
func (w *Web) handleStatic(ctx *fasthttp.RequestCtx) {
	name, _ := ctx.UserValue("file").(string)
	f, ok := staticFiles()[name]
	if !ok {
		w.errorPage(ctx, fasthttp.StatusNotFound, "Not found", "There is no such file.")
		return
	}
	serveStatic(ctx, f, "public, max-age=31536000, immutable")
}

// faviconMaxAge is how long browsers keep /favicon.ico: its URL carries no version, so not a
// year, but long enough that a browser asks again only after a month.
const faviconMaxAge = "public, max-age=2592000"

// handleFavicon serves GET /favicon.ico, which browsers ask for on their own (for the JSON
// and image documents too, which link no icon), so that it is answered rather than a 404.
func (w *Web) handleFavicon(ctx *fasthttp.RequestCtx) {
	serveStatic(ctx, staticFiles()["favicon.ico"], faviconMaxAge)
}

// serveStatic answers with an embedded file, or 304 when If-None-Match holds its ETag.
func serveStatic(ctx *fasthttp.RequestCtx, f staticFile, cacheControl string) {
	h := &ctx.Response.Header
	h.Set("ETag", f.etag)
	h.Set("Cache-Control", cacheControl)
	h.Set("X-Content-Type-Options", "nosniff")
	if etagMatches(string(ctx.Request.Header.Peek("If-None-Match")), f.etag) {
		ctx.SetStatusCode(fasthttp.StatusNotModified)
		return
	}
	h.SetContentType(f.contentType)
	ctx.SetBody(f.body)
}

// etagMatches applies If-None-Match's weak comparison: "*" or any listed tag equal to etag,
// with or without W/.
func etagMatches(header, etag string) bool {
	for tag := range strings.SplitSeq(header, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
			return true
		}
	}
	return false
}
