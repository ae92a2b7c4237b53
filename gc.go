package main

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The Go collector lets the heap grow by GOGC percent of the live memory (live heap plus
// goroutine stacks) before the next collection. Unless the operator sets GOGC, the gateway
// sets it once a second so that the heap may grow by twice the live heap, whatever the stacks:
// GOGC = 200 × heap / (heap + stacks), at least 50.
//
//   - A gateway answering JSON runs has small stacks: 200. Go's own 100 made collections the
//     main source of tail latency at 1,000 runs/s on 2 cores (added p99 2.4–2.6 ms at 100,
//     0.6–2.2 ms at 200; 400 was no better), measured when finished runs' events still stayed
//     in memory for 30 s (a live heap of hundreds of MiB). Now only async runs' do, the live
//     heap of such a gateway is a few MiB, and collections are about 1 % of its CPU.
//   - With thousands of open streams, stacks are more than half the live memory: at a fixed
//     200 they let 10,000 streams' heap grow to about three times what the streams hold
//     (≈ 47–51 KiB of RSS per stream instead of ≈ 41, bench/README.md).
//
// (A policy on live memory alone, 200 falling to 50 past 32 MiB, also shrank the streams, but
// a busy gateway's lingering runs took it to 50 and its streaming TTFT p99 rose from ≈ 2 to
// 30–400 ms in the full bench.)
const (
	gcPercentMax = 200
	gcPercentMin = 50
)

// gcPercentFor is the GOGC for a live heap of heap bytes and stacks bytes of goroutine stacks.
func gcPercentFor(heap, stacks uint64) int {
	if heap+stacks == 0 {
		return gcPercentMax
	}
	return int(max(gcPercentMin, gcPercentMax*heap/(heap+stacks)))
}

// gcLiveSamples are the live heap at the last collection and the stacks' size.
var gcLiveSamples = []string{"/gc/heap/live:bytes", "/gc/scan/stack:bytes"}

// liveMemory reads the live heap and the stacks.
func liveMemory(s []metrics.Sample) (heap, stacks uint64) {
	metrics.Read(s)
	get := func(v metrics.Value) uint64 {
		if v.Kind() == metrics.KindUint64 {
			return v.Uint64()
		}
		return 0
	}
	return get(s[0].Value), get(s[1].Value)
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
