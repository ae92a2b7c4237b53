package main

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	const mib = 1 << 20
	for _, tt := range []struct {
		heap, stacks uint64
		want         int
	}{
		{0, 0, 200}, {20 * mib, 0, 200}, {300 * mib, 6 * mib, 196}, // JSON runs: small stacks
		{150 * mib, 150 * mib, 100}, {150 * mib, 175 * mib, 92}, // open streams
		{10 * mib, 500 * mib, 50}, // at least 50
	} {
		if got := gcPercentFor(tt.heap, tt.stacks); got != tt.want {
			t.Errorf("gcPercentFor(%d MiB heap, %d MiB stacks) = %d, want %d", tt.heap/mib, tt.stacks/mib, got, tt.want)
		}
	}
}

// TestLiveMemory: the samples the tuner reads exist in this Go and add up to something.
func TestLiveMemory(t *testing.T) {
	runtime.GC() // the live heap is known only once a collection has run
	s := make([]metrics.Sample, len(gcLiveSamples))
	for i, name := range gcLiveSamples {
		s[i].Name = name
	}
	if heap, stacks := liveMemory(s); heap == 0 || stacks == 0 {
		t.Fatalf("live heap %d, stacks %d; samples %+v", heap, stacks, s)
	}
	for _, v := range s {
		if v.Value.Kind() != metrics.KindUint64 {
			t.Fatalf("%s: kind %v, the runtime no longer has it", v.Name, v.Value.Kind())
		}
	}
}

// TestGCTuner: an operator's GOGC is left alone; otherwise the tuner sets the percentage and
// its goroutine ends when stopped.
func TestGCTuner(t *testing.T) {
	old := debug.SetGCPercent(77)
	defer debug.SetGCPercent(old)
	env := map[string]string{"GOGC": "77"}
	startGCTuner(func(k string) string { return env[k] }, time.Millisecond)()
	if got := debug.SetGCPercent(77); got != 77 {
		t.Fatalf("with GOGC set the tuner changed the percentage to %d", got)
	}
	stop := startGCTuner(func(string) string { return "" }, time.Millisecond)
	stop()
	if got := debug.SetGCPercent(old); got != gcPercentFor(liveMemoryNow()) && got != gcPercentMax {
		t.Fatalf("tuner left %d", got)
	}
}

func liveMemoryNow() (heap, stacks uint64) {
	s := make([]metrics.Sample, len(gcLiveSamples))
	for i, name := range gcLiveSamples {
		s[i].Name = name
	}
	return liveMemory(s)
}
