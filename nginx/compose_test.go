package nginx_test

import (
	"flag"
	"maps"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
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

// TestProxyHeaders checks that every location of tierpix.conf that sets a request header of
// its own sets the server's too: nginx's proxy_set_header in a location replaces the server's
// whole list, and a location that forgot one would, say, close every upstream connection
// (Connection) or hide the client's address (X-Forwarded-For) without any answer changing.
func TestProxyHeaders(t *testing.T) {
	shipped, err := os.ReadFile("tierpix.conf")
	if err != nil {
		t.Fatal(err)
	}
	// The server's lines are indented once, a location's twice; a comment may follow.
	headers := func(indent, text string) map[string]string {
		set := map[string]string{}
		re := regexp.MustCompile(`(?m)^` + indent + `proxy_set_header (\S+) ([^;]+);`)
		for _, m := range re.FindAllStringSubmatch(text, -1) {
			set[m[1]] = m[2]
		}
		return set
	}
	server := headers("    ", string(shipped))
	if len(server) == 0 {
		t.Fatal("tierpix.conf sets no request header at the server level")
	}
	own := 0
	for _, loc := range regexp.MustCompile(`(?ms)^    location ([^{]*)\{\n(.*?)^    \}$`).FindAllStringSubmatch(string(shipped), -1) {
		set := headers("        ", loc[2])
		if len(set) == 0 {
			continue
		}
		own++
		for name, value := range server {
			if got, ok := set[name]; !ok || got != value {
				t.Errorf("location %s sets request headers of its own: got %s %s (set: %t), want %s, the server's", strings.TrimSpace(loc[1]), name, got, ok, value)
			}
		}
	}
	if own == 0 {
		t.Fatal("no location of tierpix.conf sets a request header; want the image location's Accept")
	}
}

// composeService is what TestComposeFile reads of a service of docker-compose.yml.
type composeService struct {
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   any               `yaml:"depends_on"` // a list of names, or names to conditions
	Networks    map[string]struct {
		IPv4Address string `yaml:"ipv4_address"`
	} `yaml:"networks"`
}

// TestComposeFile checks docker-compose.yml, which no test can run here (no Docker engine),
// for the deployment nodes_test.go tests: the replicas that compose.conf names share the
// database, one bucket on the file's S3 service and one signing key, with the same settings,
// and no volume, and start only once the bucket is made; nginx mounts compose.conf, and the
// replicas trust its address.
func TestComposeFile(t *testing.T) {
	b, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Services map[string]composeService `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &file); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	service := func(name string) composeService {
		t.Helper()
		s, ok := file.Services[name]
		if !ok {
			t.Fatalf("docker-compose.yml has no service %q", name)
		}
		return s
	}

	var first map[string]string
	volumes := map[string]string{} // volume: the replica that mounts it
	for i, srv := range composeServers {
		name := strings.Split(srv, ":")[0]
		s := service(name)
		env := s.Environment
		if i == 0 {
			first = env
		} else if !maps.Equal(env, first) {
			t.Errorf("%s: its environment differs from %s's; want the same settings on every replica", name, strings.Split(composeServers[0], ":")[0])
		}
		for _, v := range []string{"DATABASE_URL", "TIERPIX_SIGNING_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "TIERPIX_S3_REGION"} {
			if env[v] == "" {
				t.Errorf("%s: %s is not set", name, v)
			}
		}
		if !strings.HasPrefix(env["DATABASE_URL"], "postgres://") {
			t.Errorf("%s: DATABASE_URL %q, want PostgreSQL", name, env["DATABASE_URL"])
		}
		if env["TIERPIX_S3_PATH_STYLE"] != "true" {
			t.Errorf("%s: TIERPIX_S3_PATH_STYLE %q, want true (a service name is no bucket host)", name, env["TIERPIX_S3_PATH_STYLE"])
		}
		bucket, ok := strings.CutPrefix(env["TIERPIX_ORIGINALS"], "s3://")
		if !ok {
			t.Fatalf("%s: TIERPIX_ORIGINALS %q, want s3://BUCKET/PREFIX", name, env["TIERPIX_ORIGINALS"])
		}
		bucket, _, _ = strings.Cut(bucket, "/")
		endpoint, err := url.Parse(env["TIERPIX_S3_ENDPOINT"])
		if err != nil || endpoint.Hostname() == "" {
			t.Fatalf("%s: TIERPIX_S3_ENDPOINT %q, want the URL of the file's S3 service", name, env["TIERPIX_S3_ENDPOINT"])
		}
		s3 := service(endpoint.Hostname())
		if !slicesContainSeq(s3.Command, "--port", ":"+endpoint.Port()) {
			t.Errorf("%s: TIERPIX_S3_ENDPOINT %s, but service %s's command %q does not listen on port %s", name, endpoint, endpoint.Hostname(), s3.Command, endpoint.Port())
		}
		// The bucket is made by a one-shot service the replica waits for.
		mb := regexp.MustCompile(`\bs3 mb s3://` + regexp.QuoteMeta(bucket) + `(\s|$)`)
		deps, _ := s.DependsOn.(map[string]any)
		made := false
		for dep, cond := range deps {
			c, _ := cond.(map[string]any)
			if c["condition"] == "service_completed_successfully" && mb.MatchString(strings.Join(service(dep).Command, "\n")) {
				made = true
			}
		}
		if !made {
			t.Errorf("%s: depends on no service that completes after making the bucket %s (s3 mb s3://%s)", name, bucket, bucket)
		}
		// No directory shared with another replica.
		for _, v := range s.Volumes {
			src, _, _ := strings.Cut(v, ":")
			if other, ok := volumes[src]; ok {
				t.Errorf("%s and %s both mount %s; want no directory shared between replicas", other, name, src)
			}
			volumes[src] = name
		}
	}

	nginx := service("nginx")
	mounted := false
	for _, v := range nginx.Volumes {
		mounted = mounted || strings.HasPrefix(v, "./nginx/compose.conf:")
	}
	if !mounted {
		t.Errorf("nginx mounts %q, want ./nginx/compose.conf", nginx.Volumes)
	}
	if addr := nginx.Networks["default"].IPv4Address; addr == "" || first["TIERPIX_TRUSTED_PROXIES"] != addr {
		t.Errorf("the replicas trust %q, want nginx's address %q", first["TIERPIX_TRUSTED_PROXIES"], addr)
	}
}

// slicesContainSeq reports whether s holds a and b one after the other.
func slicesContainSeq(s []string, a, b string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] == a && s[i+1] == b {
			return true
		}
	}
	return false
}
