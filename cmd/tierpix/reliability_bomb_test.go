package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// makeBombs writes, with the vips command line, two small files that decode to hundreds of
// megabytes: a 7000x7000 interlaced 16-bit RGBA PNG and a 7000x7000 progressive JPEG, both
// under the default 50 MP cap.
func makeBombs(t *testing.T) (pngPath, jpegPath string) {
	t.Helper()
	if _, err := exec.LookPath("vips"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("the decode-bomb test needs the vips command line (libvips-tools; make test installs it)")
		}
		t.Skip("the decode-bomb test needs the vips command line (libvips-tools)")
	}
	dir := t.TempDir()
	// The server started in this process (other tests run it in-process) blocks libvips'
	// untrusted loaders through the environment, and the .v files below are read by one.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VIPS_BLOCK_UNTRUSTED=") {
			env = append(env, kv)
		}
	}
	run := func(args ...string) {
		cmd := exec.Command("vips", args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("vips %v: %v\n%s", args, err, out)
		}
	}
	v4, v16, v3 := filepath.Join(dir, "a.v"), filepath.Join(dir, "b.v"), filepath.Join(dir, "c.v")
	pngPath, jpegPath = filepath.Join(dir, "bomb.png"), filepath.Join(dir, "bomb.jpg")
	run("black", v4, "7000", "7000", "--bands", "4")
	run("cast", v4, v16, "ushort")
	run("pngsave", v16, pngPath, "--interlace", "--bitdepth", "16", "--compression", "1")
	run("black", v3, "7000", "7000", "--bands", "3")
	run("jpegsave", v3, jpegPath, "--interlace", "--Q", "75")
	for _, v := range []string{v4, v16, v3} {
		os.Remove(v)
	}
	return pngPath, jpegPath
}

// peakRSS returns the process's peak resident set (VmHWM) and resets it.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var kib int64 = -1
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kib, _ = strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		}
	}
	if kib < 0 {
		t.Fatal("no VmHWM in /proc status")
	}
	os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) //nolint:errcheck // resets VmHWM where allowed
	return kib << 10
}

// TestDecodeBombs sends 16 and then 64 concurrent uploads of decode bombs, then renders one:
// the decode budget keeps the server's peak RSS under 1 GiB, and every answer is 201, or 503
// with Retry-After, never another 5xx.
func TestDecodeBombs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary with decode bombs")
	}
	pngBomb, jpegBomb := makeBombs(t)
	pngData, err := os.ReadFile(pngBomb)
	if err != nil {
		t.Fatal(err)
	}
	jpegData, err := os.ReadFile(jpegBomb)
	if err != nil {
		t.Fatal(err)
	}
	bin := buildBinary(t)
	p := startProcess(t, bin, t.TempDir(), os.Getenv("TIERPIX_TEST_BOMB_ENV"))
	s := &server{URL: p.URL, logs: p.logs}
	admin := s.basic(t, testAdmin, testAdminPW)
	pid := p.cmd.Process.Pid
	const limit = 1 << 30

	var pngImage imageJSON
	for _, n := range []int{16, 64} {
		peakRSS(t, pid)
		var mu sync.Mutex
		statuses := map[int]int{}
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				data, name := pngData, fmt.Sprintf("bomb-%d.png", i)
				if i%2 == 1 {
					data, name = jpegData, fmt.Sprintf("bomb-%d.jpg", i)
				}
				var img imageJSON
				resp, body := admin.upload(name, data, &img)
				mu.Lock()
				defer mu.Unlock()
				statuses[resp.StatusCode]++
				switch {
				case resp.StatusCode == http.StatusCreated:
					if i%2 == 0 {
						pngImage = img
					}
				case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
				default:
					t.Errorf("bomb upload %d: got %d %s, want 201, or 503 with Retry-After", i, resp.StatusCode, body)
				}
			}()
		}
		wg.Wait()
		peak := peakRSS(t, pid)
		t.Logf("%d concurrent bomb uploads: statuses %v, peak RSS %d MiB", n, statuses, peak>>20)
		if peak >= limit {
			t.Errorf("%d concurrent bomb uploads: peak RSS %d MiB, want under 1024 MiB", n, peak>>20)
		}
		if statuses[http.StatusCreated] == 0 {
			t.Errorf("%d concurrent bomb uploads: none accepted, want them admitted in turn", n)
		}
	}

	if pngImage.ID == "" {
		t.Fatal("no PNG bomb was accepted")
	}
	peakRSS(t, pid)
	resp, body := getLink(t, pngImage.Links.Thumbnails[0].URL)
	wantStatus(t, "200 px render of the PNG bomb", resp, body, http.StatusOK)
	peak := peakRSS(t, pid)
	t.Logf("first 200 px render of the PNG bomb: peak RSS %d MiB", peak>>20)
	if peak >= limit {
		t.Errorf("rendering the PNG bomb: peak RSS %d MiB, want under 1024 MiB", peak>>20)
	}
}
