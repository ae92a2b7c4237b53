package db

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// StatBucket aggregates an endpoint's finished runs over [Start, Start+bucket).
type StatBucket struct {
	Start time.Time
	// Runs counts finished runs; Errors those with status error or timeout.
	Runs, Errors int
	// P50Ms and P95Ms are nearest-rank latency percentiles of the bucket.
	P50Ms, P95Ms                              int64
	TokensInput, TokensOutput, CostMicroCents int64
}

// maxStatBuckets bounds the answer so a tiny bucket over a long window
// cannot allocate without limit.
const maxStatBuckets = 10000

// RunStats buckets the endpoint's runs created at or after since (runs still
// running are left out). Buckets are aligned to multiples of bucket since
// the Unix epoch, contiguous (empty ones included) from the bucket holding
// since (or, for a zero since, the first run) to the one holding now or the
// last run, whichever is later.
func (s *Store) RunStats(ctx context.Context, endpointID string, since time.Time, bucket time.Duration) ([]StatBucket, error) {
	if bucket < time.Microsecond {
		return nil, errors.New("db: run stats: bucket must be at least 1µs")
	}
	rows, err := s.r.QueryContext(ctx, s.r.Rebind(`SELECT created_at, status, latency_ms, tokens_input, tokens_output, cost_micro_cents
		FROM runs WHERE endpoint_id = ? AND created_at >= ? AND status <> 'running' ORDER BY created_at`),
		endpointID, micros(since))
	if err != nil {
		return nil, fmt.Errorf("db: run stats: %w", err)
	}
	defer rows.Close()
	bw := bucket.Microseconds()
	last := floorDiv(micros(time.Now()), bw)
	first := last
	if !since.IsZero() {
		first = floorDiv(micros(since), bw)
	}
	type acc struct {
		b   StatBucket
		lat []int64
	}
	byIdx := map[int64]*acc{}
	for rows.Next() {
		var created, lat, tin, tout, cost int64
		var status string
		if err := rows.Scan(&created, &status, &lat, &tin, &tout, &cost); err != nil {
			return nil, fmt.Errorf("db: run stats: %w", err)
		}
		i := floorDiv(created, bw)
		a := byIdx[i]
		if a == nil {
			a = &acc{}
			byIdx[i] = a
		}
		a.b.Runs++
		if status == RunError || status == RunTimeout {
			a.b.Errors++
		}
		a.b.TokensInput += tin
		a.b.TokensOutput += tout
		a.b.CostMicroCents += cost
		a.lat = append(a.lat, lat)
		first, last = min(first, i), max(last, i)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("db: run stats: %w", err)
	}
	if last-first+1 > maxStatBuckets {
		return nil, fmt.Errorf("db: run stats: %d buckets exceed the limit of %d", last-first+1, maxStatBuckets)
	}
	out := make([]StatBucket, 0, last-first+1)
	for i := first; i <= last; i++ {
		var b StatBucket
		if a := byIdx[i]; a != nil {
			slices.Sort(a.lat)
			b = a.b
			b.P50Ms = percentile(a.lat, 50)
			b.P95Ms = percentile(a.lat, 95)
		}
		b.Start = fromMicros(i * bw)
		out = append(out, b)
	}
	return out, nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// percentile is the nearest-rank percentile p of sorted values.
func percentile(sorted []int64, p int) int64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 · n)
	return sorted[max(rank, 1)-1]
}
