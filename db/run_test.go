package db_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/agentgate/agentgate/db"
)

func TestRunSaveAndUpsert(t *testing.T) {
	eachKind(t, func(t *testing.T, s *db.Store) {
		ctx := ctxOf(t)
		created := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)
		r := &db.Run{EndpointID: "aep_x", OwnerID: "usr_x", Status: db.RunRunning, Input: "question",
			Async: true, CreatedAt: created}
		must(t, s.SaveRuns(ctx, []*db.Run{r}), "SaveRuns")
		if r.ID == "" || !r.CreatedAt.Equal(created.Truncate(time.Microsecond)) {
			t.Fatalf("SaveRuns filled %+v", r)
		}
		got, err := s.Run(ctx, r.ID)
		must(t, err, "Run")
		if string(got.ToolCalls) != "[]" || got.FinishedAt != nil || !got.Async || got.Status != db.RunRunning {
			t.Fatalf("running run = %+v", got)
		}

		// A second save finishes it; created_at, endpoint and owner stay.
		fin := created.Add(2 * time.Second)
		done := *r
		done.EndpointID, done.OwnerID, done.CreatedAt = "aep_other", "usr_other", time.Now()
		done.Status, done.Output = db.RunSuccess, "answer"
		done.ToolCalls = json.RawMessage(`[{"name":"t","success":true}]`)
		done.ErrorCode, done.ErrorMessage = "", ""
		done.TokensInput, done.TokensOutput, done.CostMicroCents = 312, 67, 800000
		done.LatencyMs, done.TTFTMs, done.Iterations, done.ChargedMicroCents = 1456, 210, 2, 1_000_000
		done.FinishedAt = &fin
		must(t, s.SaveRuns(ctx, []*db.Run{&done}), "SaveRuns update")
		got, err = s.Run(ctx, r.ID)
		must(t, err, "Run after update")
		want := done
		want.EndpointID, want.OwnerID, want.CreatedAt = r.EndpointID, r.OwnerID, r.CreatedAt
		if !reflect.DeepEqual(got, &want) {
			t.Fatalf("after upsert:\n got %+v\nwant %+v", got, &want)
		}
		if _, err := s.Run(ctx, "run_missing"); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("Run(missing) = %v", err)
		}
		must(t, s.SaveRuns(ctx, nil), "SaveRuns(nil)")
	})
}

func TestRunBatchAndPagination(t *testing.T) {
	eachKind(t, func(t *testing.T, s *db.Store) {
		ctx := ctxOf(t)
		base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
		var runs []*db.Run
		for i := range 120 {
			status := db.RunSuccess
			if i%4 == 0 {
				status = db.RunError
			}
			// Pairs share a timestamp, so ties are broken by id.
			runs = append(runs, &db.Run{ID: fmt.Sprintf("run_%018d", i), EndpointID: "aep_a", OwnerID: "usr_a",
				Status: status, CreatedAt: base.Add(time.Duration(i/2) * time.Second)})
		}
		// Noise from another endpoint and owner.
		for i := range 5 {
			runs = append(runs, &db.Run{EndpointID: "aep_b", OwnerID: "usr_b", Status: db.RunSuccess,
				CreatedAt: base.Add(time.Duration(i) * time.Second)})
		}
		must(t, s.SaveRuns(ctx, runs), "SaveRuns batch")

		var all []string
		cursor, pages := "", 0
		for {
			page, next, err := s.ListRuns(ctx, db.RunFilter{EndpointID: "aep_a", Limit: 50, Cursor: cursor})
			must(t, err, "ListRuns page %d", pages)
			pages++
			for _, r := range page {
				all = append(all, r.ID)
			}
			if next == "" {
				break
			}
			if pages > 10 {
				t.Fatal("pagination does not end")
			}
			cursor = next
		}
		if pages != 3 || len(all) != 120 {
			t.Fatalf("pages = %d, runs = %d; want 3 pages, 120 runs", pages, len(all))
		}
		for i, id := range all {
			if want := fmt.Sprintf("run_%018d", 119-i); id != want {
				t.Fatalf("position %d = %s, want %s (newest first by created_at, id)", i, id, want)
			}
		}

		tests := []struct {
			name string
			f    db.RunFilter
			want int
			more bool
		}{
			{"default limit", db.RunFilter{EndpointID: "aep_a"}, 50, true},
			{"limit clamped low", db.RunFilter{EndpointID: "aep_a", Limit: -5}, 50, true},
			{"exact last page", db.RunFilter{EndpointID: "aep_a", Limit: 120}, 120, false},
			{"status", db.RunFilter{EndpointID: "aep_a", Status: db.RunError, Limit: 200}, 30, false},
			{"owner", db.RunFilter{OwnerID: "usr_b"}, 5, false},
			{"since", db.RunFilter{EndpointID: "aep_a", Since: base.Add(50 * time.Second), Limit: 200}, 20, false},
			{"no filter", db.RunFilter{Limit: 1000}, 125, false},
		}
		for _, tt := range tests {
			got, next, err := s.ListRuns(ctx, tt.f)
			must(t, err, "%s", tt.name)
			if len(got) != tt.want || (next != "") != tt.more {
				t.Errorf("%s: %d runs, next %q; want %d, more %v", tt.name, len(got), next, tt.want, tt.more)
			}
		}
		for _, bad := range []string{"!!!", "bm90LWEtY3Vyc29y"} {
			if _, _, err := s.ListRuns(ctx, db.RunFilter{Cursor: bad}); !errors.Is(err, db.ErrInvalidCursor) {
				t.Errorf("cursor %q: %v, want ErrInvalidCursor", bad, err)
			}
		}
	})
}

func TestListRunsClampsTo200(t *testing.T) {
	eachKind(t, func(t *testing.T, s *db.Store) {
		ctx := ctxOf(t)
		runs := make([]*db.Run, 210)
		for i := range runs {
			runs[i] = &db.Run{EndpointID: "aep_c", OwnerID: "usr_c", Status: db.RunSuccess}
		}
		must(t, s.SaveRuns(ctx, runs), "SaveRuns")
		got, next, err := s.ListRuns(ctx, db.RunFilter{EndpointID: "aep_c", Limit: 1000})
		must(t, err, "ListRuns")
		if len(got) != 200 || next == "" {
			t.Fatalf("Limit 1000 gave %d runs, next %q; want 200 and a cursor", len(got), next)
		}
	})
}

func TestFinishStaleRuns(t *testing.T) {
	eachKind(t, func(t *testing.T, s *db.Store) {
		ctx := ctxOf(t)
		cut := time.Now().Add(-time.Minute)
		old := &db.Run{EndpointID: "e", OwnerID: "o", Status: db.RunRunning, CreatedAt: cut.Add(-time.Hour)}
		fresh := &db.Run{EndpointID: "e", OwnerID: "o", Status: db.RunRunning, CreatedAt: cut.Add(time.Second)}
		finished := &db.Run{EndpointID: "e", OwnerID: "o", Status: db.RunSuccess, CreatedAt: cut.Add(-time.Hour)}
		must(t, s.SaveRuns(ctx, []*db.Run{old, fresh, finished}), "SaveRuns")

		n, err := s.FinishStaleRuns(ctx, db.RunCancelled, cut)
		must(t, err, "FinishStaleRuns")
		if n != 1 {
			t.Fatalf("FinishStaleRuns = %d, want 1", n)
		}
		for _, c := range []struct {
			r        *db.Run
			status   string
			finished bool
		}{{old, db.RunCancelled, true}, {fresh, db.RunRunning, false}, {finished, db.RunSuccess, false}} {
			got, err := s.Run(ctx, c.r.ID)
			must(t, err, "Run")
			if got.Status != c.status || (got.FinishedAt != nil) != c.finished {
				t.Errorf("run %s: status %s finished %v; want %s %v", got.ID, got.Status, got.FinishedAt, c.status, c.finished)
			}
		}
	})
}
