package db_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/agentgate/agentgate/db"
	"github.com/agentgate/agentgate/db/dbtest"
)

// benchBatches are the batch sizes of the run-log benchmarks: a lone record,
// a typical flush and a large one (the server's flush is at most 512 items).
var benchBatches = []int{1, 100, 500}

// BenchmarkSaveRuns measures one SaveRuns batch of new, finished runs (the
// server's run-log flush) per op, for each database and batch size. It also
// reports records/s.
func BenchmarkSaveRuns(b *testing.B) {
	for _, kind := range dbtest.Kinds(b) {
		for _, n := range benchBatches {
			b.Run(fmt.Sprintf("%s/batch=%d", kind, n), func(b *testing.B) {
				s := dbtest.Open(b, kind)
				ctx := ctxOf(b)
				fin := time.Now()
				runs := make([]*db.Run, n)
				for i := range runs {
					runs[i] = &db.Run{EndpointID: "aep_b", OwnerID: "usr_b", Status: db.RunSuccess,
						Input: "input text", Output: "some output text of moderate length",
						ToolCalls: json.RawMessage(`[{"name":"lookup","success":true}]`), TokensInput: 312,
						TokensOutput: 67, CostMicroCents: 800000, LatencyMs: 1456, TTFTMs: 210, Iterations: 2,
						FinishedAt: &fin}
				}
				for i := 0; b.Loop(); i++ {
					for j, r := range runs {
						r.ID = fmt.Sprintf("run_%09d_%03d", i, j)
					}
					if err := s.SaveRuns(ctx, runs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}

// BenchmarkAppendEvents measures one AppendEvents batch of new events per op,
// for each database and batch size. It also reports records/s.
func BenchmarkAppendEvents(b *testing.B) {
	for _, kind := range dbtest.Kinds(b) {
		for _, n := range benchBatches {
			b.Run(fmt.Sprintf("%s/batch=%d", kind, n), func(b *testing.B) {
				s := dbtest.Open(b, kind)
				ctx := ctxOf(b)
				for i := 0; b.Loop(); i++ {
					evs := events(fmt.Sprintf("run_%09d", i), 1, int64(n), "tok", time.Time{})
					if err := s.AppendEvents(ctx, evs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "records/s")
			})
		}
	}
}

// BenchmarkHoldSettle measures one prepaid run's money path: Hold then Settle.
func BenchmarkHoldSettle(b *testing.B) {
	for _, kind := range dbtest.Kinds(b) {
		b.Run(kind, func(b *testing.B) {
			s := dbtest.Open(b, kind)
			ctx := ctxOf(b)
			u := mustUser(b, s, "bench@example.com")
			must(b, s.Deposit(ctx, u.ID, 1<<60, "dep"), "Deposit")
			for i := 0; b.Loop(); i++ {
				run := fmt.Sprintf("run_%d", i)
				if err := s.Hold(ctx, u.ID, run, 5*cent); err != nil {
					b.Fatal(err)
				}
				if err := s.Settle(ctx, u.ID, run, cent); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
