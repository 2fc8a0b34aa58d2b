//go:build race

package store

// raceEnabled shortens TestKill9: the race detector watches goroutines of
// one process and adds nothing to a test of killed processes, only time.
const raceEnabled = true
