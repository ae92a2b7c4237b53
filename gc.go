package main

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The Go collector lets the heap grow by GOGC percent of the live memory (live heap, goroutine
// stacks, globals) before the next collection. Unless the operator sets GOGC, the gateway picks
// the percentage from the live memory, once a second:
//
//   - small (up to 32 MiB, a gateway answering JSON runs): 200. The runtime's own 100 made
//     collections the main source of tail latency at 1,000 runs/s on 2 cores (added p99
//     2.4–2.6 ms at 100, 0.6–2.2 ms at 200; 400 was no better);
//   - larger (thousands of open streams, each a few goroutine stacks and a small heap): the
//     growth allowed stays at 64 MiB, down to 50 % from 128 MiB of live memory on. At 200 the
//     heap of 10,000 open streams grew to three times what they hold, about 12 KiB more per
//     stream (bench/README.md).
const (
	gcPercentMax = 200
	gcPercentMin = 50
	gcHeadroom   = 64 << 20
)

// gcPercentFor is the GOGC for live bytes of live memory.
func gcPercentFor(live uint64) int {
	if live == 0 {
		return gcPercentMax
	}
	return int(min(gcPercentMax, max(gcPercentMin, 100*gcHeadroom/live)))
}

// gcLiveSamples reads what the collector's goal is a percentage of.
var gcLiveSamples = []string{"/gc/heap/live:bytes", "/gc/scan/stack:bytes", "/gc/scan/globals:bytes"}

// liveMemory is the live heap at the last collection plus stacks and globals.
func liveMemory(s []metrics.Sample) uint64 {
	metrics.Read(s)
	var n uint64
	for _, v := range s {
		if v.Value.Kind() == metrics.KindUint64 {
			n += v.Value.Uint64()
		}
	}
	return n
}

// startGCTuner sets the GC percentage from the live memory every period, in a goroutine
// that the returned function stops (and waits for). It does nothing when the operator set GOGC.
func startGCTuner(getenv func(string) string, every time.Duration) (stop func()) {
	if getenv("GOGC") != "" {
		return func() {}
	}
	debug.SetGCPercent(gcPercentMax)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tuneGC(ctx, every, gcPercentMax)
	}()
	return func() { cancel(); <-done }
}

// tuneGC looks at the live memory every period until ctx is done; cur is the percentage set.
func tuneGC(ctx context.Context, every time.Duration, cur int) {
	s := make([]metrics.Sample, len(gcLiveSamples))
	for i, name := range gcLiveSamples {
		s[i].Name = name
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if p := gcPercentFor(liveMemory(s)); p != cur {
			cur = p
			debug.SetGCPercent(p)
		}
	}
}
