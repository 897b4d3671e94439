package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"image"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The formats scenario (issue 13): what WebP thumbnails by content negotiation and a quality
// chosen per thumbnail save in bytes, and cost in fidelity and CPU, against the thumbnails
// tierpix served before (a tierpix with TIERPIX_WEBP=off TIERPIX_QUALITY=80, the baseline) and
// against libvips' own vipsthumbnail. It makes a table of its own (bytes and SSIM) and rows
// of the main one (cold-render CPU by format, vipsthumbnail).

// acceptWebP is the Accept header of a client that takes WebP (a browser's, shortened).
const acceptWebP = "image/webp,*/*"

// formatRounds is how many interleaved rounds the CPU comparisons run.
const formatRounds = 3

// formatDur is each cold run of the CPU comparison.
var formatDur = 5 * time.Second

// formatHeights are the heights of the bytes-and-SSIM table: the first render, and a further
// size rendered from the intermediate the first one left.
var formatHeights = []int{thumbHeight, 400}

// formatClient is one way of asking for thumbnails.
type formatClient struct {
	key    string // "base" (the baseline tierpix), "auto" or "webp" (the default one)
	accept string // the Accept header; "" sends none
	webp   bool   // the answer must be WebP; otherwise the original's format
}

var formatClients = []formatClient{{key: "base"}, {key: "auto"}, {key: "webp", accept: acceptWebP, webp: true}}

// label names what the client gets for source s, for the tables.
func (fc formatClient) label(s source) string {
	switch {
	case fc.webp:
		return "WebP"
	case fc.key == "base" && s.png:
		return "PNG (baseline)"
	case fc.key == "base":
		return "JPEG Q80 (baseline)"
	case s.png:
		return "PNG (default)"
	}
	return "JPEG auto quality"
}

// origName is the original's format as the tables name it.
func (s source) origName() string {
	if s.png {
		return "PNG"
	}
	return "JPEG"
}

// formatsRun is the state of one formats scenario.
type formatsRun struct {
	b      *bench
	base   *instance // TIERPIX_WEBP=off TIERPIX_QUALITY=80: the thumbnails of before issue 13
	def    *instance // the default configuration: negotiation on, quality auto
	dir    string    // scratch: decoded thumbnails, vipsthumbnail's files
	refDir string    // cached references, kept across runs (they depend on the pictures alone)
	noVary int       // answers of the default tierpix without Vary: Accept
}

// instance is the tierpix a client asks.
func (f *formatsRun) instance(fc formatClient) *instance {
	if fc.key == "base" {
		return f.base
	}
	return f.def
}

// formatsScenario runs the bytes-and-SSIM table over pics (formatImages pictures per source of
// formatSources) and the cold-render CPU comparisons over each source's seeded images.
func (b *bench) formatsScenario(ctx context.Context, owner func(*http.Request), pics map[string][]string, sourcesDir string) error {
	if err := b.restart(ctx, "tierpix-formats"); err != nil {
		return err
	}
	base, err := b.startTierpix(ctx, "tierpix-baseline", "TIERPIX_WEBP=off", "TIERPIX_QUALITY=80")
	if err != nil {
		return err
	}
	defer base.srv.stop()
	f := &formatsRun{b: b, base: base, def: b.a, dir: filepath.Join(b.work, "formats"),
		// Image 0 of a bench source is that source's file: its references go stale with it.
		refDir: filepath.Join(sourcesDir, formatsVersion, "refs-"+genVersion)}
	for _, d := range []string{f.dir, f.refDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := f.bytesAndSSIM(ctx, owner, pics); err != nil {
		return err
	}
	for _, s := range formatSources() {
		if err := f.cpu(ctx, s, pics[s.key][0]); err != nil {
			return err
		}
	}
	return nil
}

// thumbSample is one thumbnail of the bytes-and-SSIM table.
type thumbSample struct {
	bytes int
	ssim  float64
}

// cellKey is one line of the bytes-and-SSIM table.
type cellKey struct {
	source, client string
	height         int
}

// bytesAndSSIM fetches, for every picture of every source, its thumbnails at formatHeights as
// each client gets them, and measures their bytes and their SSIM against an exact reference.
// Each client asks its own copy of a picture (a seeded row of the same original), so no
// answer comes from another's cache; the further height is asked of the same copies once the
// intermediates their first renders queued are built, the path a further size takes.
func (f *formatsRun) bytesAndSSIM(ctx context.Context, owner func(*http.Request), pics map[string][]string) error {
	logf("bytes and SSIM: uploading %d pictures of each of %d sources", formatImages, len(formatSources()))
	// ids[source][picture][client]
	ids := map[string][][]string{}
	for _, s := range formatSources() {
		for _, path := range pics[s.key] {
			up, _, err := f.def.client.upload(ctx, owner, path)
			if err != nil {
				return fmt.Errorf("upload %s: %w", path, err)
			}
			copies, err := f.b.db.seedCopies(ctx, f.b.dataDir, up, strings.ToLower(s.origName()), len(formatClients))
			if err != nil {
				return err
			}
			ids[s.key] = append(ids[s.key], copies)
		}
	}
	cells := map[cellKey][]thumbSample{}
	var notes []string
	instances := []*instance{f.base, f.def}
	name := func(in *instance) string {
		if in == f.base {
			return "baseline"
		}
		return "default"
	}
	var before [2]originCounts
	for i, in := range instances {
		var err error
		if before[i], _, err = fetchCounts(ctx, in.client); err != nil {
			return err
		}
	}
	for _, h := range formatHeights {
		if h != formatHeights[0] {
			for i, in := range instances {
				note, err := waitIntermediates(ctx, in.client, 60*time.Second)
				if err != nil {
					return err
				}
				c, _, err := fetchCounts(ctx, in.client)
				if err != nil {
					return err
				}
				c = c.sub(before[i])
				notes = append(notes, fmt.Sprintf("h%d is asked of the pictures already rendered at h%d. The %s tierpix made %.0f intermediates (%.0f dropped) over its %.0f renders at h%d; h%d was %s",
					h, formatHeights[0], name(in), c.Intermediates, c.IntermediatesDropped, c.Renders, formatHeights[0], h, note))
			}
		}
		for _, s := range formatSources() {
			logf("bytes and SSIM, %s → h%d, %d pictures", s.label, h, len(pics[s.key]))
			for i, path := range pics[s.key] {
				for k, fc := range formatClients {
					body, err := f.fetch(ctx, fc, s, ids[s.key][i][k], h)
					if err != nil {
						return err
					}
					got, err := f.decode(ctx, body, fc.webp)
					if err != nil {
						return err
					}
					if got.h != h {
						return fmt.Errorf("%s picture %d, %s: got a thumbnail %d high, want %d", s.label, i, fc.label(s), got.h, h)
					}
					ref, err := f.reference(ctx, s, i, path, got.w, got.h)
					if err != nil {
						return err
					}
					v, err := ssim(ref, got)
					if err != nil {
						return err
					}
					key := cellKey{source: s.key, client: fc.key, height: h}
					cells[key] = append(cells[key], thumbSample{bytes: len(body), ssim: v})
				}
			}
		}
	}
	if f.noVary > 0 {
		notes = append(notes, fmt.Sprintf("**%d answers of the default tierpix lacked Vary: Accept**", f.noVary))
	}
	f.b.formatTable = formatTable(cells, notes)
	return nil
}

// fetch asks for the thumbnail of id at height h as client fc, and checks that the answer is
// in the format the contract says: WebP for a client that lists it (on the default tierpix),
// the original's format otherwise.
func (f *formatsRun) fetch(ctx context.Context, fc formatClient, s source, id string, h int) ([]byte, error) {
	in := f.instance(fc)
	url := in.base + f.b.link(id, h)
	body, header, err := in.client.getAccepting(ctx, url, fc.accept)
	if err != nil {
		return nil, err
	}
	want := "image/" + strings.ToLower(s.origName())
	if fc.webp {
		want = "image/webp"
	}
	if got := header.Get("Content-Type"); got != want {
		return nil, fmt.Errorf("GET %s with Accept %q (%s tierpix): got Content-Type %q, want %q", url, fc.accept, fc.key, got, want)
	}
	if in == f.def && !varies(header, "Accept") {
		f.noVary++
	}
	return body, nil
}

// varies reports whether a response's Vary header names field.
func varies(h http.Header, field string) bool {
	for _, v := range h.Values("Vary") {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), field) {
				return true
			}
		}
	}
	return false
}

// decode returns the luma of a thumbnail. JPEG and PNG are decoded by Go's decoders; WebP by
// libwebp, the decoder browsers use, through the vips CLI (the standard library has none).
func (f *formatsRun) decode(ctx context.Context, body []byte, webp bool) (luma, error) {
	if webp {
		in, out := filepath.Join(f.dir, "thumb.webp"), filepath.Join(f.dir, "thumb.png")
		if err := os.WriteFile(in, body, 0o644); err != nil {
			return luma{}, err
		}
		if err := runVips(ctx, "copy", in, out); err != nil {
			return luma{}, fmt.Errorf("decode a WebP thumbnail: %w", err)
		}
		var err error
		if body, err = os.ReadFile(out); err != nil {
			return luma{}, err
		}
	}
	img, _, err := image.Decode(bytes.NewReader(body))
	if err != nil {
		return luma{}, fmt.Errorf("decode a thumbnail: %w", err)
	}
	return lumaOf(img), nil
}

// runVips runs the vips CLI, returning its output in the error.
func runVips(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "vips", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("vips %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// reference returns the exact reference for a w x h thumbnail of picture i of s (at path):
// the original decoded in full (no shrink-on-load), in float, reduced by libvips' Lanczos 3
// to exactly w x h with no block shrink before it (vips resize --gap 0; by default it first
// box-averages by an integer factor) and no rounding to 8 bits (its 8-bit path rounds its
// kernel to fixed point, which darkened a 20x reduction by 1.2 levels on average). References
// are cached in refDir, as vips' own float image files.
func (f *formatsRun) reference(ctx context.Context, s source, i int, path string, w, h int) (luma, error) {
	cached := filepath.Join(f.refDir, fmt.Sprintf("%s-%d-%dx%d.v", s.key, i, w, h))
	if _, err := os.Stat(cached); err != nil {
		full, part := filepath.Join(f.dir, "full.v"), filepath.Join(f.dir, "ref.part.v")
		defer os.Remove(full)
		if err := runVips(ctx, "linear", path, full, "1", "0"); err != nil {
			return luma{}, fmt.Errorf("reference of %s: %w", path, err)
		}
		hs, vs := float64(w)/float64(s.w), float64(h)/float64(s.h)
		if err := runVips(ctx, "resize", full, part, strconv.FormatFloat(hs, 'g', -1, 64),
			"--vscale", strconv.FormatFloat(vs, 'g', -1, 64), "--kernel", "lanczos3", "--gap", "0"); err != nil {
			return luma{}, fmt.Errorf("reference of %s: %w", path, err)
		}
		if err := os.Rename(part, cached); err != nil {
			return luma{}, err
		}
	}
	ref, err := readVipsLuma(cached)
	if err != nil {
		return luma{}, err
	}
	if ref.w != w || ref.h != h {
		os.Remove(cached)
		return luma{}, fmt.Errorf("the reference of %s came out %dx%d, want %dx%d: vips resize rounds its size otherwise than expected", path, ref.w, ref.h, w, h)
	}
	return ref, nil
}

// vipsMagic starts a vips image file written on a little-endian machine.
var vipsMagic = []byte{0xb6, 0xa6, 0xf2, 0x08}

// readVipsLuma reads a vips image file (.v) of 3-band float pixels, as vips resize writes
// one, and returns its luma. The format: a 64-byte header (width, height and bands at
// offsets 4, 8 and 12, band format at 20, 6 for float; coding at 24, 0 for none), the
// pixels band-interleaved, then XML metadata. Samples are clamped to 0..255 as an 8-bit
// picture would hold them (Lanczos overshoots at sharp edges), but not rounded.
func readVipsLuma(path string) (luma, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return luma{}, err
	}
	if len(data) < 64 || !bytes.Equal(data[:4], vipsMagic) {
		return luma{}, fmt.Errorf("%s is not a little-endian vips image file", path)
	}
	field := func(off int) int { return int(binary.LittleEndian.Uint32(data[off:])) }
	w, h, bands, format, coding := field(4), field(8), field(12), field(20), field(24)
	if bands != 3 || format != 6 || coding != 0 {
		return luma{}, fmt.Errorf("%s: got %d bands of format %d, coding %d; want 3 of float (6), none (0)", path, bands, format, coding)
	}
	if len(data) < 64+w*h*12 {
		return luma{}, fmt.Errorf("%s: %d bytes is short for %dx%d float RGB", path, len(data), w, h)
	}
	sample := func(i int) float64 {
		v := float64(math.Float32frombits(binary.LittleEndian.Uint32(data[64+4*i:])))
		return max(0, min(255, v))
	}
	l := luma{w: w, h: h, y: make([]float64, w*h)}
	for i := range l.y {
		l.y[i] = lumaOfRGB(sample(3*i), sample(3*i+1), sample(3*i+2))
	}
	return l, nil
}

// formatTable renders the bytes-and-SSIM table, a summary over the photographs, and notes.
func formatTable(cells map[cellKey][]thumbSample, notes []string) string {
	var b strings.Builder
	b.WriteString("| source | height | format | pictures | mean bytes | vs baseline bytes | min SSIM | mean SSIM |\n")
	b.WriteString("|---|--:|---|--:|--:|--:|--:|--:|\n")
	type agg struct{ ratios, worst []float64 }
	photo := map[string]*agg{"auto": {}, "webp": {}, "base": {}}
	for _, s := range formatSources() {
		for _, h := range formatHeights {
			baseBytes, _, _ := summarise(cells[cellKey{s.key, "base", h}])
			for _, fc := range formatClients {
				c := cells[cellKey{s.key, fc.key, h}]
				if len(c) == 0 {
					continue
				}
				mean, worst, meanSSIM := summarise(c)
				fmt.Fprintf(&b, "| %s | %d | %s | %d | %.0f | %s | %.4f | %.4f |\n",
					s.label, h, fc.label(s), len(c), mean, fmtRatio(mean/baseBytes), worst, meanSSIM)
				if !s.png {
					a := photo[fc.key]
					a.ratios = append(a.ratios, mean/baseBytes)
					a.worst = append(a.worst, worst)
				}
			}
		}
	}
	if a := photo["webp"]; len(a.ratios) > 0 {
		fmt.Fprintf(&b, "\nPhotographs (24, 12 and 0.75 MP JPEG at h%d and h%d; bytes as the mean of the %d per-source, per-height ratios): "+
			"WebP %s and JPEG auto quality %s the baseline's bytes; worst SSIM WebP %.4f, JPEG auto quality %.4f, baseline %.4f.\n",
			formatHeights[0], formatHeights[1], len(a.ratios), fmtRatio(mean(a.ratios)), fmtRatio(mean(photo["auto"].ratios)),
			slices.Min(a.worst), slices.Min(photo["auto"].worst), slices.Min(photo["base"].worst))
	}
	for _, n := range notes {
		fmt.Fprintf(&b, "\n- %s", n)
	}
	if len(notes) > 0 {
		b.WriteString("\n")
	}
	return b.String()
}

// summarise returns the mean bytes, the lowest SSIM and the mean SSIM of samples.
func summarise(samples []thumbSample) (meanBytes, worst, meanSSIM float64) {
	if len(samples) == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	worst = math.Inf(1)
	for _, s := range samples {
		meanBytes += float64(s.bytes)
		meanSSIM += s.ssim
		worst = min(worst, s.ssim)
	}
	k := float64(len(samples))
	return meanBytes / k, worst, meanSSIM / k
}

func mean(v []float64) float64 {
	var sum float64
	for _, x := range v {
		sum += x
	}
	return sum / float64(len(v))
}

// cpu measures cold renders of source s at thumbHeight, every request a first render of a
// distinct image, 4 connections, in formatRounds interleaved rounds of four: the default
// tierpix for a client without WebP in its Accept, the same for a WebP client, the baseline
// tierpix, and vipsthumbnail on the original at path. Alternate rounds run in reverse order,
// so that drift falls on all four alike; each ratio is taken within a round.
func (f *formatsRun) cpu(ctx context.Context, s source, path string) error {
	perRun := s.formatSeeds / (3 * formatRounds)
	runs := map[string][]measured{}
	var vt []time.Duration
	for r := range formatRounds {
		order := []string{"auto", "webp", "base", "vipsthumbnail"}
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, k := range order {
			if k == "vipsthumbnail" {
				logf("vipsthumbnail, %s → h%d, round %d", s.label, thumbHeight, r+1)
				d, err := f.vipsthumbnail(ctx, s, path)
				if err != nil {
					return err
				}
				vt = append(vt, d)
				continue
			}
			fc := formatClients[slices.IndexFunc(formatClients, func(c formatClient) bool { return c.key == k })]
			in := f.instance(fc)
			logf("cold renders by format, %s → h%d, %s, round %d", s.label, thumbHeight, fc.label(s), r+1)
			ids := f.b.take(s.key, perRun)
			if len(ids) < perRun {
				return fmt.Errorf("the formats scenario needs more seeded %s images (formatSeeds)", s.label)
			}
			links := make([]string, len(ids))
			for i, id := range ids {
				links[i] = f.b.link(id, thumbHeight)
			}
			spec := wrkSpec{URL: in.base + "/", Conns: 4, Duration: formatDur, Mode: "once"}
			if fc.accept != "" {
				spec.Headers = []string{"Accept: " + fc.accept}
			}
			m, err := f.b.measure(ctx, in.target(), spec, links)
			if err != nil {
				return err
			}
			runs[k] = append(runs[k], m)
		}
	}
	f.b.rows = append(f.b.rows, f.cpuRows(s, runs, vt)...)
	return nil
}

// cpuRows makes the rows of one source's CPU comparisons. Their CPU column is the renders'
// own (what a request waits for, and what the targets are about), without the intermediates
// the first renders queue, which cost every client alike and which vipsthumbnail does not
// make; a note gives the total.
func (f *formatsRun) cpuRows(s source, runs map[string][]measured, vt []time.Duration) []row {
	orig := s.origName()
	name := fmt.Sprintf("cold render by format, %s → h%d, ", s.label, thumbHeight)
	baseName, autoName := "baseline (JPEG Q80, WebP off)", orig+" client (auto quality)"
	if s.png {
		baseName, autoName = "baseline (PNG, WebP off)", orig+" client"
	}
	rowOf := func(name string, runs []measured) row {
		r := combine(name, 4, runs)
		var renders, total time.Duration
		var each []string
		var during float64
		for _, m := range runs {
			renders += renderCPU(m) / time.Duration(len(runs))
			total += m.cpu / time.Duration(len(runs))
			each = append(each, fmtDur(renderCPU(m)))
			during += m.interDuring
		}
		r.CPU = renders
		r.Notes = append(r.Notes, "CPU per run: "+strings.Join(each, ", "))
		if len(runs) > 0 && runs[0].hasSplit {
			r.Notes = append(r.Notes, totalNote(total, during))
		}
		return r
	}
	base := rowOf(name+baseName, runs["base"])
	base.Target = "reference of the two rows below"
	auto := rowOf(name+autoName, runs["auto"])
	webp := rowOf(name+"WebP client", runs["webp"])
	cpuRatios := func(x, y []measured) []float64 {
		var r []float64
		for i := range min(len(x), len(y)) {
			r = append(r, float64(renderCPU(x[i]))/float64(renderCPU(y[i])))
		}
		return r
	}
	roundsNote := func(what string, r []float64) string {
		return fmt.Sprintf("CPU vs %s, round by round: %s (median %sx)", what, ratios(r), sig3(median(r)))
	}
	auto.Notes = append(auto.Notes, roundsNote("the baseline", cpuRatios(runs["auto"], runs["base"])))
	webpVsAuto := cpuRatios(runs["webp"], runs["auto"])
	webp.Target = "CPU ≤ 1.3x the " + orig + " client's"
	webp.Notes = append(webp.Notes, roundsNote("the "+orig+" client", webpVsAuto), roundsNote("the baseline", cpuRatios(runs["webp"], runs["base"])))
	webp.Holds = verdict(ratioOver(median(webpVsAuto), 1.3))

	// vipsthumbnail: tierpix's JPEG (PNG) client over it, round by round.
	var vtMean time.Duration
	for _, d := range vt {
		vtMean += d / time.Duration(len(vt))
	}
	vtRow := row{
		Scenario: fmt.Sprintf("vipsthumbnail, %s → h%d, %s", s.label, thumbHeight, vtOptions(s)),
		Conns:    1,
		CPU:      vtMean,
		Target:   "tierpix's " + orig + " client ≤ 1.0x this, within noise",
	}
	var tv, bv []float64
	for i, d := range vt {
		if i < len(runs["auto"]) && d > 0 {
			tv = append(tv, float64(renderCPU(runs["auto"][i]))/float64(d))
		}
		if i < len(runs["base"]) && d > 0 {
			bv = append(bv, float64(renderCPU(runs["base"][i]))/float64(d))
		}
	}
	vtRow.Notes = []string{
		fmt.Sprintf("one process per round on %d hard links of the original, VIPS_CONCURRENCY=1; start-up subtracted (`vipsthumbnail --vips-version`); minima of 3 runs each", vtBatch(s)),
	}
	if len(tv) > 0 {
		vtRow.Notes = append(vtRow.Notes,
			fmt.Sprintf("tierpix %s client (renders) / vipsthumbnail, round by round: %s (median %sx)", orig, ratios(tv), sig3(median(tv))),
			fmt.Sprintf("baseline tierpix / vipsthumbnail: %s (median %sx)", ratios(bv), sig3(median(bv))))
		vtRow.Holds = withinNoise(tv, 1.0)
	}
	return []row{base, auto, webp, vtRow}
}

// ratioOver is the failed part of a "≤ limit" target.
func ratioOver(got, limit float64) []string {
	if got > limit {
		return []string{fmt.Sprintf("median %sx > %sx", sig3(got), sig3(limit))}
	}
	return nil
}

// withinNoise judges a "≤ limit, within noise" target on per-round ratios: it holds when their
// median does, and within noise when the median does not but some round does (the spread of
// the rounds is the noise of the measurement).
func withinNoise(rounds []float64, limit float64) string {
	m := median(rounds)
	switch {
	case m <= limit:
		return "yes"
	case slices.Min(rounds) <= limit:
		return fmt.Sprintf("within noise: median %sx, rounds %sx to %sx", sig3(m), sig3(slices.Min(rounds)), sig3(slices.Max(rounds)))
	}
	return verdict(ratioOver(m, limit))
}

// vtOptions is how vipsthumbnail writes the thumbnail: as tierpix's baseline does for JPEG
// (Q80, 4:2:0, optimised Huffman tables, metadata stripped); for PNG, libvips' pngsave at
// tierpix's level 6 (tierpix writes its PNGs through libpng itself, choosing the row filter).
func vtOptions(s source) string {
	if s.png {
		return "png[compression=6,strip]"
	}
	return "jpg[Q=80,optimize_coding,strip,subsample_mode=on]"
}

// vtBatch is how many pictures one vipsthumbnail process makes: about a second's work, so
// that its start-up (some 0.1 s of CPU, varying by tens of ms) is a small part of it. A JPEG
// costs some 6 ns a pixel of the original (shrunk on load), a PNG some 45 (decoded in full).
func vtBatch(s source) int {
	ns := 6
	if s.png {
		ns = 45
	}
	return max(4, min(40, 1_000_000_000/(ns*s.w*s.h)))
}

// vipsthumbnail returns the CPU per picture of libvips' own vipsthumbnail making the
// thumbHeight thumbnail of the original at path, encoded as vtOptions says, with libvips on
// one thread as in tierpix. One process makes vtBatch(s) thumbnails, of hard links of the
// original under distinct names (so that libvips' operation cache never answers one from
// another); its CPU less that of `vipsthumbnail --vips-version`, over the batch, is the
// figure. Each command runs 3 times, in turn, and the minima count: noise only adds CPU.
func (f *formatsRun) vipsthumbnail(ctx context.Context, s source, path string) (time.Duration, error) {
	n := vtBatch(s)
	dir := filepath.Join(f.dir, "vipsthumbnail-"+s.key)
	outDir := filepath.Join(dir, "out")
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return 0, err
	}
	ext := filepath.Ext(s.file())
	var args []string
	for i := range n {
		link := filepath.Join(dir, strconv.Itoa(i)+ext)
		if _, err := os.Stat(link); err != nil {
			if err := os.Link(path, link); err != nil {
				return 0, err
			}
		}
		args = append(args, link)
	}
	args = append(args, "--size", "x"+strconv.Itoa(thumbHeight), "-o", filepath.Join(outDir, "%s."+vtOptions(s)))
	cpu := func(args ...string) (time.Duration, error) {
		cmd := exec.CommandContext(ctx, "vipsthumbnail", args...)
		cmd.Env = append(os.Environ(), "VIPS_CONCURRENCY=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("vipsthumbnail %s: %w: %s", strings.Join(args, " "), err, out)
		}
		return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
	}
	batch, start := time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
	for range 3 {
		d, err := cpu(args...)
		if err != nil {
			return 0, err
		}
		v, err := cpu("--vips-version")
		if err != nil {
			return 0, err
		}
		batch, start = min(batch, d), min(start, v)
	}
	// Proof that it made what tierpix makes: a thumbnail thumbHeight high.
	out, err := os.Open(filepath.Join(outDir, "0"+ext))
	if err != nil {
		return 0, fmt.Errorf("vipsthumbnail wrote no thumbnail: %w", err)
	}
	defer out.Close()
	cfg, _, err := image.DecodeConfig(out)
	if err != nil {
		return 0, fmt.Errorf("vipsthumbnail's thumbnail: %w", err)
	}
	if cfg.Height != thumbHeight {
		return 0, fmt.Errorf("vipsthumbnail's thumbnail is %d high, want %d", cfg.Height, thumbHeight)
	}
	return max(0, batch-start) / time.Duration(n), nil
}
