// Package imagingtest starts libvips for a package's tests, as main does before serving.
package imagingtest

import (
	"fmt"
	"log/slog"
	"os"
	"testing"

	"github.com/tierpix/tierpix/imaging"
)

// Main starts libvips and runs the tests; call it from TestMain.
func Main(m *testing.M) {
	if err := imaging.Start(imaging.Config{}, slog.New(slog.DiscardHandler)); err != nil {
		fmt.Fprintln(os.Stderr, "start imaging:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
