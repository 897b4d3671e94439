package imaging_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tierpix/tierpix/imaging"
)

// validateChildEnv names the file a re-executed test binary validates; see TestValidateMemory.
const validateChildEnv = "TIERPIX_IMAGING_VALIDATE_CHILD"

// vmHWM reads the peak resident set size of this process in KiB.
func vmHWM() (int, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			return strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
		}
	}
	return 0, errors.New("no VmHWM line in /proc/self/status")
}

// validateChild is what a test binary re-executed by TestValidateMemory does instead of
// running tests (see TestMain): validate one file and print its own peak RSS before and after.
func validateChild(path string) int {
	before, err := vmHWM()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	info, err := imaging.Validate(context.Background(), path, 60_000_000, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "validate:", err)
		return 1
	}
	after, err := vmHWM()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("RESULT %d %d %d %d\n", info.Width, info.Height, before, after)
	return 0
}

// TestValidateMemory validates a 50 MP JPEG in a fresh process, so that generating the file
// does not count, and checks that the peak RSS stays far below the 150 MB its decoded pixels
// would take: the decode must stream.
func TestValidateMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("generates a 50 MP JPEG")
	}
	const w, h = 8660, 5774 // 50 003 840 pixels
	path := filepath.Join(t.TempDir(), "50mp.jpg")
	encodeJPEGFile(t, path, smoothNoise(w, h))

	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.count=1")
	cmd.Env = append(os.Environ(), validateChildEnv+"="+path)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	var width, height, before, after int
	for _, line := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "RESULT "); ok {
			f := strings.Fields(rest)
			width, _ = strconv.Atoi(f[0])
			height, _ = strconv.Atoi(f[1])
			before, _ = strconv.Atoi(f[2])
			after, _ = strconv.Atoi(f[3])
		}
	}
	if width != w || height != h {
		t.Fatalf("got %d×%d, want %d×%d; child output:\n%s", width, height, w, h, out)
	}
	t.Logf("validating a %d×%d JPEG: peak RSS %d KiB before, %d KiB after (pixels decoded whole: %d KiB)",
		w, h, before, after, w*h*3/1024)
	// The growth is what validation costs; the base differs with build flags (-race adds
	// tens of MiB). Decoding whole would grow it by the full pixel size.
	const limitKiB = 32 * 1024
	if grew := after - before; grew > limitKiB {
		t.Errorf("got peak RSS growth %d KiB, want at most %d KiB", grew, limitKiB)
	}
}
