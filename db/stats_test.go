package db_test

import (
	"testing"
	"time"

	"github.com/agentgate/agentgate/db"
)

func TestRunStats(t *testing.T) {
	eachKind(t, func(t *testing.T, s *db.Store) {
		ctx := ctxOf(t)
		hour := time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour) // bucket 0 starts here
		mk := func(offset time.Duration, status string, lat int64) *db.Run {
			return &db.Run{EndpointID: "aep_s", OwnerID: "usr_s", Status: status, LatencyMs: lat,
				TokensInput: 10, TokensOutput: 5, CostMicroCents: 100, CreatedAt: hour.Add(offset)}
		}
		var runs []*db.Run
		// Bucket 0: latencies 1..20 ms, 3 errors, 1 timeout, 1 cancelled.
		for i := range 20 {
			status := db.RunSuccess
			switch i {
			case 0, 1, 2:
				status = db.RunError
			case 3:
				status = db.RunTimeout
			case 4:
				status = db.RunCancelled
			}
			runs = append(runs, mk(time.Duration(i)*time.Minute, status, int64(20-i)))
		}
		// Bucket 1 empty; bucket 2: one run; a running run is ignored; a run
		// before the window and one of another endpoint too.
		runs = append(runs, mk(2*time.Hour+time.Minute, db.RunSuccess, 700), mk(2*time.Hour, db.RunRunning, 9999),
			mk(-time.Minute, db.RunSuccess, 5))
		other := mk(0, db.RunSuccess, 1)
		other.EndpointID = "aep_other"
		runs = append(runs, other)
		must(t, s.SaveRuns(ctx, runs), "SaveRuns")

		got, err := s.RunStats(ctx, "aep_s", hour, time.Hour)
		must(t, err, "RunStats")
		// hour, +1, +2, +3 (the current hour; +4 if the clock just crossed an hour)
		if len(got) != 4 && len(got) != 5 {
			t.Fatalf("RunStats = %d buckets, want 4: %+v", len(got), got)
		}
		for i, b := range got {
			if !b.Start.Equal(hour.Add(time.Duration(i) * time.Hour)) {
				t.Fatalf("bucket %d starts %v", i, b.Start)
			}
		}
		want0 := db.StatBucket{Start: hour, Runs: 20, Errors: 4, P50Ms: 10, P95Ms: 19,
			TokensInput: 200, TokensOutput: 100, CostMicroCents: 2000}
		if got[0] != want0 {
			t.Fatalf("bucket 0 = %+v, want %+v", got[0], want0)
		}
		if got[1].Runs != 0 || got[1].P50Ms != 0 {
			t.Fatalf("bucket 1 = %+v, want empty", got[1])
		}
		if got[2].Runs != 1 || got[2].P50Ms != 700 || got[2].P95Ms != 700 {
			t.Fatalf("bucket 2 = %+v", got[2])
		}
		if _, err := s.RunStats(ctx, "aep_s", hour, 0); err == nil {
			t.Fatal("RunStats with a zero bucket accepted")
		}
		empty, err := s.RunStats(ctx, "aep_none", time.Now().Add(-90*time.Minute), 30*time.Minute)
		must(t, err, "RunStats(no runs)")
		if len(empty) < 3 || len(empty) > 5 {
			t.Fatalf("RunStats(no runs) = %d buckets, want 3 or 4", len(empty))
		}
	})
}
