package db_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/agentgate/agentgate/db"
)

func events(runID string, from, to int64, tag string, at time.Time) []db.RunEvent {
	var out []db.RunEvent
	for seq := from; seq <= to; seq++ {
		out = append(out, db.RunEvent{RunID: runID, Seq: seq, Type: "token",
			Data: fmt.Appendf(nil, `{"type":"token","delta":"%s%d"}`, tag, seq), CreatedAt: at})
	}
	return out
}

func seqs(evs []db.RunEvent) []int64 {
	var out []int64
	for _, e := range evs {
		out = append(out, e.Seq)
	}
	return out
}

func TestRunEvents(t *testing.T) {
	eachKind(t, func(t *testing.T, s *db.Store) {
		ctx := ctxOf(t)
		now := time.Now().UTC()
		must(t, s.AppendEvents(ctx, events("run_a", 1, 5, "first", now)), "append 1..5")
		must(t, s.AppendEvents(ctx, events("run_b", 1, 2, "b", now.Add(-48*time.Hour))), "append run_b")

		all, err := s.Events(ctx, "run_a", 0)
		must(t, err, "Events")
		if fmt.Sprint(seqs(all)) != "[1 2 3 4 5]" {
			t.Fatalf("Events(0) = %v", seqs(all))
		}
		if string(all[0].Data) != `{"type":"token","delta":"first1"}` || all[0].Type != "token" ||
			!all[0].CreatedAt.Equal(now.Truncate(time.Microsecond)) {
			t.Fatalf("event = %+v (%s)", all[0], all[0].Data)
		}
		tail, err := s.Events(ctx, "run_a", 3)
		must(t, err, "Events(after 3)")
		if fmt.Sprint(seqs(tail)) != "[4 5]" {
			t.Fatalf("Events(after 3) = %v", seqs(tail))
		}

		// Re-appending (a retried batch overlapping stored events) keeps the
		// originals and adds only the new ones.
		must(t, s.AppendEvents(ctx, events("run_a", 3, 7, "retry", now)), "append 3..7")
		all, err = s.Events(ctx, "run_a", 0)
		must(t, err, "Events after retry")
		if fmt.Sprint(seqs(all)) != "[1 2 3 4 5 6 7]" {
			t.Fatalf("after retry = %v", seqs(all))
		}
		if string(all[2].Data) != `{"type":"token","delta":"first3"}` || string(all[6].Data) != `{"type":"token","delta":"retry7"}` {
			t.Fatalf("duplicate append changed data: %s / %s", all[2].Data, all[6].Data)
		}
		none, err := s.Events(ctx, "run_a", 7)
		must(t, err, "Events(after last)")
		if len(none) != 0 {
			t.Fatalf("Events after last = %v", seqs(none))
		}

		n, err := s.DeleteEventsBefore(ctx, now.Add(-24*time.Hour))
		must(t, err, "DeleteEventsBefore")
		if n != 2 {
			t.Fatalf("DeleteEventsBefore = %d, want 2", n)
		}
		if b, _ := s.Events(ctx, "run_b", 0); len(b) != 0 {
			t.Fatalf("old events survived: %v", seqs(b))
		}
		if a, _ := s.Events(ctx, "run_a", 0); len(a) != 7 {
			t.Fatalf("recent events deleted: %v", seqs(a))
		}
	})
}
