//go:build !race

package api

// raceEnabled reports whether the race detector is on. Allocation counts are not meaningful
// under it, because sync.Pool (the signer's) then drops items at random.
const raceEnabled = false
