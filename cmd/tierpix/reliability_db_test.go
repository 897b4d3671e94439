package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// privatePostgres is a PostgreSQL cluster of one test's own, which the test may freeze and
// stop without disturbing any other.
type privatePostgres struct {
	t      *testing.T
	bindir string
	dir    string // socket directory; the cluster is in dir/data
	cred   *syscall.Credential
	URL    string
}

// startPrivatePostgres initialises and starts a cluster in a new directory, listening on a
// unix socket only, as the postgres user when the test runs as root (initdb refuses root).
func startPrivatePostgres(t *testing.T) *privatePostgres {
	t.Helper()
	bindirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Sort(sort.Reverse(sort.StringSlice(bindirs)))
	pg := &privatePostgres{t: t}
	for _, d := range bindirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			pg.bindir = d
			break
		}
	}
	if pg.bindir == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("no PostgreSQL server binaries under /usr/lib/postgresql (make test installs them)")
		}
		t.Skip("no PostgreSQL server binaries under /usr/lib/postgresql")
	}
	dir, err := os.MkdirTemp("", "tierpix-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs a postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		pg.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	pg.dir = dir
	pg.URL = "postgres://postgres@/postgres?host=" + dir + "&sslmode=disable"
	pg.run("initdb", "-D", filepath.Join(dir, "data"), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
	pg.start()
	t.Cleanup(func() {
		pg.signalAll(syscall.SIGCONT)
		pg.runQuiet("pg_ctl", "-D", filepath.Join(dir, "data"), "-m", "immediate", "stop")
	})
	return pg
}

func (pg *privatePostgres) start() {
	pg.t.Helper()
	pg.run("pg_ctl", "-D", filepath.Join(pg.dir, "data"), "-l", filepath.Join(pg.dir, "server.log"), "-w", "-t", "60",
		"-o", "-c listen_addresses='' -k "+pg.dir+" -c fsync=off -c synchronous_commit=off -c full_page_writes=off", "start")
}

func (pg *privatePostgres) stop() {
	pg.t.Helper()
	pg.run("pg_ctl", "-D", filepath.Join(pg.dir, "data"), "-m", "fast", "-w", "stop")
}

func (pg *privatePostgres) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(pg.bindir, name), args...)
	if pg.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: pg.cred}
	}
	cmd.Dir = pg.dir
	return cmd
}

func (pg *privatePostgres) run(name string, args ...string) {
	pg.t.Helper()
	if out, err := pg.command(name, args...).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(pg.dir, "server.log"))
		pg.t.Fatalf("%s %v: %v\n%s\n%s", name, args, err, out, log)
	}
}

func (pg *privatePostgres) runQuiet(name string, args ...string) {
	pg.command(name, args...).Run() //nolint:errcheck // clean-up of a cluster that may be gone
}

// pids returns the postmaster and every process it started.
func (pg *privatePostgres) pids() []int {
	b, err := os.ReadFile(filepath.Join(pg.dir, "data", "postmaster.pid"))
	if err != nil {
		return nil
	}
	master, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		return nil
	}
	pids := []int{master}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
		fields := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(master) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func (pg *privatePostgres) signalAll(sig syscall.Signal) int {
	pids := pg.pids()
	for _, pid := range pids {
		syscall.Kill(pid, sig)
	}
	return len(pids)
}

// TestDatabaseTrouble replays a frozen and then a stopped PostgreSQL under the real binary:
// API requests are answered 503 with Retry-After within the database timeout, never held for
// the length of the outage nor answered 500; a thumbnail already rendered keeps answering 200
// quickly; the log does not flood; and the service recovers without a restart.
func TestDatabaseTrouble(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary and a PostgreSQL of its own")
	}
	pg := startPrivatePostgres(t)
	bin := buildBinary(t)
	p := startProcess(t, bin, t.TempDir(), "DATABASE_URL="+pg.URL, "TIERPIX_DB_TIMEOUT=2")
	s := &server{URL: p.URL, logs: p.logs}
	admin := s.basic(t, testAdmin, testAdminPW)

	var img imageJSON
	resp, body := admin.upload("before.jpg", gradientJPEG(t, 600, 400), &img)
	wantStatus(t, "upload", resp, body, http.StatusCreated)
	thumb := img.Links.Thumbnails[0].URL
	resp, body = getLink(t, thumb)
	wantStatus(t, "thumbnail before the outage", resp, body, http.StatusOK)

	// apiDuringOutage sends API requests in turn until stop is closed: each must be answered
	// 503 with Retry-After within 10 s.
	apiDuringOutage := func(t *testing.T, stop chan struct{}) (n int, slowest time.Duration) {
		requests := []func() (*http.Response, []byte){
			func() (*http.Response, []byte) { return admin.json("GET", "/api/me", nil, nil) },
			func() (*http.Response, []byte) { return admin.json("GET", "/api/images", nil, nil) },
			func() (*http.Response, []byte) { return admin.upload("during.jpg", gradientJPEG(t, 60, 40), nil) },
		}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return n, slowest
			default:
			}
			start := time.Now()
			resp, body := requests[i%len(requests)]()
			took := time.Since(start)
			slowest = max(slowest, took)
			select {
			case <-stop:
				// Answered after the outage ended: any answer goes.
				return n, slowest
			default:
			}
			n++
			if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
				t.Errorf("API request %d during the outage: got %d (Retry-After %q) %s, want 503 with Retry-After", i, resp.StatusCode, resp.Header.Get("Retry-After"), body)
			}
			if took > 10*time.Second {
				t.Errorf("API request %d during the outage took %v, want under 10 s", i, took)
			}
		}
	}
	// thumbnailDuringOutage polls the rendered thumbnail about once a second for d: each must
	// be 200 in under 2 s.
	thumbnailDuringOutage := func(t *testing.T, d time.Duration) (n int, slowest time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); n++ {
			start := time.Now()
			resp, body := getLink(t, thumb)
			took := time.Since(start)
			slowest = max(slowest, took)
			if resp.StatusCode != http.StatusOK || took > 2*time.Second {
				t.Errorf("thumbnail %.0f s into the outage: got %d in %v, want 200 in under 2 s (%s)", d.Seconds()-time.Until(end).Seconds(), resp.StatusCode, took, body)
			}
			time.Sleep(time.Second - min(took, time.Second))
		}
		return n, slowest
	}
	recovers := func(t *testing.T) {
		waitFor(t, 20*time.Second, "the API after the outage", func() bool {
			resp, _ := admin.json("GET", "/api/me", nil, nil)
			return resp.StatusCode == http.StatusOK
		})
		resp, body := admin.upload("after.jpg", gradientJPEG(t, 60, 40), nil)
		wantStatus(t, "upload after the outage", resp, body, http.StatusCreated)
	}

	t.Run("frozen", func(t *testing.T) {
		if n := pg.signalAll(syscall.SIGSTOP); n < 2 {
			t.Fatalf("froze %d PostgreSQL processes, want the postmaster and its backends", n)
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var apiN int
		var apiSlowest time.Duration
		wg.Add(1)
		go func() {
			defer wg.Done()
			apiN, apiSlowest = apiDuringOutage(t, stop)
		}()
		n, slowest := thumbnailDuringOutage(t, 30*time.Second)
		close(stop)
		// Thawed before waiting for the API requests, so that a request held for the whole
		// freeze fails the test instead of hanging it.
		pg.signalAll(syscall.SIGCONT)
		wg.Wait()
		t.Logf("30 s frozen: %d thumbnails, slowest %v; %d API requests answered 503, slowest %v", n, slowest, apiN, apiSlowest)
		recovers(t)
	})

	t.Run("stopped", func(t *testing.T) {
		pg.stop()
		logsBefore := p.logs.String()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var apiN int
		wg.Add(1)
		go func() {
			defer wg.Done()
			apiN, _ = apiDuringOutage(t, stop)
		}()
		n, slowest := thumbnailDuringOutage(t, 6*time.Second)
		close(stop)
		wg.Wait()

		resp, err := http.Get(p.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		var hb bytes.Buffer
		hb.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(hb.String(), `"database"`) || resp.Header.Get("Retry-After") == "" {
			t.Errorf("/healthz with the database stopped: got %d %s, want 503 naming the database, with Retry-After", resp.StatusCode, hb.String())
		}
		logs := strings.TrimPrefix(p.logs.String(), logsBefore)
		errorLines := strings.Count(logs, "level=ERROR")
		if errorLines > 10 {
			t.Errorf("the log got %d ERROR lines in 6 s of outage (%d API requests), want a handful:\n%s", errorLines, apiN, tail(logs, 3000))
		}
		t.Logf("stopped: %d thumbnails, slowest %v; %d API requests answered 503; %d ERROR and %d WARN lines logged",
			n, slowest, apiN, errorLines, strings.Count(logs, "level=WARN"))
		pg.start()
		recovers(t)
	})
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("...%s", s[len(s)-n:])
}
