// Command bench is the engine of `make bench` (scripts/bench.sh): it measures tierpix against
// the anchors and targets of issue 4 and prints one Markdown table.
//
// bench.sh installs the tools, builds tierpix and starts a throwaway PostgreSQL; this program
// does the rest, because it is what shell is bad at: it makes the source images, starts
// tierpix and nginx on 127.0.0.1, seeds the data (rows through SQL, originals as hard links
// of one file), signs links, runs bounded wrk scenarios, reads server CPU and peak RSS from
// /proc, measures the decode floor with the vips CLI, computes PSNR, and prints the table.
//
// Every comparison is a ratio measured in the same run: the machine drifts by 10-20% within
// minutes, so absolute numbers from different runs do not compare.
//
// Usage: go run ./scripts/bench -tierpix bin/tierpix -db postgres://... [-out bench-out] [-quick]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tierpix/tierpix/signing"
)

type options struct {
	tierpix string
	nginx   string
	db      string
	out     string
	quick   bool
	only    string // "" for every scenario, "users" for the user list's alone, "s3" for originals in S3, "formats" for issue 13's
	// versitygw is the S3 server of the scenario with originals in a bucket.
	versitygw string
}

// Durations of the wrk runs. The full run takes some 6-8 minutes on a 2-core machine.
var (
	hitDur     = 10 * time.Second // nginx, memory and disk hits: as the anchors' wrk -d10s
	coldDur    = 12 * time.Second // each cold-render run: as the anchors' wrk -d12s
	furtherDur = 10 * time.Second // each further-size run
	listDur    = 5 * time.Second  // each of the four list runs
)

// thumbHeight is the anchors' output height.
const thumbHeight = 200

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "==> "+format+"\n", args...)
}

func main() {
	var o options
	flag.StringVar(&o.tierpix, "tierpix", "", "the tierpix binary to measure")
	flag.StringVar(&o.nginx, "nginx", "nginx", "the nginx binary of the reference")
	flag.StringVar(&o.db, "db", "", "PostgreSQL URL of a database the bench may fill (it adds users and a million image rows)")
	flag.StringVar(&o.out, "out", "bench-out", "directory for the cached sources, the run's data and logs, and the results")
	flag.BoolVar(&o.quick, "quick", false, "run every scenario for a third of the time (to try the bench out; not for the record)")
	flag.StringVar(&o.only, "only", "", `"users" runs the user list scenario alone (a million users, every ordering); "s3" the cold renders with originals in S3 against local disk; "formats" the thumbnails by format (bytes, SSIM, cold-render CPU, vipsthumbnail)`)
	flag.StringVar(&o.versitygw, "versitygw", "", "the versitygw binary, the S3 server of the scenario with originals in a bucket")
	flag.Parse()
	if o.tierpix == "" || o.db == "" || (o.only != "" && o.only != "users" && o.only != "s3" && o.only != "formats") {
		fmt.Fprintln(os.Stderr, "usage: bench -tierpix BINARY -db POSTGRES_URL [-versitygw BINARY] [-out DIR] [-quick] [-only users|s3|formats]")
		os.Exit(2)
	}
	if o.quick {
		for _, d := range []*time.Duration{&hitDur, &coldDur, &furtherDur, &listDur, &userDur, &formatDur} {
			*d = max(2*time.Second, *d/3)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bench{o: o}
	err := b.run(ctx)
	b.cleanup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// instance is a running tierpix.
type instance struct {
	srv    *server
	base   string // http://127.0.0.1:port
	client *client
}

// target is what a run measures: the processes whose CPU and RSS count, and, for a tierpix,
// its client, to read /metrics.
type target struct {
	pids   []int
	client *client // nil: not a tierpix
}

func (in *instance) target() target { return target{pids: []int{in.srv.pid()}, client: in.client} }

type bench struct {
	o        options
	work     string // the run's directory: data, logs, nginx
	dataDir  string
	key      string
	signer   *signing.Signer
	adminPw  string
	db       *db
	a        *instance // tierpix with its default configuration; see restart
	rows     []row
	servers  []*server
	began    time.Time
	loadFrom string

	// Seeded image ids per source, and how many have been handed out to runs.
	ids  map[string][]string
	next map[string]int

	// formatTable is the formats scenario's table of bytes and SSIM ("" when it did not run).
	formatTable string
}

func (b *bench) cleanup() {
	for i := len(b.servers) - 1; i >= 0; i-- {
		b.servers[i].stop()
	}
	if b.db != nil {
		b.db.conn.Close(context.Background())
	}
}

// startTierpix starts a tierpix on a free port over the bench's data dir and database, with
// extra settings in env, and waits until /healthz answers.
func (b *bench) startTierpix(ctx context.Context, name string, env ...string) (*instance, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	cmd := exec.Command(b.o.tierpix, "serve")
	// Nothing from the caller's environment configures it: only what the bench says.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TIERPIX_") && !strings.HasPrefix(kv, "DATABASE_URL=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env,
		"TIERPIX_ADDR=127.0.0.1:"+strconv.Itoa(port),
		"TIERPIX_PUBLIC_URL="+base,
		"TIERPIX_DATA_DIR="+b.dataDir,
		"DATABASE_URL="+b.o.db,
		"TIERPIX_SIGNING_KEY="+b.key,
		"TIERPIX_ADMIN_USERNAME=benchadmin",
		"TIERPIX_ADMIN_PASSWORD="+b.adminPw,
		"TIERPIX_LOG_LEVEL=warn",
	)
	cmd.Env = append(cmd.Env, env...)
	srv, err := start(name, cmd, filepath.Join(b.work, name+".log"))
	if err != nil {
		return nil, err
	}
	b.servers = append(b.servers, srv)
	if err := srv.waitHTTP(ctx, base+"/healthz", 60*time.Second); err != nil {
		return nil, err
	}
	return &instance{srv: srv, base: base, client: newClient(base)}, nil
}

// restart replaces b.a with a fresh tierpix of the default configuration, so that a scenario
// starts from an empty memory cache and a small heap: peak RSS then shows what the scenario
// costs, not what earlier scenarios left in the cache. The data and the disk cache stay.
func (b *bench) restart(ctx context.Context, name string) error {
	b.a.srv.stop()
	a, err := b.startTierpix(ctx, name)
	if err != nil {
		return err
	}
	b.a = a
	return nil
}

func (b *bench) admin() func(*http.Request) { return basicAuth("benchadmin", b.adminPw) }

// link is the signed path of a thumbnail.
func (b *bench) link(id string, height int) string {
	return b.signer.Path(signing.Link{ImageID: id, Variant: signing.Thumbnail(height)})
}

// take hands out n seeded ids of a source that no run has used yet.
func (b *bench) take(key string, n int) []string {
	all := b.ids[key]
	from := b.next[key]
	to := min(len(all), from+n)
	b.next[key] = to
	return all[from:to]
}

func (b *bench) run(ctx context.Context) error {
	b.began = time.Now()
	b.loadFrom = loadavg()
	tools := []string{"wrk", b.o.nginx, "vips", "vipsthumbnail"}
	switch b.o.only {
	case "users":
		tools = []string{"wrk"}
	case "formats":
		tools = []string{"wrk", "vips", "vipsthumbnail"}
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("needs %s on PATH (scripts/bench.sh installs it): %w", tool, err)
		}
	}
	out, err := filepath.Abs(b.o.out)
	if err != nil {
		return err
	}
	var paths map[string]string
	var pics map[string][]string // the formats scenario's pictures
	var uploadPNG string
	if b.o.only != "users" {
		if paths, uploadPNG, err = makeSources(filepath.Join(out, "sources")); err != nil {
			return err
		}
	}
	if b.o.only == "" || b.o.only == "formats" {
		if pics, err = makeFormatPictures(filepath.Join(out, "sources"), paths); err != nil {
			return err
		}
		paths[screenshotSource.key] = pics[screenshotSource.key][0]
	}
	b.work = filepath.Join(out, "run")
	if err := os.RemoveAll(b.work); err != nil {
		return fmt.Errorf("clear the previous run: %w", err)
	}
	// nginx's workers run as nobody when the bench runs as root: they must reach the files.
	if err := os.MkdirAll(b.work, 0o755); err != nil {
		return err
	}
	os.Chmod(out, 0o755)
	b.dataDir = filepath.Join(b.work, "data")
	if b.key, err = signing.GenerateKey(); err != nil {
		return err
	}
	keys, _ := signing.ParseKeys(b.key)
	if b.signer, err = signing.New(keys); err != nil {
		return err
	}
	b.adminPw = "bench-admin-" + newID()

	logf("starting tierpix on PostgreSQL (%s)", describeDB(b.o.db))
	if b.a, err = b.startTierpix(ctx, "tierpix"); err != nil {
		return err
	}
	if b.db, err = openDB(ctx, b.o.db); err != nil {
		return err
	}
	if b.o.only == "users" {
		if err := b.userListScenario(ctx); err != nil {
			return err
		}
		return b.finish(ctx, out)
	}
	token, err := b.a.client.createUser(ctx, b.admin(), "bench", "Enterprise")
	if err != nil {
		return err
	}
	owner := bearer(token)

	// First, while the server holds nothing yet: the upload's peak RSS.
	if b.o.only == "" {
		if err := b.uploadScenario(ctx, owner, uploadPNG); err != nil {
			return err
		}
	}

	logf("uploading the sources and seeding rows")
	b.ids, b.next = map[string][]string{}, map[string]int{}
	for _, s := range formatSources() {
		n := s.seeds + s.s3Seeds + s.formatSeeds
		switch b.o.only {
		case "s3":
			n = s.seeds + s.s3Seeds
			if s.key != s3Source {
				n = 0
			}
		case "formats":
			n = s.formatSeeds
		}
		if n == 0 {
			continue
		}
		up, _, err := b.a.client.upload(ctx, owner, paths[s.key])
		if err != nil {
			return fmt.Errorf("upload %s: %w", s.file(), err)
		}
		format := "jpeg"
		if s.png {
			format = "png"
		}
		ids, err := b.db.seedCopies(ctx, b.dataDir, up, format, n)
		if err != nil {
			return err
		}
		b.ids[s.key] = ids
	}
	// One seeded link must render: proof the rows and hard links are what tierpix reads.
	proof := "075mp"
	if b.o.only == "s3" {
		proof = s3Source
	}
	if _, err := b.a.client.get(ctx, b.a.base+b.link(b.take(proof, 1)[0], thumbHeight)); err != nil {
		return fmt.Errorf("a seeded image does not render: %w", err)
	}
	switch b.o.only {
	case "s3":
		if err := b.s3Scenario(ctx, sourceOf(s3Source)); err != nil {
			return err
		}
		return b.finish(ctx, out)
	case "formats":
		if err := b.formatsScenario(ctx, owner, pics, filepath.Join(out, "sources")); err != nil {
			return err
		}
		return b.finish(ctx, out)
	}
	logf("seeding the list owners: 1 000 and 1 000 000 image rows")
	listTokens := map[string]string{}
	for _, u := range []struct {
		name string
		n    int
	}{{"list1k", 1000}, {"list1m", 1_000_000}} {
		tok, err := b.a.client.createUser(ctx, b.admin(), u.name, "Enterprise")
		if err != nil {
			return err
		}
		listTokens[u.name] = tok
		if err := b.db.seedMany(ctx, u.name, u.n); err != nil {
			return err
		}
	}
	if err := b.db.analyze(ctx); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}

	heights, err := b.tierHeights(ctx, "Enterprise")
	if err != nil {
		return err
	}
	rendered := map[string][]string{}
	for _, s := range sources {
		r, err := b.coldScenario(ctx, s, paths[s.key], heights)
		if err != nil {
			return err
		}
		rendered[s.key] = r
	}
	if err := b.s3Scenario(ctx, sourceOf(s3Source)); err != nil {
		return err
	}
	if err := b.hitScenarios(ctx, rendered["075mp"]); err != nil {
		return err
	}
	if err := b.listScenario(ctx, listTokens); err != nil {
		return err
	}
	if err := b.formatsScenario(ctx, owner, pics, filepath.Join(out, "sources")); err != nil {
		return err
	}
	// Last: its million users are left out of every scenario before it.
	if err := b.userListScenario(ctx); err != nil {
		return err
	}
	return b.finish(ctx, out)
}

// tierHeights returns a tier's thumbnail heights through the admin API.
func (b *bench) tierHeights(ctx context.Context, tier string) ([]int, error) {
	var t struct {
		Heights []int `json:"thumbnail_heights"`
	}
	if err := b.a.client.do(ctx, http.MethodGet, "/api/admin/tiers/"+tier, b.admin(), nil, "", http.StatusOK, &t); err != nil {
		return nil, err
	}
	return t.Heights, nil
}

// uploadScenario measures tierpix's peak RSS while it receives a 50 MiB upload, twice.
func (b *bench) uploadScenario(ctx context.Context, owner func(*http.Request), path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	logf("upload of a %.1f MiB PNG", float64(info.Size())/(1<<20))
	pids := b.a.target().pids
	var peak int64
	var took []time.Duration
	var cpu time.Duration
	for range 2 {
		if err := resetPeak(pids); err != nil {
			return err
		}
		before, err := cpuOf(pids)
		if err != nil {
			return err
		}
		if _, d, err := b.a.client.upload(ctx, owner, path); err != nil {
			return fmt.Errorf("50 MiB upload: %w", err)
		} else {
			took = append(took, d)
		}
		if err := waitIdle(pids, 30*time.Second); err != nil {
			return err
		}
		after, err := cpuOf(pids)
		if err != nil {
			return err
		}
		cpu += after - before
		p, err := peakRSS(pids)
		if err != nil {
			return err
		}
		peak = max(peak, p)
	}
	slices.Sort(took)
	r := row{
		Scenario: fmt.Sprintf("upload of a %.1f MiB PNG (%d×%d), twice", float64(info.Size())/(1<<20), uploadSide, uploadSide),
		Conns:    1,
		P50:      took[0],
		P99:      took[len(took)-1],
		CPU:      cpu / time.Duration(len(took)),
		RSS:      peak,
		Target:   "peak RSS < 100 MiB",
	}
	var failed []string
	if peak >= 100<<20 {
		failed = append(failed, fmt.Sprintf("%s ≥ 100 MiB", fmtMiB(peak)))
	}
	r.Holds = verdict(failed)
	r.Notes = append(r.Notes, "p50/p99: fastest/slowest upload")
	b.rows = append(b.rows, r)
	return nil
}

// measured is one measured run against a set of server processes.
type measured struct {
	wrk      wrkResult
	cpu      time.Duration // per request
	rss      int64         // peak over the run
	rssStart int64         // when the run began

	// counts is what tierpix's /metrics says the run did (hasCounts false: no /metrics).
	counts    originCounts
	hasCounts bool
	sent      int      // walk runs: requests sent
	ran       bool     // walk runs: a thread ran out of links
	used      []string // walk runs: the links asked for

	sentBy  map[int]int // walk runs: requests sent per wrk thread
	threads int

	// other is the CPU the rest of the machine (neither the server nor wrk) used during the
	// run, in cores: other engineers' work on a shared machine skews a run.
	other float64

	// Walk runs on a tierpix that makes intermediates in the background: cpu split into the
	// renders' own, per request, up to when the last was done, and what came after (the
	// intermediates they queued), per request. hasSplit is false where the tierpix has no
	// render gauges; interDuring is how many intermediates were made before the split.
	hasSplit            bool
	renderCPU, interCPU time.Duration
	interDuring         float64
}

// walked returns the items of list, parallel to the links of a walk run, that the run asked for.
func (m measured) walked(list []string) []string { return walked(list, m.threads, m.sentBy) }

// measure runs spec against the processes of t: it waits until they are idle, resets their
// peak RSS, runs wrk, and divides their CPU by the requests. For a walk (spec.Links) it waits
// for the renders the run left in flight as well and divides by the requests sent, which are
// the renders done; otherwise it divides by the completed requests at once. When the server
// has /metrics, its own count of the requests it answered is the divisor instead.
func (b *bench) measure(ctx context.Context, t target, spec wrkSpec, links []string) (measured, error) {
	var m measured
	pids := t.pids
	if err := waitIdle(pids, 60*time.Second); err != nil {
		return m, err
	}
	if links != nil {
		spec.Links = filepath.Join(b.work, "links.txt")
		spec.WalkOut = filepath.Join(b.work, "walk.out")
		os.Remove(spec.WalkOut)
		if err := os.WriteFile(spec.Links, []byte(strings.Join(links, "\n")+"\n"), 0o644); err != nil {
			return m, err
		}
	}
	var countsBefore originCounts
	if t.client != nil {
		var err error
		if countsBefore, m.hasCounts, err = fetchCounts(ctx, t.client); err != nil {
			return m, err
		}
	}
	if err := resetPeak(pids); err != nil {
		return m, err
	}
	var err error
	if m.rssStart, err = currentRSS(pids); err != nil {
		return m, err
	}
	before, err := cpuOf(pids)
	if err != nil {
		return m, err
	}
	busyBefore, err := machineBusy()
	if err != nil {
		return m, err
	}
	m.wrk, err = runWrk(ctx, b.work, spec)
	if err != nil {
		return m, err
	}
	after, err := cpuOf(pids)
	if err != nil {
		return m, err
	}
	if busyAfter, err := machineBusy(); err == nil && m.wrk.Wall > 0 {
		other := busyAfter - busyBefore - (after - before) - m.wrk.CPU
		m.other = max(0, float64(other)/float64(m.wrk.Wall))
	}
	n := m.wrk.Requests
	var rendersAt time.Duration
	if links != nil {
		if m.hasCounts {
			var at originCounts
			if rendersAt, at, m.hasSplit, err = rendersDone(ctx, t.client, pids, 60*time.Second); err != nil {
				return m, err
			}
			m.interDuring = at.sub(countsBefore).Intermediates
		}
		if err := waitIdle(pids, 60*time.Second); err != nil {
			return m, err
		}
		if after, err = cpuOf(pids); err != nil {
			return m, err
		}
		sent, exhausted, err := walkCounts(spec.WalkOut)
		if err != nil {
			return m, err
		}
		m.ran, m.sentBy, m.threads = exhausted, sent, wrkThreads(spec.Conns)
		for _, s := range sent {
			m.sent += s
		}
		n = m.sent
		m.used = m.walked(links)
	}
	if m.rss, err = peakRSS(pids); err != nil {
		return m, err
	}
	if m.hasCounts {
		after, _, err := fetchCounts(ctx, t.client)
		if err != nil {
			return m, err
		}
		m.counts = after.sub(countsBefore)
		// The server's own count is exact; wrk's may include a request it never sent.
		if m.counts.Requests > 0 {
			n = int(m.counts.Requests)
		}
	}
	if n > 0 {
		m.cpu = (after - before) / time.Duration(n)
		if m.hasSplit {
			m.renderCPU = (rendersAt - before) / time.Duration(n)
			m.interCPU = m.cpu - m.renderCPU
		}
	}
	return m, nil
}

// splitNote gives a walk run's total CPU where the row shows the renders' own (renderCPU):
// the total adds the intermediates the renders queued, made after the last render was done.
func (m measured) splitNote() []string {
	if !m.hasSplit || m.interCPU <= 0 {
		return nil
	}
	return []string{totalNote(m.cpu, m.interDuring)}
}

// totalNote is the note of a row whose CPU column is the renders' own: the total per request
// with the intermediates made after them, and how many made during the renders the column
// holds.
func totalNote(total time.Duration, during float64) string {
	note := fmt.Sprintf("CPU of the renders alone; with the intermediates made after them %s/req", fmtDur(total))
	if during > 0 {
		note += fmt.Sprintf(" (%.0f made during the renders are in the first figure)", during)
	}
	return note
}

// renderCPU is a walk run's CPU per request of the renders alone, where the tierpix lets it
// be told from that of the intermediates made after them (see measure), else all of it: what
// a request waits for, and what the cold targets are about.
func renderCPU(m measured) time.Duration {
	if m.hasSplit {
		return m.renderCPU
	}
	return m.cpu
}

// notes lists what went wrong in a run, for the notes column.
func (m measured) notes() []string {
	var n []string
	if m.wrk.Non2xx > 0 {
		n = append(n, fmt.Sprintf("**%d non-2xx answers**", m.wrk.Non2xx))
	}
	if m.wrk.SockErrs != "" {
		n = append(n, "socket errors: "+m.wrk.SockErrs)
	}
	if m.ran {
		n = append(n, "ran out of seeded images before the end")
	}
	return append(n, otherNote(m.other)...)
}

// renderNote says what /metrics counted in a run that should render every request.
func (m measured) renderNote() []string {
	if !m.hasCounts {
		return nil
	}
	c := m.counts
	note := fmt.Sprintf("/metrics: %.0f renders for %.0f requests", c.Renders, c.Requests)
	if c.MemoryHits+c.DiskHits > 0 {
		note += fmt.Sprintf(", **%.0f cache hits**", c.MemoryHits+c.DiskHits)
	}
	if c.Intermediates+c.IntermediatesDropped > 0 {
		note += fmt.Sprintf(", %.0f intermediates made in the background", c.Intermediates)
	}
	if c.IntermediatesDropped > 0 {
		note += fmt.Sprintf(", %.0f dropped", c.IntermediatesDropped)
	}
	return append([]string{note}, m.splitNote()...)
}

// otherNote says how much CPU the rest of the machine took during a run, when it matters.
func otherNote(cores float64) []string {
	if cores < 0.15 {
		return nil
	}
	return []string{fmt.Sprintf("other processes used %.1f cores meanwhile", cores)}
}

// decodeFloor is the CPU of `vips jpegload SRC out.v --shrink N` (pngload for PNG) less that
// of `vips --version`, with libvips on one thread as in tierpix. N is the shrink-on-load that
// libvips' thumbnail picks for the output height, as libvips itself reports it.
//
// The vips CLI spends some 150 ms of CPU starting up (it loads every libvips module), more
// than a 0.75 MP decode costs, and on a shared machine that start-up varies by tens of ms.
// So each command runs 9 times, in turn, and the floor is the difference of the minima: noise
// only ever adds CPU, so the minimum is the best estimate of each command's own cost.
func (b *bench) decodeFloor(ctx context.Context, s source, path string) (time.Duration, string, error) {
	out := filepath.Join(b.work, "floor.v")
	defer os.Remove(out)
	args := []string{"pngload", path, out}
	desc := "pngload"
	if !s.png {
		n, err := b.jpegShrink(ctx, s, path)
		if err != nil {
			return 0, "", err
		}
		args = []string{"jpegload", path, out, "--shrink", strconv.Itoa(n)}
		desc = fmt.Sprintf("jpegload --shrink %d", n)
	}
	cpu := func(args ...string) (time.Duration, error) {
		cmd := exec.CommandContext(ctx, "vips", args...)
		cmd.Env = append(os.Environ(), "VIPS_CONCURRENCY=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("vips %s: %w: %s", strings.Join(args, " "), err, out)
		}
		return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
	}
	load, start := time.Duration(math.MaxInt64), time.Duration(math.MaxInt64)
	for range 9 {
		l, err := cpu(args...)
		if err != nil {
			return 0, "", err
		}
		v, err := cpu("--version")
		if err != nil {
			return 0, "", err
		}
		load, start = min(load, l), min(start, v)
	}
	return max(0, load-start), desc, nil
}

var reShrink = regexp.MustCompile(`loading with factor (\d+) pre-shrink`)

// jpegShrink asks libvips which shrink-on-load its thumbnail picks for s at thumbHeight: it
// runs `vips thumbnail` as tierpix calls it (both sides forced) with VIPS_INFO=1 and reads
// the factor from libvips' log. Should that line change, it falls back to the rule of
// libvips 8.14 (thumbnailShrink).
func (b *bench) jpegShrink(ctx context.Context, s source, path string) (int, error) {
	width := int(math.Round(float64(s.w) * thumbHeight / float64(s.h)))
	out := filepath.Join(b.work, "shrink.v")
	defer os.Remove(out)
	cmd := exec.CommandContext(ctx, "vips", "thumbnail", path, out, strconv.Itoa(width),
		"--height", strconv.Itoa(thumbHeight), "--size", "force")
	cmd.Env = append(os.Environ(), "VIPS_INFO=1")
	text, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("vips thumbnail %s: %w: %s", path, err, text)
	}
	if m := reShrink.FindSubmatch(text); m != nil {
		return strconv.Atoi(string(m[1]))
	}
	return thumbnailShrink(s.w, s.h, thumbHeight), nil
}

// thumbnailShrink is the shrink-on-load factor libvips' thumbnail (8.14, thumbnail.c
// vips_thumbnail_find_jpegshrink) picks for a JPEG: from the smaller of the two axis shrinks,
// 8 if it is at least 16, 4 if at least 8, 2 if at least 4, else 1, always leaving at least a
// factor of two for the resize that follows.
func thumbnailShrink(w, h, height int) int {
	width := int(math.Round(float64(w) * float64(height) / float64(h)))
	shrink := min(float64(w)/float64(width), float64(h)/float64(height))
	switch {
	case shrink >= 16:
		return 8
	case shrink >= 8:
		return 4
	case shrink >= 4:
		return 2
	}
	return 1
}

// coldScenario renders source s from the original at 4 and 16 connections, every request a
// different image, then asks the rendered images for the tier's larger heights. It returns
// the ids rendered at thumbHeight.
func (b *bench) coldScenario(ctx context.Context, s source, path string, heights []int) ([]string, error) {
	floor, floorDesc, err := b.decodeFloor(ctx, s, path)
	if err != nil {
		return nil, err
	}
	if err := b.restart(ctx, "tierpix-"+s.key); err != nil {
		return nil, err
	}
	var rendered []string
	var firstCPU time.Duration
	for _, conns := range []int{4, 16} {
		logf("cold renders, %s, %d connections", s.label, conns)
		ids := b.take(s.key, s.seeds/3)
		links := make([]string, len(ids))
		for i, id := range ids {
			links[i] = b.link(id, thumbHeight)
		}
		m, err := b.measure(ctx, b.a.target(), wrkSpec{URL: b.a.base + "/", Conns: conns, Duration: coldDur, Mode: "once"}, links)
		if err != nil {
			return nil, err
		}
		rendered = append(rendered, m.walked(ids)...)
		cpu := renderCPU(m)
		if conns == 4 {
			firstCPU = cpu
		}
		r := row{
			Scenario: fmt.Sprintf("cold render, %s → h%d", s.label, thumbHeight),
			Conns:    conns, RPS: m.wrk.ReqPerSec, P50: m.wrk.P50, P99: m.wrk.P99, CPU: cpu, RSS: m.rss,
			Notes: append([]string{fmt.Sprintf("floor %s (%s)", fmtDur(floor), floorDesc),
				fmt.Sprintf("RSS %s at the start", fmtMiB(m.rssStart))}, m.notes()...),
		}
		r.Notes = append(r.Notes, m.renderNote()...)
		if floor > 0 {
			r.VsFloor = float64(cpu) / float64(floor)
		}
		var failed []string
		var target []string
		if s.imgproxyCPU > 0 {
			limit := time.Duration(s.imgproxyCPU * float64(time.Millisecond))
			target = append(target, fmt.Sprintf("CPU ≤ %s (imgproxy), ≤ 1.2x floor", fmtDur(limit)))
			if cpu > limit {
				failed = append(failed, fmt.Sprintf("CPU %.2fx imgproxy's", float64(cpu)/float64(limit)))
			}
			if r.VsFloor > 1.2 {
				failed = append(failed, fmt.Sprintf("%sx floor", sig3(r.VsFloor)))
			}
			if conns == 16 {
				target = append(target, "peak RSS ≤ 150 MiB")
				if m.rss > 150<<20 {
					failed = append(failed, fmt.Sprintf("RSS %s", fmtMiB(m.rss)))
				}
			}
			r.Target = strings.Join(target, "; ")
			r.Holds = verdict(failed)
		} else {
			r.Target = "reported (imgproxy wrote JPEG here)"
		}
		b.rows = append(b.rows, r)
	}

	// Further sizes: each rendered image asked once for each larger height of the tier, once
	// the intermediates the first renders queued in the background are built.
	waited, err := waitIntermediates(ctx, b.a.client, 60*time.Second)
	if err != nil {
		return nil, err
	}
	for _, h := range heights {
		if h <= thumbHeight {
			continue
		}
		logf("further size h%d of rendered images, %s, 4 connections", h, s.label)
		links := make([]string, len(rendered))
		for i, id := range rendered {
			links[i] = b.link(id, h)
		}
		m, err := b.measure(ctx, b.a.target(), wrkSpec{URL: b.a.base + "/", Conns: 4, Duration: furtherDur, Mode: "once"}, links)
		if err != nil {
			return nil, err
		}
		// Running out is expected when further sizes are cheap: there are only as many images
		// as the cold runs rendered, and the run ends once each has been asked (noted below).
		m.ran = false
		cpu := renderCPU(m)
		r := row{
			Scenario: fmt.Sprintf("further size, %s → h%d after h%d", s.label, h, thumbHeight),
			Conns:    4, RPS: m.wrk.ReqPerSec, P50: m.wrk.P50, P99: m.wrk.P99, CPU: cpu, RSS: m.rss,
			Target: "CPU ≤ 0.3x the first render's; PSNR ≥ 35 dB",
			Notes:  append(append(m.notes(), m.renderNote()...), waited),
		}
		if len(m.used) >= len(links) {
			r.Notes = append(r.Notes, fmt.Sprintf("ended when each of the %d rendered images had been asked", len(links)))
		}
		var failed []string
		ratio := float64(cpu) / float64(firstCPU)
		r.Notes = append(r.Notes, fmt.Sprintf("%sx the first render's CPU", sig3(ratio)))
		if ratio > 0.3 {
			failed = append(failed, fmt.Sprintf("%sx CPU", sig3(ratio)))
		}
		// Against a direct render: the same original under an id never rendered before.
		if len(m.used) == 0 {
			failed = append(failed, "no request completed")
		} else {
			worst := math.Inf(1)
			fresh := b.take(s.key, 2)
			for i, id := range fresh {
				ref, err := b.a.client.get(ctx, b.a.base+b.link(id, h))
				if err != nil {
					return nil, err
				}
				got, err := b.a.client.get(ctx, b.a.base+m.used[i*(len(m.used)-1)])
				if err != nil {
					return nil, err
				}
				p, err := psnrBytes(ref, got)
				if err != nil {
					return nil, fmt.Errorf("PSNR of h%d: %w", h, err)
				}
				worst = min(worst, p)
			}
			if math.IsInf(worst, 1) {
				r.Notes = append(r.Notes, "PSNR ∞ (identical pixels to a direct render)")
			} else {
				r.Notes = append(r.Notes, fmt.Sprintf("PSNR %.1f dB", worst))
				if worst < 35 {
					failed = append(failed, fmt.Sprintf("PSNR %.1f dB", worst))
				}
			}
		}
		r.Holds = verdict(failed)
		b.rows = append(b.rows, r)
	}
	return rendered, nil
}

// hitScenarios measures, back to back: nginx serving a thumbnail's bytes as a static file,
// tierpix answering it from memory, tierpix answering many distinct thumbnails from its disk
// cache with the memory cache off, and nginx again (the reference is the mean of the two
// nginx runs, and their difference shows the drift).
func (b *bench) hitScenarios(ctx context.Context, rendered []string) error {
	if len(rendered) < 100 {
		return fmt.Errorf("only %d images were rendered at h%d; the disk-cache scenario needs at least 100", len(rendered), thumbHeight)
	}
	pool := rendered[:min(len(rendered), 2000)]
	if err := b.restart(ctx, "tierpix-hits"); err != nil {
		return err
	}
	hot := b.a.base + b.link(pool[0], thumbHeight)
	body, err := b.a.client.get(ctx, hot)
	if err != nil {
		return err
	}

	// A second tierpix over the same data and database whose memory cache holds nothing: a
	// 1-byte budget is smaller than any thumbnail, and ristretto refuses items larger than
	// its whole budget (0 would mean the default).
	logf("starting a second tierpix with the memory cache off, and reading %d thumbnails through it", len(pool))
	cold, err := b.startTierpix(ctx, "tierpix-nomem", "TIERPIX_MEMORY_CACHE_BYTES=1")
	if err != nil {
		return err
	}
	links := make([]string, len(pool))
	for i, id := range pool {
		links[i] = b.link(id, thumbHeight)
	}
	// Every link once, so that each one is on disk (a run's last renders may not have been)
	// and the page cache and metadata are warm: the state of a disk cache in use.
	bodies, err := b.readAll(ctx, cold, links)
	if err != nil {
		return err
	}

	ng, ngPids, ngURL, err := b.startNginx(ctx, body, bodies)
	if err != nil {
		return err
	}
	defer ng.stop()
	// nginx's own copies of the same thumbnails, one file each, for the like-for-like
	// reference of the disk-cache row: the same number of distinct files, cycled by the same
	// wrk script (whose request() costs wrk, on the same two cores, what a one-URL run
	// does not).
	ngLinks := make([]string, len(bodies))
	for i := range bodies {
		ngLinks[i] = nginxThumbPath(i)
	}
	ngBase := strings.TrimSuffix(ngURL, "/thumb.jpg")

	// Interleaved, nginx first and last, so that the three see the same machine on average:
	// nginx, memory, disk, nginx, memory, disk, nginx.
	type series struct {
		name  string
		t     target
		spec  wrkSpec
		links []string
		runs  []measured
	}
	size := fmt.Sprintf("%.1f KB", float64(len(body))/1000)
	ngS := &series{name: "nginx static file, the same bytes as a h200 thumbnail (" + size + ")",
		t: target{pids: ngPids}, spec: wrkSpec{URL: ngURL, Conns: 64, Duration: hitDur}}
	memS := &series{name: "memory-cache hit, h200 thumbnail", t: b.a.target(),
		spec: wrkSpec{URL: hot, Conns: 64, Duration: hitDur}}
	diskS := &series{name: fmt.Sprintf("disk-cache hit, memory cache off, %d distinct h200 thumbnails", len(links)),
		t: cold.target(), spec: wrkSpec{URL: cold.base + "/", Conns: 64, Duration: hitDur, Mode: "cycle"}, links: links}
	ngManyS := &series{name: fmt.Sprintf("nginx static files, the same %d distinct h200 thumbnails", len(links)),
		t: target{pids: ngPids}, spec: wrkSpec{URL: ngBase + "/", Conns: 64, Duration: hitDur, Mode: "cycle"}, links: ngLinks}
	for _, s := range []*series{ngS, memS, ngManyS, diskS, ngS, memS, diskS, ngManyS, ngS} {
		logf("%s, %d connections, run %d", s.name, s.spec.Conns, len(s.runs)+1)
		m, err := b.measure(ctx, s.t, s.spec, s.links)
		if err != nil {
			return err
		}
		s.runs = append(s.runs, m)
	}
	cold.srv.stop()

	n := combine(ngS.name, 64, ngS.runs)
	n.ref, n.Target = true, "reference"
	n.Notes = append(n.Notes, "nginx -p: 2 workers, sendfile, open_file_cache, access_log off")
	m := combine(memS.name, 64, memS.runs)
	m.Target = "≥ 1.0x nginx static"
	m.Holds = verdict(ratioFails(m.RPS/n.RPS, 1.0))
	nm := combine(ngManyS.name, 64, ngManyS.runs)
	nm.Target = "reference of the disk-cache row"
	nm.Notes = append(nm.Notes, "links cycled by the same wrk script as the disk-cache row")
	d := combine(diskS.name, 64, diskS.runs)
	d.Target = "≥ 0.8x nginx static (the same files, cycled alike)"
	d.Holds = verdict(ratioFails(d.RPS/nm.RPS, 0.8))
	d.Notes = append(d.Notes, "links cycled by a wrk script, requests pre-formatted",
		fmt.Sprintf("%.2fx nginx serving its %d files cycled alike; %.2fx nginx serving one file", d.RPS/nm.RPS, len(links), d.RPS/n.RPS))
	b.rows = append(b.rows, n, m, nm, d)
	return nil
}

// combine makes one row of several runs of a scenario: the means of req/s, latencies and CPU
// per request, the highest peak RSS, each run's req/s in the notes, and what /metrics counted
// over all of them.
func combine(name string, conns int, runs []measured) row {
	r := row{Scenario: name, Conns: conns}
	k := float64(len(runs))
	var other float64
	var counts originCounts
	var rates []string
	for _, m := range runs {
		r.RPS += m.wrk.ReqPerSec / k
		r.P50 += time.Duration(float64(m.wrk.P50) / k)
		r.P99 += time.Duration(float64(m.wrk.P99) / k)
		r.CPU += time.Duration(float64(m.cpu) / k)
		r.RSS = max(r.RSS, m.rss)
		other += m.other / k
		counts = counts.add(m.counts)
		rates = append(rates, fmtRPS(m.wrk.ReqPerSec))
		m.other = 0 // noted once, as the mean, below
		r.Notes = append(r.Notes, m.notes()...)
	}
	if len(runs) > 1 {
		r.Notes = append([]string{fmt.Sprintf("mean of %d runs (%s req/s)", len(runs), strings.Join(rates, ", "))}, r.Notes...)
	}
	r.Notes = append(r.Notes, otherNote(other)...)
	if counts.MemoryHits+counts.DiskHits+counts.Renders > 0 {
		note := fmt.Sprintf("/metrics: %.0f memory hits, %.0f disk hits, %.0f renders",
			counts.MemoryHits, counts.DiskHits, counts.Renders)
		if counts.Intermediates+counts.IntermediatesDropped > 0 {
			note += fmt.Sprintf(", %.0f intermediates made in the background (%.0f dropped)", counts.Intermediates, counts.IntermediatesDropped)
		}
		r.Notes = append(r.Notes, note)
	}
	return r
}

func ratioFails(got, want float64) []string {
	if got < want {
		return []string{fmt.Sprintf("%sx < %sx", sig3(got), sig3(want))}
	}
	return nil
}

// readAll fetches every link once through in, two at a time, checking each answer is a
// thumbnail, and returns the bodies in the order of links. (Not that it is the same bytes as
// another's: a thumbnail made from a cached intermediate may differ by a few bytes from one
// made from the original.)
func (b *bench) readAll(ctx context.Context, in *instance, links []string) ([][]byte, error) {
	bodies := make([][]byte, len(links))
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	for w := range 2 {
		wg.Go(func() {
			for i := w; i < len(links); i += 2 {
				got, err := in.client.get(ctx, in.base+links[i])
				if err == nil && len(got) == 0 {
					err = fmt.Errorf("%s: got an empty body, want a thumbnail", links[i])
				}
				if err != nil {
					errc <- err
					return
				}
				bodies[i] = got
			}
		})
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return nil, err
	}
	return bodies, nil
}

// nginxConf serves root on 127.0.0.1:port as a static file server tuned as one would for
// thumbnails: a worker per core, sendfile, cached file descriptors, no access log, and long
// keep-alive (fasthttp keeps connections for as many requests as they bring).
const nginxConf = `worker_processes auto;
pid %[1]s/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    open_file_cache max=4000 inactive=60s;
    types { image/jpeg jpg; image/png png; }
    default_type application/octet-stream;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    server {
        listen 127.0.0.1:%[2]d;
        root %[1]s/www;
    }
}
`

// nginxThumbPath is the path under which startNginx serves the i-th of many thumbnails.
func nginxThumbPath(i int) string { return fmt.Sprintf("/t/%d.jpg", i) }

// startNginx starts nginx in the foreground serving body as /thumb.jpg and each of many at
// nginxThumbPath(i), and returns it, the pids of its master and workers, and body's URL.
func (b *bench) startNginx(ctx context.Context, body []byte, many [][]byte) (*server, []int, string, error) {
	dir := filepath.Join(b.work, "nginx")
	for _, d := range []string{"www/t", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, nil, "", err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "www", "thumb.jpg"), body, 0o644); err != nil {
		return nil, nil, "", err
	}
	for i, m := range many {
		if err := os.WriteFile(filepath.Join(dir, "www", nginxThumbPath(i)), m, 0o644); err != nil {
			return nil, nil, "", err
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, nil, "", err
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, nginxConf, dir, port), 0o644); err != nil {
		return nil, nil, "", err
	}
	cmd := exec.Command(b.o.nginx, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"), "-g", "daemon off;")
	srv, err := start("nginx", cmd, filepath.Join(b.work, "nginx.log"))
	if err != nil {
		return nil, nil, "", err
	}
	b.servers = append(b.servers, srv)
	url := fmt.Sprintf("http://127.0.0.1:%d/thumb.jpg", port)
	if err := srv.waitHTTP(ctx, url, 20*time.Second); err != nil {
		errLog, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return nil, nil, "", fmt.Errorf("%w\n%s", err, errLog)
	}
	got, err := newClient("").get(ctx, url)
	if err != nil {
		return nil, nil, "", err
	}
	if string(got) != string(body) {
		return nil, nil, "", errors.New("nginx serves other bytes than the thumbnail")
	}
	pids := append([]int{srv.pid()}, childrenOf(srv.pid())...)
	if len(pids) < 2 {
		return nil, nil, "", errors.New("found no nginx worker processes")
	}
	return srv, pids, url, nil
}

// listScenario fetches list pages of 20 for an owner of 1 000 images and one of 1 000 000,
// alternating twice so that drift falls on both alike, and counts the statements a page
// costs at page sizes 1, 20 and 100.
func (b *bench) listScenario(ctx context.Context, tokens map[string]string) error {
	runs := map[string][]measured{}
	for _, u := range []string{"list1k", "list1m"} {
		var page struct {
			Results []struct{} `json:"results"`
		}
		if err := b.a.client.do(ctx, http.MethodGet, "/api/images?limit=20", bearer(tokens[u]), nil, "", http.StatusOK, &page); err != nil {
			return err
		}
		if len(page.Results) != 20 {
			return fmt.Errorf("%s's first page has %d images, want 20", u, len(page.Results))
		}
	}
	for _, u := range []string{"list1k", "list1m", "list1k", "list1m"} {
		logf("list page of 20, %s, 4 connections", u)
		m, err := b.measure(ctx, b.a.target(), wrkSpec{URL: b.a.base + "/api/images?limit=20", Conns: 4, Duration: listDur,
			Headers: []string{"Authorization: Bearer " + tokens[u]}}, nil)
		if err != nil {
			return err
		}
		runs[u] = append(runs[u], m)
	}
	const what = "list page of 20 with links, PostgreSQL, owner of "
	small := combine(what+"1 000 images", 4, runs["list1k"])
	large := combine(what+"1 000 000 images", 4, runs["list1m"])
	ratio := float64(large.P50) / float64(small.P50)
	large.Target = "p50 ≤ 1.2x the 1 000 owner's; fixed statements per page"
	var failed []string
	if ratio > 1.2 {
		failed = append(failed, fmt.Sprintf("p50 %sx", sig3(ratio)))
	}
	large.Notes = append(large.Notes, fmt.Sprintf("p50 %sx the 1 000 owner's", sig3(ratio)))

	// Statements per page, counted by PostgreSQL itself.
	if b.db.statementsAvailable(ctx) {
		var counts []string
		var distinct []int64
		for _, limit := range []int{1, 20, 100} {
			path := fmt.Sprintf("/api/images?limit=%d", limit)
			auth := bearer(tokens["list1m"])
			if err := b.a.client.do(ctx, http.MethodGet, path, auth, nil, "", http.StatusOK, nil); err != nil {
				return err
			}
			if err := b.db.resetStatements(ctx); err != nil {
				return err
			}
			if err := b.a.client.do(ctx, http.MethodGet, path, auth, nil, "", http.StatusOK, nil); err != nil {
				return err
			}
			n, err := b.db.statements(ctx)
			if err != nil {
				return fmt.Errorf("count statements: %w", err)
			}
			counts = append(counts, strconv.FormatInt(n, 10))
			if !slices.Contains(distinct, n) {
				distinct = append(distinct, n)
			}
		}
		large.Notes = append(large.Notes, fmt.Sprintf("statements per page at limit 1/20/100: %s (pg_stat_statements)", strings.Join(counts, "/")))
		if len(distinct) != 1 {
			failed = append(failed, "statements vary with page size")
		}
	} else {
		large.Notes = append(large.Notes, "statements per page not counted: pg_stat_statements is not loaded in this database")
	}
	large.Holds = verdict(failed)
	b.rows = append(b.rows, small, large)
	return nil
}

// finish fills the ratios, prints the table and writes it, with the machine, to
// out/bench-results.md.
func (b *bench) finish(ctx context.Context, out string) error {
	var ref float64
	var nref int
	for _, r := range b.rows {
		if r.ref {
			ref += r.RPS
			nref++
		}
	}
	ref /= float64(nref)
	for i := range b.rows {
		if b.rows[i].RPS > 0 && nref > 0 {
			b.rows[i].VsNginx = b.rows[i].RPS / ref
		}
	}
	// The order of the targets table, nginx first as the reference.
	order := func(r row) int {
		switch {
		case r.ref:
			return 0
		case strings.HasPrefix(r.Scenario, "memory"):
			return 1
		case strings.HasPrefix(r.Scenario, "disk"):
			return 2
		case strings.HasPrefix(r.Scenario, "cold"), strings.HasPrefix(r.Scenario, "vipsthumbnail"):
			return 3
		case strings.HasPrefix(r.Scenario, "further"):
			return 4
		case strings.HasPrefix(r.Scenario, "list"):
			return 5
		case strings.HasPrefix(r.Scenario, "user list"):
			return 6
		}
		return 7
	}
	slices.SortStableFunc(b.rows, func(x, y row) int { return order(x) - order(y) })

	took := time.Since(b.began).Round(time.Second)
	var doc strings.Builder
	fmt.Fprintf(&doc, "Run of %s, %s in all (load average %s before, %s after).\n\n",
		b.began.UTC().Format("2006-01-02 15:04 UTC"), took, b.loadFrom, loadavg())
	doc.WriteString(markdown(b.rows))
	if b.formatTable != "" {
		doc.WriteString("\nThumbnail bytes and SSIM by format (luma SSIM against an exact Lanczos 3 reduction of the full original):\n\n")
		doc.WriteString(b.formatTable)
	}
	doc.WriteString("\n" + machine(b.o.tierpix, b.o.nginx, b.db.version(ctx)))
	path := filepath.Join(out, "bench-results.md")
	if err := os.WriteFile(path, []byte(doc.String()), 0o644); err != nil {
		return err
	}
	fmt.Println()
	fmt.Print(doc.String())
	fmt.Printf("\n(written to %s)\n", path)
	return nil
}
