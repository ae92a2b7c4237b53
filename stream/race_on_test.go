//go:build race

package stream_test

// raceEnabled: the race detector changes allocation counts, so allocation tests skip.
const raceEnabled = true
