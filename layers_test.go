package tierpix_test

import (
	"os/exec"
	"strings"
	"testing"
)

// layers is the module's dependency order, as docs/ARCHITECTURE.md draws it: a package may
// import only packages of lower layers. Test-support packages (storetest, openapitest, ...)
// and scripts are left out: only tests and tools import them.
var layers = map[string]int{
	"":            0, // the domain: tierpix
	"problem":     1,
	"signing":     1,
	"store":       1,
	"imaging":     1,
	"metrics":     1,
	"api/openapi": 1,
	"signin":      2,
	"origin":      2,
	"service":     3,
	"api":         4,
	"web":         5,
	"cmd/tierpix": 6,
}

const module = "github.com/tierpix/tierpix"

// goList runs go list with a template over the module's packages.
func goList(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	return string(out)
}

func rel(pkg string) (string, bool) {
	if pkg == module {
		return "", true
	}
	return strings.CutPrefix(pkg, module+"/")
}

// TestLayers checks that every import in the module points down the layers, and the three
// promises ARCHITECTURE makes about them.
func TestLayers(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("needs the go command")
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(goList(t, "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"/...")), "\n") {
		fields := strings.Fields(line)
		from, _ := rel(fields[0])
		lf, ok := layers[from]
		if !ok {
			continue // a test-support package or a script
		}
		seen[from] = true
		for _, imp := range fields[1:] {
			to, inModule := rel(imp)
			if !inModule {
				continue
			}
			lt, ok := layers[to]
			if !ok {
				t.Errorf("%s imports %s, a package only tests and tools may import", fields[0], imp)
				continue
			}
			if lt >= lf {
				t.Errorf("%s (layer %d) imports %s (layer %d): imports must point to lower layers", fields[0], lf, imp, lt)
			}
		}
	}
	for pkg := range layers {
		if !seen[pkg] {
			t.Errorf("package %q of the layer table was not listed: update the table", pkg)
		}
	}

	for _, tt := range []struct {
		pkg       string
		forbidden []string
	}{
		{"api", []string{"web", "imaging", "origin", "service"}},
		{"metrics", []string{"api", "origin", "imaging", "store", "signin"}},
		{"web", []string{"imaging", "origin", "service"}},
	} {
		deps := goList(t, "-deps", module+"/"+tt.pkg)
		for _, f := range tt.forbidden {
			for _, d := range strings.Fields(deps) {
				if d == module+"/"+f {
					t.Errorf("go list -deps ./%s contains %s", tt.pkg, f)
				}
			}
		}
	}
}
