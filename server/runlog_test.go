package server

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/agentgate/agentgate/db"
	"github.com/agentgate/agentgate/db/dbtest"
)

// TestRunLog_SyncAndClose: records queued from many goroutines, each saved twice (started,
// then finished, as a run is), are all in the database, finished, once sync returns; a reader
// that syncs while the writer lingers gets its records without waiting for anything else; and
// close writes what was queued before it. (Fails if the writer's linger loses or holds back
// records, or if a barrier is answered before the records queued ahead of it are written.)
func TestRunLog_SyncAndClose(t *testing.T) {
	t.Parallel()
	forKinds(t, func(t *testing.T, kind string) {
		store := dbtest.Open(t, kind)
		l := newRunLog(store, slog.New(slog.NewTextHandler(io.Discard, nil)), 0)
		ctx := context.Background()

		const writers, each = 8, 50
		ids := make([][]string, writers)
		var wg sync.WaitGroup
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					r := &db.Run{ID: db.NewID("run_"), EndpointID: "aep_x", OwnerID: "usr_x", Status: "running",
						Input: "hi", CreatedAt: time.Now()}
					l.save(r)
					fin := time.Now()
					r.Status, r.Output, r.FinishedAt = "success", "ok", &fin
					l.save(r)
					ids[w] = append(ids[w], r.ID)
				}
			}()
		}
		wg.Wait()
		l.sync(ctx)
		for _, list := range ids {
			for _, id := range list {
				rec, err := store.Run(ctx, id)
				if err != nil {
					t.Fatalf("run %s after sync: %v", id, err)
				}
				if rec.Status != "success" || rec.Output != "ok" || rec.FinishedAt == nil {
					t.Fatalf("run %s after sync: status %s output %q finished %v, want the finished record", id,
						rec.Status, rec.Output, rec.FinishedAt)
				}
			}
		}

		// One record, then a sync from another goroutine while the writer lingers on it.
		one := &db.Run{ID: db.NewID("run_"), EndpointID: "aep_x", OwnerID: "usr_x", Status: "running", CreatedAt: time.Now()}
		l.save(one)
		l.sync(ctx)
		if _, err := store.Run(ctx, one.ID); err != nil {
			t.Fatalf("lone record after sync: %v", err)
		}

		last := &db.Run{ID: db.NewID("run_"), EndpointID: "aep_x", OwnerID: "usr_x", Status: "cancelled", CreatedAt: time.Now()}
		l.save(last)
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		l.close(cctx)
		select {
		case <-l.done:
		default:
			t.Fatal("close returned before the writer ended")
		}
		if rec, err := store.Run(ctx, last.ID); err != nil || rec.Status != "cancelled" {
			t.Fatalf("record queued before close: %+v, %v", rec, err)
		}
	})
}
