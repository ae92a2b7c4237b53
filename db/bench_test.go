package db_test

import (
	"fmt"
	"testing"

	"github.com/agentgate/agentgate/db"
	"github.com/agentgate/agentgate/db/dbtest"
)

// BenchmarkSaveRuns measures one batch of 100 run upserts (the server's
// run-log flush). Report ns/op ÷ 100 for the per-run cost.
func BenchmarkSaveRuns(b *testing.B) {
	for _, kind := range dbtest.Kinds(b) {
		b.Run(kind, func(b *testing.B) {
			s := dbtest.Open(b, kind)
			ctx := ctxOf(b)
			runs := make([]*db.Run, 100)
			for i := range runs {
				runs[i] = &db.Run{EndpointID: "aep_b", OwnerID: "usr_b", Status: db.RunSuccess,
					Input: "input text", Output: "some output text of moderate length"}
			}
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				for j, r := range runs {
					r.ID = fmt.Sprintf("run_%09d_%03d", i, j)
				}
				if err := s.SaveRuns(ctx, runs); err != nil {
					b.Fatal(err)
				}
			}
		})
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
