//go:build linux

package main

import (
	"context"
	"math"
	"sort"
	"sync"
	"time"
)

// sample is the outcome of one request.
type sample struct {
	target string        // "gateway" or "direct"
	lat    time.Duration // from the intended send time to the end of the answer
	err    string        // empty on success
	// Optional measurements (negative when not measured).
	overheadMs float64       // X-Agentgate-Overhead-Ms
	ttft       time.Duration // from the intended send time to the first token
	gaps       []time.Duration
}

// openLoop calls fn at a fixed rate for dur: request i is due at start + i/rate whatever
// happened to earlier ones (open loop), and fn measures latency from that due time, so a
// stalled server cannot hide its queueing delay by slowing the generator down (coordinated
// omission). At most maxInflight calls run at once; a call due while that many are open is
// counted as an error, not delayed. Every call gets ctx, which bounds the whole phase.
func openLoop(ctx context.Context, rate float64, dur time.Duration, maxInflight int, fn func(ctx context.Context, i int, due time.Time) sample) []sample {
	n := int(rate * dur.Seconds())
	out := make([]sample, n)
	sem := make(chan struct{}, maxInflight)
	var wg sync.WaitGroup
	interval := float64(time.Second) / rate
	start := time.Now().Add(10 * time.Millisecond)
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for i := 0; i < n; i++ {
		due := start.Add(time.Duration(float64(i) * interval))
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				out = out[:i]
				wg.Wait()
				return out
			}
		}
		select {
		case sem <- struct{}{}:
		default:
			out[i] = sample{err: "generator: too many requests in flight"}
			continue
		}
		wg.Add(1)
		go func(i int, due time.Time) {
			defer wg.Done()
			defer func() { <-sem }()
			out[i] = fn(ctx, i, due)
		}(i, due)
	}
	wg.Wait()
	return out
}

// dist is a latency distribution in milliseconds.
type dist struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

func distOf(ds []time.Duration) dist {
	if len(ds) == 0 {
		return dist{}
	}
	ms := make([]float64, len(ds))
	sum := 0.0
	for i, d := range ds {
		ms[i] = float64(d) / float64(time.Millisecond)
		sum += ms[i]
	}
	return distOfMs(ms, sum)
}

func distOfFloat(ms []float64) dist {
	sum := 0.0
	for _, v := range ms {
		sum += v
	}
	return distOfMs(append([]float64(nil), ms...), sum)
}

func distOfMs(ms []float64, sum float64) dist {
	if len(ms) == 0 {
		return dist{}
	}
	sort.Float64s(ms)
	q := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(ms)))) - 1
		return round(ms[max(i, 0)], 3)
	}
	return dist{N: len(ms), P50: q(.50), P90: q(.90), P99: q(.99), Max: round(ms[len(ms)-1], 3), Mean: round(sum/float64(len(ms)), 3)}
}

// minus is d − o per percentile (the added latency of d over the baseline o).
func (d dist) minus(o dist) dist {
	return dist{N: d.N, P50: round(d.P50-o.P50, 3), P90: round(d.P90-o.P90, 3), P99: round(d.P99-o.P99, 3),
		Max: round(d.Max-o.Max, 3), Mean: round(d.Mean-o.Mean, 3)}
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// split sorts samples of one target into latencies, errors and the first error text.
func split(ss []sample, target string) (lat []time.Duration, errs int, firstErr string) {
	for _, s := range ss {
		if s.target != target && s.target != "" {
			continue
		}
		if s.err != "" {
			if s.target == "" && target != "gateway" {
				continue // generator refusals are counted once, on the gateway side
			}
			errs++
			if firstErr == "" {
				firstErr = s.err
			}
			continue
		}
		lat = append(lat, s.lat)
	}
	return lat, errs, firstErr
}
