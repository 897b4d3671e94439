//go:build race

package api

// raceEnabled reports whether the race detector is on; see norace_test.go.
const raceEnabled = true
