package tierpix_test

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// readFile returns a file of the repository as text.
func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestReadme checks what the README promises a newcomer against the repository: the Go
// version go.mod asks for, an API token that is minted and then used, and how to recover a
// lost admin password.
func TestReadme(t *testing.T) {
	readme := readFile(t, "README.md")
	goLine := regexp.MustCompile(`(?m)^go (\S+)$`).FindStringSubmatch(readFile(t, "go.mod"))
	if goLine == nil {
		t.Fatal("go.mod: no go line")
	}
	for _, m := range regexp.MustCompile(`Go (\d[\d.]*) or newer`).FindAllStringSubmatch(readme, -1) {
		if m[1] != goLine[1] {
			t.Errorf("README says Go %s or newer; go.mod's go line is %s", m[1], goLine[1])
		}
	}
	if !strings.Contains(readme, "Needs Go "+goLine[1]+" or newer") {
		t.Errorf("README: want \"Needs Go %s or newer\"", goLine[1])
	}
	for _, want := range []string{
		`-H "Authorization: Bearer $TOKEN" -F image=@docs/example.jpg $TP/api/images`,
		`-H "Authorization: Bearer $TOKEN" "$TP/api/images?limit=20"`,
		"TIERPIX_ADMIN_PASSWORD=",
	} {
		if !strings.Contains(readme, want) {
			t.Errorf("README: want %q", want)
		}
	}
}

// TestRunScriptProgress checks that make run says what it is doing: a line before each slow
// step, and a dot per package go build -v names, compile errors passed through.
func TestRunScriptProgress(t *testing.T) {
	run, lib := readFile(t, "scripts/run.sh"), readFile(t, "scripts/lib.sh")
	for _, step := range []struct{ script, before, what string }{
		{run, "\ngo build ", "==> building tierpix"},
		{run, "\nexec bin/tierpix serve", "==> starting tierpix"},
		{lib, "apt-get install -y -qq --no-install-recommends libvips-dev", "==> installing libvips"},
	} {
		i, j := strings.Index(step.script, step.what), strings.Index(step.script, step.before)
		if i < 0 || j < 0 || i > j {
			t.Errorf("want %q said before %q", step.what, step.before)
		}
	}
	if strings.Contains(lib, "Go 1.") {
		t.Errorf("scripts/lib.sh names a Go version; want go.mod's, read by go_version")
	}

	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	tests := []struct {
		name, in, want string
	}{
		{name: "packages", in: "github.com/a/b\ninternal/abi\n", want: "    .. 2 packages\n"},
		{name: "one", in: "runtime\n", want: "    . 1 package\n"},
		{name: "nothing to build", in: "", want: ""},
		{name: "an error", in: "web\n# github.com/tierpix/tierpix/web\nweb/docs.go:1:2: undefined: x\n",
			want: "    .\n# github.com/tierpix/tierpix/web\nweb/docs.go:1:2: undefined: x\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bash, "-c", ". scripts/lib.sh && progress_dots")
			cmd.Stdin = strings.NewReader(tt.in)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("progress_dots: %v: %s", err, out)
			}
			if string(out) != tt.want {
				t.Errorf("progress_dots(%q): got %q, want %q", tt.in, out, tt.want)
			}
		})
	}
}
