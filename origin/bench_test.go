package origin

// Benchmarks of the origin's answer paths, in process (no network): the handler as the
// router calls it, on a real store and real caches.
//
//	go test -run '^$' -bench . -benchmem ./origin/
//
// The hit benchmarks measure what a request costs the server on top of fasthttp's own work
// (reading the request, writing the response), which `make bench` measures with wrk against
// nginx. BenchmarkFirstRender and BenchmarkFurtherSize report cpu-ms/op, the process's CPU
// per render (libvips' threads included), which is what issue 4's "further sizes" target
// compares: at most 0.3x.

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/fasthttp/router"
	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/signing"
	"github.com/valyala/fasthttp"
)

// benchHandler returns the origin's routes as cmd/tierpix calls them (Front before the
// router), and a request context for GET path that the benchmark may serve again and again.
func benchHandler(b *testing.B, o *Origin, path string) (fasthttp.RequestHandler, *fasthttp.RequestCtx) {
	b.Helper()
	r := router.New()
	r.SaveMatchedRoutePath = true // as cmd/tierpix does
	o.Register(r)
	var req fasthttp.Request
	req.SetRequestURI(path)
	req.Header.SetHost("127.0.0.1")
	var ctx fasthttp.RequestCtx
	ctx.Init(&req, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, nil)
	return o.Front(r.Handler), &ctx
}

// serveBench serves the request b.N times, checking the first answer.
func serveBench(b *testing.B, h fasthttp.RequestHandler, ctx *fasthttp.RequestCtx) {
	b.Helper()
	h(ctx)
	if got := ctx.Response.StatusCode(); got != fasthttp.StatusOK {
		b.Fatalf("status: got %d, want 200 (%s)", got, ctx.Response.Body())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		// As the server does after each answer: user values go (pooled bodies with them).
		ctx.Request.ResetUserValues()
		ctx.Response.Reset()
		h(ctx)
	}
}

func BenchmarkMemoryHit(b *testing.B) {
	e := newEnv(b, fullTier, Config{})
	img, _ := e.addImage(b, tierpix.FormatJPEG, 600, 400)
	h, ctx := benchHandler(b, e.origin, e.signer.Path(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(200)}))
	serveBench(b, h, ctx)
}

func BenchmarkDiskHit(b *testing.B) {
	// A 1-byte memory budget refuses every thumbnail, so each request reads the disk cache.
	e := newEnv(b, fullTier, Config{MemoryCacheBytes: 1})
	img, _ := e.addImage(b, tierpix.FormatJPEG, 600, 400)
	h, ctx := benchHandler(b, e.origin, e.signer.Path(signing.Link{ImageID: img.ID, Variant: signing.Thumbnail(200)}))
	serveBench(b, h, ctx)
}

// cpuTime returns the CPU the process has used, every thread included.
func cpuTime(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the process CPU per operation since start.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N)/1e6, "cpu-ms/op")
}

// photoEnv is an origin over one photograph-like JPEG, as `make bench` makes them, on a tier
// of the given heights.
func photoEnv(b *testing.B, w, h int, heights ...int) (*env, tierpix.Image) {
	b.Helper()
	tier := tierpix.Tier{Name: "Photo", ThumbnailHeights: heights}
	e := newEnv(b, tier, Config{})
	return e, e.addPhoto(b, w, h)
}

// BenchmarkFirstRender renders a 12 MP photograph's h200 from the original, and with it the
// intermediate of the tier's largest height (400), as the first request for an image does.
func BenchmarkFirstRender(b *testing.B) {
	benchFirstRender(b, 150, 200, 300, 400)
}

// BenchmarkFirstRenderAlone is BenchmarkFirstRender on a tier of one height, which makes no
// intermediate: the difference is what the intermediate costs.
func BenchmarkFirstRenderAlone(b *testing.B) {
	benchFirstRender(b, 200)
}

func benchFirstRender(b *testing.B, heights ...int) {
	e, img := photoEnv(b, 4000, 3000, heights...)
	m, err := e.origin.lookup(img.ID)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := cpuTime(b)
	for range b.N {
		e.origin.Purge(img.ID)
		if _, err := e.origin.thumbnail(m.img, m.tier, 200); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, start)
}

// BenchmarkFurtherSize renders further sizes (h300 and h400) of that photograph after its
// h200, from the intermediate the h200 left.
func BenchmarkFurtherSize(b *testing.B) {
	e, img := photoEnv(b, 4000, 3000, 150, 200, 300, 400)
	m, err := e.origin.lookup(img.ID)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := e.origin.thumbnail(m.img, m.tier, 200); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := cpuTime(b)
	for i := range b.N {
		h := 300 + 100*(i%2)
		e.origin.forgetVariant(b, img.ID, h)
		if _, err := e.origin.thumbnail(m.img, m.tier, h); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, start)
	if got := e.origin.Stats().FromIntermediate; got < uint64(b.N) {
		b.Errorf("renders from the intermediate: got %d, want %d", got, b.N)
	}
}

// forgetVariant drops one variant from memory and disk, as if never rendered.
func (o *Origin) forgetVariant(t testing.TB, id string, v int) {
	t.Helper()
	o.mem.Del(o.memKey(id, v))
	o.mem.Wait()
	path, _ := o.diskPath(id, v)
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
}
