package nginx_test

import (
	"flag"
	"os"
	"regexp"
	"strconv"
	"testing"
)

var update = flag.Bool("update", false, "regenerate compose.conf from tierpix.conf")

// composeServers are the upstreams of compose.conf: docker-compose.yml's two replicas.
var composeServers = []string{"tierpix1:8080", "tierpix2:8080"}

const composeHeader = "# Generated from tierpix.conf by `go test ./nginx -run TestComposeConf -update`; edit\n" +
	"# tierpix.conf, not this file. The upstreams are docker-compose.yml's two replicas.\n"

// TestComposeConf checks that compose.conf, which docker-compose.yml mounts, is tierpix.conf
// with the compose upstreams and nothing else, so the deployment runs the tested config. With
// -update it writes compose.conf instead.
func TestComposeConf(t *testing.T) {
	shipped, err := os.ReadFile("tierpix.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf, err := rewriteConf(string(shipped), site{Servers: composeServers})
	if err != nil {
		t.Fatalf("rewrite tierpix.conf: %v", err)
	}
	want := composeHeader + conf
	if *update {
		if err := os.WriteFile("compose.conf", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile("compose.conf")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatal("compose.conf is not tierpix.conf with the compose upstreams: run `go test ./nginx -run TestComposeConf -update`")
	}
}

// TestBodyLimit checks that nginx's limit on request bodies is tierpix's at its default cap
// (TIERPIX_MAX_UPLOAD_BYTES, 50 MiB, plus 1 MiB of multipart framing): lower, nginx would
// refuse uploads tierpix takes; higher, it would send on bodies tierpix refuses unread, which
// reach the client as a 502 (see tierpix.conf).
func TestBodyLimit(t *testing.T) {
	shipped, err := os.ReadFile("tierpix.conf")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*client_max_body_size (\d+)m;`).FindSubmatch(shipped)
	if m == nil {
		t.Fatal("tierpix.conf sets no client_max_body_size in megabytes")
	}
	if got, want := string(m[1]), strconv.Itoa(50+1); got != want {
		t.Fatalf("client_max_body_size is %s MiB, want %s MiB", got, want)
	}
}
