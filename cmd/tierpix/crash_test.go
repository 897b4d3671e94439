package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"
)

// process is a tierpix binary running as its own process, so it can be killed for real.
type process struct {
	cmd  *exec.Cmd
	URL  string
	logs *syncBuffer
}

// builtBinary is cmd/tierpix built once for every test of the package that runs it as a
// process of its own.
var builtBinary struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

// buildBinary returns the path of cmd/tierpix built (once per test binary) into a temp dir.
func buildBinary(t *testing.T) string {
	t.Helper()
	b := &builtBinary
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "tierpix-bin-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, "tierpix")
		b.out, b.err = exec.Command("go", "build", "-o", b.path, ".").CombinedOutput()
	})
	if b.err != nil {
		t.Fatalf("go build: %v\n%s", b.err, b.out)
	}
	return b.path
}

var listenRE = regexp.MustCompile(`tierpix listening" addr=(\S+)`)

// startProcess runs `tierpix serve` on 127.0.0.1:0 over dataDir and waits until it listens.
// env (NAME=value) is added last, so it overrides the defaults here.
func startProcess(t *testing.T, bin, dataDir string, env ...string) *process {
	t.Helper()
	p := &process{logs: &syncBuffer{}}
	p.cmd = exec.Command(bin, "serve")
	p.cmd.Env = append(os.Environ(),
		"TIERPIX_ADDR=127.0.0.1:0",
		"TIERPIX_DATA_DIR="+dataDir,
		"TIERPIX_ADMIN_USERNAME="+testAdmin,
		"TIERPIX_ADMIN_PASSWORD="+testAdminPW,
		"TIERPIX_SIGNING_KEY=crash-test-key-0123456789abcdefghijklmnop",
		"TIERPIX_LOG_LEVEL=info",
		"DATABASE_URL=",
	)
	p.cmd.Env = append(p.cmd.Env, env...)
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			p.logs.Write(append(s.Bytes(), '\n'))
			if m := listenRE.FindSubmatch(s.Bytes()); m != nil {
				addr <- string(m[1])
			}
		}
	}()
	select {
	case a := <-addr:
		p.URL = "http://" + a
	case <-time.After(60 * time.Second):
		t.Fatalf("tierpix did not start listening within 60s:\n%s", p.logs.String())
	}
	return p
}

// TestCrashLosesNoUpload kills the server with SIGKILL while uploads stream in, restarts it
// on the same data dir, and checks that every upload answered 201 is there with its exact
// bytes, that every original on disk is complete, and that no temp file outlives the restart.
func TestCrashLosesNoUpload(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the binary")
	}
	bin := buildBinary(t)
	dataDir := t.TempDir()
	p := startProcess(t, bin, dataDir)
	s := &server{URL: p.URL, DataDir: dataDir, logs: p.logs}

	// Distinct payloads, so every file on disk can be traced to exactly one upload.
	const uploaders, perUploader = 4, 40
	payloads := make([][]byte, uploaders*perUploader)
	sent := map[[32]byte]bool{}
	for i := range payloads {
		payloads[i] = noiseJPEG(t, 160, 120)
		sent[sha256.Sum256(payloads[i])] = true
	}

	var mu sync.Mutex
	accepted := map[string][]byte{} // image id -> bytes, for every 201 seen
	var wg sync.WaitGroup
	for u := 0; u < uploaders; u++ {
		wg.Add(1)
		go func(u int) {
			defer wg.Done()
			for i := 0; i < perUploader; i++ {
				data := payloads[u*perUploader+i]
				id, ok := tryUpload(s.URL, data)
				if !ok {
					return // the server is gone
				}
				mu.Lock()
				accepted[id] = data
				mu.Unlock()
			}
		}(u)
	}
	// Kill once some uploads have landed, while others are in flight.
	waitFor(t, 60*time.Second, "first uploads", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted) >= 10
	})
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
	wg.Wait()
	t.Logf("killed after %d accepted uploads", len(accepted))

	p2 := startProcess(t, bin, dataDir)
	admin := (&server{URL: p2.URL}).basic(t, testAdmin, testAdminPW)
	for id, data := range accepted {
		var img imageJSON
		resp, body := admin.json("GET", "/api/images/"+id, nil, &img)
		wantStatus(t, "accepted upload after the crash", resp, body, http.StatusOK)
		resp, got := getLink(t, img.Links.Original)
		wantStatus(t, "original after the crash", resp, got, http.StatusOK)
		if !bytes.Equal(got, data) {
			t.Fatalf("image %s: got %d bytes back, want the %d accepted", id, len(got), len(data))
		}
	}
	err := filepath.WalkDir(filepath.Join(dataDir, "originals"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !sent[sha256.Sum256(b)] {
			return fmt.Errorf("%s is not a complete upload (%d bytes)", path, len(b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := countFiles(t, filepath.Join(dataDir, "tmp")); n != 0 {
		t.Fatalf("after the restart: got %d temp files, want 0 (the start-up sweep removes dead uploads)", n)
	}
}

// tryUpload uploads data as the test admin and returns the new image id, or false when the
// request did not get a 201 (the server died under it).
func tryUpload(base string, data []byte) (string, bool) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("image", "crash.jpg")
	fw.Write(data)
	mw.Close()
	req, _ := http.NewRequest("POST", base+"/api/images", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.SetBasicAuth(testAdmin, testAdminPW)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusCreated {
		return "", false
	}
	m := regexp.MustCompile(`"id":"([a-z2-7]+)"`).FindSubmatch(body)
	if m == nil {
		return "", false
	}
	return string(m[1]), true
}
