package imaging_test

// Benchmarks of a cold render against the decode floor, as issue 4 defines them: the CPU a
// render costs per request, next to the CPU `vips jpegload SRC out.v --shrink N` costs
// (less `vips --version`, its start-up) in the same run, N being the shrink-on-load factor
// libvips' thumbnail picks. Run them with
//
//	go test -run '^$' -bench 'Thumbnail' -benchtime 40x ./imaging/
//
// Each BenchmarkThumbnail result carries, per render: cpu-ms/op (user plus system CPU of the
// whole process, Go runtime included), faults/op (minor page faults), wall-ms/op, and
// floor-ms (the decode floor of that source) with x-floor (cpu-ms/op over floor-ms).
// BenchmarkThumbnailRSS renders in a fresh process and reports its peak RSS. The sources are
// made once and kept in the system temp directory; the vips CLI must be installed.

import (
	"bufio"
	"context"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tierpix/tierpix"
	"github.com/tierpix/tierpix/imaging"
)

// benchSource is one of issue 4's source images.
type benchSource struct {
	name string
	w, h int
	png  bool
}

// The sources of issue 4's anchors: JPEG Q90 at 24, 12 and 0.75 MP, about 7.5 MB, 3.9 MB and
// 0.25 MB, and a 2 MP RGB PNG of about 5.7 MB.
var benchSources = []benchSource{
	{name: "24MP", w: 6000, h: 4000},
	{name: "12MP", w: 4000, h: 3000},
	{name: "075MP", w: 1000, h: 750},
	{name: "PNG2MP", w: 1920, h: 1080, png: true},
}

// benchHeight is the thumbnail height of the anchors.
const benchHeight = 200

// benchGenVersion names the generator in the cached files' names; bump it when photo or the
// encoding changes, so that stale sources are not reused.
const benchGenVersion = "v2"

var (
	sourceMu    sync.Mutex
	sourcePaths = map[string]string{}
)

// sourcePath returns the file of src, made on first use and kept in the system temp
// directory across runs (the generator is deterministic), so benchmarks do not pay for it.
func sourcePath(tb testing.TB, src benchSource) string {
	tb.Helper()
	sourceMu.Lock()
	defer sourceMu.Unlock()
	if p, ok := sourcePaths[src.name]; ok {
		return p
	}
	ext := ".jpg"
	if src.png {
		ext = ".png"
	}
	path := filepath.Join(os.TempDir(), "tierpix-imaging-bench-"+src.name+"-"+benchGenVersion+ext)
	if _, err := os.Stat(path); err != nil {
		tmp := path + ".tmp" + strconv.Itoa(os.Getpid())
		if src.png {
			writePNGFile(tb, tmp, photoRGB(src.w, src.h))
		} else {
			encodeJPEGFile(tb, tmp, photo(src.w, src.h, jpegGrain))
		}
		if err := os.Rename(tmp, path); err != nil {
			tb.Fatalf("rename: %v", err)
		}
	}
	sourcePaths[src.name] = path
	return path
}

func writePNGFile(tb testing.TB, path string, img image.Image) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatalf("create: %v", err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		tb.Fatalf("encode png: %v", err)
	}
	if err := f.Close(); err != nil {
		tb.Fatalf("close: %v", err)
	}
}

// rusage is what getrusage tells of this process so far.
type rusage struct {
	cpu    time.Duration // user plus system
	faults int64         // minor page faults
}

func usage(tb testing.TB) rusage {
	tb.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatalf("getrusage: %v", err)
	}
	return rusage{cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), faults: ru.Minflt}
}

// thumbnailShrink is the shrink-on-load factor libvips' thumbnail (8.14) picks for a JPEG:
// the largest of 8, 4 and 2 that leaves at least a factor of two for the resize that follows.
func thumbnailShrink(w, h, height int) int {
	width := int(math.Round(float64(w) * float64(height) / float64(h)))
	shrink := min(float64(w)/float64(width), float64(h)/float64(height))
	switch {
	case shrink >= 16:
		return 8
	case shrink >= 4*2:
		return 4
	case shrink >= 2*2:
		return 2
	}
	return 1
}

// floorArgs is the vips command line of src's decode floor.
func floorArgs(src benchSource, path, out string) []string {
	if src.png {
		return []string{"pngload", path, out}
	}
	return []string{"jpegload", path, out, "--shrink", strconv.Itoa(thumbnailShrink(src.w, src.h, benchHeight))}
}

// childCPU runs the vips CLI with libvips on one thread, as tierpix runs it, and returns the
// user plus system CPU it used.
func childCPU(tb testing.TB, args ...string) time.Duration {
	tb.Helper()
	cmd := exec.Command("vips", args...)
	cmd.Env = append(os.Environ(), "VIPS_CONCURRENCY=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("vips %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// decodeFloor measures src's decode floor: the CPU of `vips jpegload SRC out.v --shrink N`
// (pngload for PNG) less that of `vips --version`. The CLI spends some 150 ms starting up
// (it loads every libvips module), more than a 0.75 MP decode, and that start-up varies by
// tens of ms on a shared machine; so the two run in turn, 9 times each, and the floor is the
// difference of the minima (noise only ever adds CPU), as scripts/bench measures it. It fails
// when the vips CLI (Debian's libvips-tools) is missing: without the floor the benchmark has
// nothing to compare with.
func decodeFloor(tb testing.TB, src benchSource) time.Duration {
	tb.Helper()
	if _, err := exec.LookPath("vips"); err != nil {
		tb.Fatalf("the decode floor needs the vips CLI (apt-get install libvips-tools): %v", err)
	}
	path := sourcePath(tb, src)
	out := filepath.Join(tb.TempDir(), "floor.v")
	load, start := time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
	for range 9 {
		load = min(load, childCPU(tb, floorArgs(src, path, out)...))
		start = min(start, childCPU(tb, "--version"))
	}
	return max(0, load-start)
}

// BenchmarkThumbnail renders each source 200 px high from cold, for 1, 4 and 16 requests at
// once, and reports the CPU per render against the source's decode floor measured in the same
// run. Like the origin (whose RenderWorkers default to the core count), it runs at most
// GOMAXPROCS renders at a time and queues the other requests: more renders at once than
// cores only make each cost more (cache misses, context switches), never finish sooner.
func BenchmarkThumbnail(b *testing.B) {
	for _, src := range benchSources {
		b.Run(src.name, func(b *testing.B) {
			path := sourcePath(b, src)
			floor := decodeFloor(b, src)
			for _, conc := range []int{1, 4, 16} {
				b.Run("c="+strconv.Itoa(conc), func(b *testing.B) {
					benchThumbnail(b, path, conc, runtime.GOMAXPROCS(0), floor)
				})
			}
		})
	}
}

// benchThumbnail renders path conc at a time per op, at most workers of them at once, and
// reports cpu-ms/op, faults/op (minor page faults) and wall-ms/op per render, with floor-ms
// and x-floor.
func benchThumbnail(b *testing.B, path string, conc, workers int, floor time.Duration) {
	if _, err := imaging.Thumbnail(path, benchHeight, imaging.Encoding{}); err != nil { // warm the page cache
		b.Fatal(err)
	}
	gate := make(chan struct{}, workers)
	var renders int
	start := usage(b)
	for b.Loop() {
		// One op is conc requests at once, so that the figures are per render they are
		// divided by the renders counted here.
		var wg sync.WaitGroup
		errs := make(chan error, conc)
		for range conc {
			wg.Go(func() {
				gate <- struct{}{}
				defer func() { <-gate }()
				r, err := imaging.Thumbnail(path, benchHeight, imaging.Encoding{})
				if err == nil && r.Height != benchHeight {
					err = fmt.Errorf("got height %d, want %d", r.Height, benchHeight)
				}
				if err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		renders += conc
	}
	end := usage(b)
	perRender := float64(end.cpu-start.cpu) / float64(renders) / 1e6
	b.ReportMetric(perRender, "cpu-ms/op")
	b.ReportMetric(float64(end.faults-start.faults)/float64(renders), "faults/op")
	b.ReportMetric(float64(b.Elapsed())/float64(renders)/1e6, "wall-ms/op")
	b.ReportMetric(float64(floor)/1e6, "floor-ms")
	b.ReportMetric(perRender/(float64(floor)/1e6), "x-floor")
}

// renderChildEnv carries "path conc rounds" to a test binary re-executed by
// BenchmarkThumbnailRSS; see TestMain.
const renderChildEnv = "TIERPIX_IMAGING_RENDER_CHILD"

// renderChild renders path rounds times with conc renders at once, then prints the peak RSS of
// the process in KiB.
func renderChild(spec string) int {
	f := strings.Fields(spec)
	if len(f) != 3 {
		fmt.Fprintf(os.Stderr, "bad %s %q\n", renderChildEnv, spec)
		return 2
	}
	path := f[0]
	conc, _ := strconv.Atoi(f[1])
	rounds, _ := strconv.Atoi(f[2])
	before, err := vmHWM()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for range rounds {
		var wg sync.WaitGroup
		var failed atomic.Bool
		for range conc {
			wg.Go(func() {
				if _, err := imaging.Thumbnail(path, benchHeight, imaging.Encoding{}); err != nil {
					fmt.Fprintln(os.Stderr, "thumbnail:", err)
					failed.Store(true)
				}
			})
		}
		wg.Wait()
		if failed.Load() {
			return 1
		}
	}
	after, err := vmHWM()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("RESULT %d %d\n", before, after)
	return 0
}

// BenchmarkThumbnailRSS renders each JPEG source 16 at a time, several rounds, in a fresh
// process, and reports that process's peak RSS (peak-MiB) and its growth over the start
// (grew-MiB). Sixteen at once is more than the origin ever runs (RenderWorkers, the core
// count by default), so it bounds what 16 connections can cost.
func BenchmarkThumbnailRSS(b *testing.B) {
	for _, src := range benchSources {
		b.Run(src.name, func(b *testing.B) {
			path := sourcePath(b, src)
			for _, conc := range []int{2, 16} {
				b.Run("c="+strconv.Itoa(conc), func(b *testing.B) {
					var peak, grew int
					for b.Loop() {
						cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
						cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %d", renderChildEnv, path, conc, 6))
						out, err := cmd.CombinedOutput()
						if err != nil {
							b.Fatalf("child: %v\n%s", err, out)
						}
						before, after := parseRSS(b, out)
						peak, grew = max(peak, after), max(grew, after-before)
					}
					b.ReportMetric(float64(peak)/1024, "peak-MiB")
					b.ReportMetric(float64(grew)/1024, "grew-MiB")
				})
			}
		})
	}
}

func parseRSS(tb testing.TB, out []byte) (before, after int) {
	tb.Helper()
	s := bufio.NewScanner(strings.NewReader(string(out)))
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "RESULT "); ok {
			if _, err := fmt.Sscan(rest, &before, &after); err != nil {
				tb.Fatalf("parse %q: %v", rest, err)
			}
			return before, after
		}
	}
	tb.Fatalf("got no RESULT line from the child, output:\n%s", out)
	return 0, 0
}

func BenchmarkValidate12MP(b *testing.B) {
	path := sourcePath(b, benchSources[1])
	b.ReportAllocs()
	for b.Loop() {
		if _, err := imaging.Validate(context.Background(), path, 50_000_000, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// benchInterHeight is the intermediate of the benchmark tier (heights 200 and 400): made after
// the first render of an image, further sizes come from it.
const benchInterHeight = 400

// BenchmarkIntermediate measures, per source, the renders of an image whose tier has larger
// heights than the one asked first, side by side in one loop so that the ratios are measured
// under the same load: plain (Thumbnail at 200, the first render), inter (Intermediate at
// 400, which the origin makes after the first render), h400 (the further size make bench
// asks, ThumbnailFromIntermediate at the intermediate's own height) and h300 (a further size
// between the two). Each op runs the four once, in turn, one at a time; the figures are
// medians of the CPU each call took (the whole process, libvips' threads included): plain-ms,
// inter-ms, h400-ms, h300-ms; with plain-x-floor (plain over the decode floor of
// BenchmarkThumbnail), inter-x-plain, h400-x-plain and h300-x-plain (issue 4's further-size
// target: at most 0.3). Run with
//
//	go test -run '^$' -bench Intermediate -benchtime 30x ./imaging/
func BenchmarkIntermediate(b *testing.B) {
	for _, src := range benchSources {
		b.Run(src.name, func(b *testing.B) {
			path := sourcePath(b, src)
			floor := decodeFloor(b, src)
			format := tierpix.FormatJPEG
			if src.png {
				format = tierpix.FormatPNG
			}
			inter, err := imaging.Intermediate(path, benchInterHeight)
			if err != nil {
				b.Fatal(err)
			}
			if inter.Height != benchInterHeight {
				b.Fatalf("got an intermediate %d high, want %d", inter.Height, benchInterHeight)
			}
			interPath := filepath.Join(b.TempDir(), "inter")
			if err := os.WriteFile(interPath, inter.Body, 0o600); err != nil {
				b.Fatal(err)
			}
			renders := []struct {
				name   string
				height int
				render func() (imaging.Rendered, error)
			}{
				{"plain", benchHeight, func() (imaging.Rendered, error) { return imaging.Thumbnail(path, benchHeight, imaging.Encoding{}) }},
				{"inter", benchInterHeight, func() (imaging.Rendered, error) { return imaging.Intermediate(path, benchInterHeight) }},
				{"h400", 400, func() (imaging.Rendered, error) {
					return imaging.ThumbnailFromIntermediate(interPath, format, src.w, src.h, benchInterHeight, 400, imaging.Encoding{})
				}},
				{"h300", 300, func() (imaging.Rendered, error) {
					return imaging.ThumbnailFromIntermediate(interPath, format, src.w, src.h, benchInterHeight, 300, imaging.Encoding{})
				}},
			}
			cpu := make([][]float64, len(renders))
			for b.Loop() {
				for i, r := range renders {
					start := usage(b)
					got, err := r.render()
					end := usage(b)
					if err == nil && got.Height != r.height {
						err = fmt.Errorf("got height %d, want %d", got.Height, r.height)
					}
					if err != nil {
						b.Fatalf("%s: %v", r.name, err)
					}
					cpu[i] = append(cpu[i], float64(end.cpu-start.cpu)/1e6)
				}
			}
			med := make([]float64, len(renders))
			for i, r := range renders {
				med[i] = median(cpu[i])
				b.ReportMetric(med[i], r.name+"-ms")
			}
			b.ReportMetric(med[0]/(float64(floor)/1e6), "plain-x-floor")
			b.ReportMetric(med[1]/med[0], "inter-x-plain")
			b.ReportMetric(med[2]/med[0], "h400-x-plain")
			b.ReportMetric(med[3]/med[0], "h300-x-plain")
		})
	}
}

// median returns the middle of xs (the mean of the two middle ones for an even count); xs is
// sorted in place.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2]
	}
	return (xs[n/2-1] + xs[n/2]) / 2
}
