//go:build !race

package signing_test

// raceEnabled reports whether the race detector is on. Allocation counts are not meaningful
// under it, because sync.Pool then drops items at random.
const raceEnabled = false
