package db_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/agentgate/agentgate/db"
)

// TestSaveRunsChunksAndDuplicates saves batches larger than one statement's
// chunk, mixing new runs, updates of stored runs, nil entries and the same ID
// more than once, and checks every stored row.
func TestSaveRunsChunksAndDuplicates(t *testing.T) {
	eachKind(t, func(t *testing.T, s *db.Store) {
		ctx := ctxOf(t)
		base := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
		mk := func(i int, ep, status string) *db.Run {
			return &db.Run{ID: fmt.Sprintf("run_%04d", i), EndpointID: ep, OwnerID: "usr_" + ep, Status: status,
				Input: fmt.Sprintf("in %d", i), CreatedAt: base.Add(time.Duration(i) * time.Second)}
		}
		// First batch: 450 running runs (several chunks and a partial one).
		first := make([]*db.Run, 0, 451)
		for i := range 450 {
			first = append(first, mk(i, "aep_a", db.RunRunning))
		}
		first = append(first, nil)
		must(t, s.SaveRuns(ctx, first), "SaveRuns first")

		// Second batch: finish every even run (endpoint, owner and created_at
		// must stay), add 300 new runs, and repeat some IDs.
		fin := base.Add(time.Hour)
		want := map[string]db.Run{}
		for _, r := range first[:450] {
			want[r.ID] = *r
		}
		var second []*db.Run
		for i := 0; i < 450; i += 2 {
			r := mk(i, "aep_other", db.RunSuccess)
			r.CreatedAt, r.Output, r.FinishedAt = time.Now(), fmt.Sprintf("out %d", i), &fin
			r.ToolCalls = json.RawMessage(`[{"name":"t","success":true}]`)
			r.TokensInput, r.Iterations, r.Async = int64(i), 2, true
			second = append(second, r)
			w := *r
			w.EndpointID, w.OwnerID, w.CreatedAt = "aep_a", "usr_aep_a", want[r.ID].CreatedAt
			want[r.ID] = w
		}
		for i := 450; i < 750; i++ {
			r := mk(i, "aep_b", db.RunRunning)
			second = append(second, r)
			want[r.ID] = *r
		}
		// Stored run 1 twice in the batch: the last version wins.
		dup1a, dup1b := mk(1, "aep_x", db.RunError), mk(1, "aep_y", db.RunTimeout)
		dup1a.ErrorCode, dup1b.ErrorCode = "first", "last"
		// New run 9000 three times: the last version wins, with the first's
		// endpoint, owner and created_at (as if saved one after the other).
		dup2a, dup2b, dup2c := mk(9000, "aep_n1", db.RunRunning), mk(9000, "aep_n2", db.RunRunning), mk(9000, "aep_n3", db.RunSuccess)
		dup2b.CreatedAt, dup2c.CreatedAt = base.Add(time.Minute), base.Add(2*time.Minute)
		dup2c.Output = "final"
		second = append([]*db.Run{dup2a, dup1a}, second...)
		second = append(second, dup2b, nil, dup1b, dup2c)
		w1 := *dup1b
		w1.EndpointID, w1.OwnerID, w1.CreatedAt = "aep_a", "usr_aep_a", want[dup1b.ID].CreatedAt
		want[dup1b.ID] = w1
		w2 := *dup2c
		w2.EndpointID, w2.OwnerID, w2.CreatedAt = dup2a.EndpointID, dup2a.OwnerID, dup2a.CreatedAt
		want[dup2c.ID] = w2
		must(t, s.SaveRuns(ctx, second), "SaveRuns second")

		if n := rawInt(t, s, `SELECT COUNT(*) FROM runs`); n != int64(len(want)) {
			t.Fatalf("stored %d runs, want %d", n, len(want))
		}
		for id, w := range want {
			g, err := s.Run(ctx, id)
			must(t, err, "Run(%s)", id)
			w.CreatedAt = w.CreatedAt.UTC().Truncate(time.Microsecond)
			if w.ToolCalls == nil {
				w.ToolCalls = json.RawMessage("[]")
			}
			if !reflect.DeepEqual(g, &w) {
				t.Fatalf("run %s:\n got %+v\nwant %+v", id, g, &w)
			}
		}
		must(t, s.SaveRuns(ctx, []*db.Run{nil}), "SaveRuns(nil entry)")
	})
}

// TestAppendEventsChunksAndDuplicates appends more events than one chunk,
// with duplicates inside the batch and of stored events: the first stored
// version of each (RunID, Seq) stays.
func TestAppendEventsChunksAndDuplicates(t *testing.T) {
	eachKind(t, func(t *testing.T, s *db.Store) {
		ctx := ctxOf(t)
		now := time.Now().UTC()
		must(t, s.AppendEvents(ctx, events("run_a", 1, 10, "stored", now)), "append stored")
		batch := events("run_a", 5, 1200, "new", now)
		batch = append(batch, events("run_a", 600, 700, "again", now)...)
		batch = append(batch, events("run_b", 1, 3, "b", now)...)
		must(t, s.AppendEvents(ctx, batch), "append batch")

		got, err := s.Events(ctx, "run_a", 0)
		must(t, err, "Events")
		if len(got) != 1200 {
			t.Fatalf("run_a has %d events, want 1200", len(got))
		}
		for i, ev := range got {
			tag := "new"
			if ev.Seq <= 10 {
				tag = "stored"
			}
			if want := fmt.Sprintf(`{"type":"token","delta":"%s%d"}`, tag, i+1); ev.Seq != int64(i+1) || string(ev.Data) != want {
				t.Fatalf("event %d = %d %s, want %d %s", i, ev.Seq, ev.Data, i+1, want)
			}
		}
		if b, err := s.Events(ctx, "run_b", 0); err != nil || len(b) != 3 {
			t.Fatalf("run_b events = %v, %v", seqs(b), err)
		}
	})
}
