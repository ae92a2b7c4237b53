package main

import (
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestGCPercentFor(t *testing.T) {
	for _, tt := range []struct {
		live uint64
		want int
	}{
		{0, 200}, {1 << 20, 200}, {32 << 20, 200}, {48 << 20, 133}, {64 << 20, 100},
		{128 << 20, 50}, {4 << 30, 50},
	} {
		if got := gcPercentFor(tt.live); got != tt.want {
			t.Errorf("gcPercentFor(%d MiB) = %d, want %d", tt.live>>20, got, tt.want)
		}
	}
}

// TestLiveMemory: the samples the tuner reads exist in this Go and add up to something.
func TestLiveMemory(t *testing.T) {
	s := make([]metrics.Sample, len(gcLiveSamples))
	for i, name := range gcLiveSamples {
		s[i].Name = name
	}
	if n := liveMemory(s); n == 0 {
		t.Fatalf("live memory 0; samples %+v", s)
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

func liveMemoryNow() uint64 {
	s := make([]metrics.Sample, len(gcLiveSamples))
	for i, name := range gcLiveSamples {
		s[i].Name = name
	}
	return liveMemory(s)
}
