package db_test

import (
	"testing"
	"time"

	"github.com/agentgate/agentgate/db"
)

// TestNotifyEvents: on PostgreSQL a mark sent by NotifyEvents reaches ListenEvents; on SQLite
// NotifyEvents is a no-op and ListenEvents refuses. LastEventSeq follows appended events.
func TestNotifyEvents(t *testing.T) {
	t.Parallel()
	eachKind(t, func(t *testing.T, s *db.Store) {
		ctx := ctxOf(t)
		if n, err := s.LastEventSeq(ctx, "run_x"); err != nil || n != 0 {
			t.Fatalf("LastEventSeq of nothing = %d, %v", n, err)
		}
		if err := s.AppendEvents(ctx, []db.RunEvent{{RunID: "run_x", Seq: 1, Type: "token", Data: []byte(`{}`)}, {RunID: "run_x", Seq: 2, Type: "done", Data: []byte(`{}`)}}); err != nil {
			t.Fatal(err)
		}
		if n, err := s.LastEventSeq(ctx, "run_x"); err != nil || n != 2 {
			t.Fatalf("LastEventSeq = %d, %v", n, err)
		}
		marks := []db.EventMark{{RunID: "run_x", Seq: 2}, {RunID: "run_y", Seq: 7}}
		if !s.CanListen() {
			if _, err := s.ListenEvents(ctx, nil, nil, nil); err == nil {
				t.Fatal("ListenEvents on SQLite succeeded")
			}
			if err := s.NotifyEvents(ctx, marks); err != nil {
				t.Fatal(err)
			}
			return
		}
		got := make(chan db.EventMark, 4)
		el, err := s.ListenEvents(ctx, func(m db.EventMark) { got <- m }, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer el.Close()
		if err := s.NotifyEvents(ctx, marks); err != nil {
			t.Fatal(err)
		}
		// Other tests of this database may notify too (the channel is database-wide).
		want := map[db.EventMark]bool{marks[0]: true, marks[1]: true}
		deadline := time.After(10 * time.Second)
		for len(want) > 0 {
			select {
			case m := <-got:
				delete(want, m)
			case <-deadline:
				t.Fatalf("marks not received: %v", want)
			}
		}
		el.Close()
		el.Close() // idempotent
	})
}

// TestFinishRunsIfRunning: only the named runs still running change.
func TestFinishRunsIfRunning(t *testing.T) {
	t.Parallel()
	eachKind(t, func(t *testing.T, s *db.Store) {
		ctx := ctxOf(t)
		u := mustUser(t, s, "f@example.com")
		e := mustEndpoint(t, s, u.ID, "E", "e-finish")
		running := &db.Run{EndpointID: e.ID, OwnerID: u.ID, Status: db.RunRunning}
		other := &db.Run{EndpointID: e.ID, OwnerID: u.ID, Status: db.RunRunning}
		done := &db.Run{EndpointID: e.ID, OwnerID: u.ID, Status: db.RunSuccess, FinishedAt: ptr(time.Now())}
		if err := s.SaveRuns(ctx, []*db.Run{running, other, done}); err != nil {
			t.Fatal(err)
		}
		n, err := s.FinishRunsIfRunning(ctx, []string{running.ID, done.ID}, db.RunCancelled, "UNAVAILABLE", "server shutting down")
		if err != nil || n != 1 {
			t.Fatalf("FinishRunsIfRunning = %d, %v", n, err)
		}
		for _, tt := range []struct {
			id, status string
		}{{running.ID, db.RunCancelled}, {other.ID, db.RunRunning}, {done.ID, db.RunSuccess}} {
			r, err := s.Run(ctx, tt.id)
			if err != nil || r.Status != tt.status {
				t.Fatalf("run %s: %+v %v, want %s", tt.id, r, err, tt.status)
			}
		}
		if n, err := s.FinishRunsIfRunning(ctx, nil, db.RunCancelled, "", ""); err != nil || n != 0 {
			t.Fatalf("no ids: %d %v", n, err)
		}
	})
}
