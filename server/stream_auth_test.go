package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/agentgate/agentgate/db"
	"github.com/agentgate/agentgate/stream"
)

// TestStream_EventsAuthAndErrors: who may read a run's events and status, and the answers
// to bad ids; plus the wire details EventSource relies on (retry first, id on every event).
func TestStream_EventsAuthAndErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	ep := e.endpoint(nil)
	other := e.endpoint(map[string]any{"name": "other"})
	a := e.startAsync(ep, "alpha beta")
	b := e.startAsync(other, "gamma")
	e.waitRun(a.RunID)
	e.waitRun(b.RunID)
	sync := e.run(ep, `{"input":"sync"}`)
	syncID := sync.Header.Get("X-Run-Id")
	e.waitRun(syncID)
	strangerToken, _ := e.register("stranger@example.com")

	cases := []struct {
		name    string
		path    string
		headers []string
		status  int
		code    string
	}{
		{"no credentials", a.EventsURL, nil, 401, stream.CodeUnauthorized},
		{"endpoint key", a.EventsURL, []string{"X-API-Key", ep.APIKey}, 200, ""},
		{"endpoint key as bearer", a.EventsURL, []string{"Authorization", "Bearer " + ep.APIKey}, 200, ""},
		{"key of another endpoint", a.EventsURL, []string{"X-API-Key", other.APIKey}, 401, stream.CodeUnauthorized},
		{"stream token", a.EventsURL + "?token=" + a.StreamToken, nil, 200, ""},
		{"token of another run", a.EventsURL + "?token=" + b.StreamToken, nil, 401, stream.CodeUnauthorized},
		{"garbage token", a.EventsURL + "?token=abc.def.ghi", nil, 401, stream.CodeUnauthorized},
		{"stream token as bearer", a.EventsURL, []string{"Authorization", "Bearer " + a.StreamToken}, 401, stream.CodeUnauthorized},
		{"owner JWT", a.EventsURL, []string{"Authorization", "Bearer " + e.Token}, 200, ""},
		{"another user's JWT", a.EventsURL, []string{"Authorization", "Bearer " + strangerToken}, 401, stream.CodeUnauthorized},
		{"status with token", a.StatusURL + "?token=" + a.StreamToken, nil, 200, ""},
		{"status with another run's token", a.StatusURL + "?token=" + b.StreamToken, nil, 401, stream.CodeUnauthorized},
		{"unknown run", "/api/runs/run_000000000000000000/events", []string{"X-API-Key", ep.APIKey}, 404, stream.CodeNotFound},
		{"unknown run status", "/api/runs/run_000000000000000000", []string{"X-API-Key", ep.APIKey}, 404, stream.CodeNotFound},
		{"sync run keeps no events", "/api/runs/" + syncID + "/events", []string{"X-API-Key", ep.APIKey}, 404, stream.CodeNotFound},
		{"bad Last-Event-ID", a.EventsURL, []string{"X-API-Key", ep.APIKey, "Last-Event-ID", "abc"}, 400, stream.CodeValidation},
		{"negative last_event_id", a.EventsURL + "?last_event_id=-1", []string{"X-API-Key", ep.APIKey}, 400, stream.CodeValidation},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do("GET", tt.path, nil, tt.headers...)
			if r.Status != tt.status || r.errCode() != tt.code {
				t.Fatalf("got %d %s, want %d %s", r.Status, r.Body, tt.status, tt.code)
			}
			if tt.status != 200 || !strings.HasSuffix(strings.Split(tt.path, "?")[0], "/events") {
				return
			}
			for name, want := range map[string]string{
				"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no", "X-Run-Id": a.RunID,
			} {
				if got := r.Header.Get(name); !strings.HasPrefix(got, want) {
					t.Fatalf("header %s = %q, want %q", name, got, want)
				}
			}
			body := string(r.Body)
			if !strings.HasPrefix(body, "retry: 3000\n") {
				t.Fatalf("stream does not start with retry: %q", body[:min(40, len(body))])
			}
			blocks := strings.Split(strings.TrimSpace(strings.TrimPrefix(body, "retry: 3000\n")), "\n\n")
			for i, blk := range blocks {
				if !strings.HasPrefix(blk, "id: ") {
					t.Fatalf("event %d has no id: %q", i, blk)
				}
			}
			if !strings.Contains(blocks[len(blocks)-1], "event: done") {
				t.Fatalf("last event %q", blocks[len(blocks)-1])
			}
		})
	}
}

// TestStream_Retention: with a short retention the cleanup deletes stored events, and the
// run's events are then gone (404) while its record stays.
func TestStream_Retention(t *testing.T) {
	t.Parallel()
	if got := cleanupInterval(24 * time.Hour); got != time.Hour {
		t.Fatalf("cleanup interval for 24h = %v", got)
	}
	if got := cleanupInterval(time.Millisecond); got != time.Second {
		t.Fatalf("cleanup interval for 1ms = %v", got)
	}
	forKinds(t, func(t *testing.T, kind string) {
		e := newEnv(t, kind, func(c *Config) { c.EventRetention = time.Second })
		ep := e.endpoint(nil)
		a := e.startAsync(ep, "soon forgotten")
		e.waitRun(a.RunID)
		if r := e.do("GET", a.EventsURL, nil, "X-API-Key", ep.APIKey); r.Status != 200 {
			t.Fatalf("events before the cleanup: %d", r.Status)
		}
		deadline := time.Now().Add(15 * time.Second)
		for {
			n, err := e.Store.LastEventSeq(context.Background(), a.RunID)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("events still stored after the retention (last seq %d)", n)
			}
			<-time.After(50 * time.Millisecond) // polling an external effect with a deadline
		}
		if r := e.do("GET", a.EventsURL, nil, "X-API-Key", ep.APIKey); r.Status != 404 {
			t.Fatalf("events after the cleanup: %d %s", r.Status, r.Body)
		}
		if r := e.do("GET", a.StatusURL, nil, "X-API-Key", ep.APIKey); r.Status != 200 {
			t.Fatalf("status after the cleanup: %d %s", r.Status, r.Body)
		}
	})
}

// TestStream_InterruptedRuns: at startup, runs left "running" past their timeout plus the
// margin become error records; younger ones (maybe another replica's) are left alone.
func TestStream_InterruptedRuns(t *testing.T) {
	t.Parallel()
	forKinds(t, func(t *testing.T, kind string) {
		e := newEnv(t, kind)
		ep := e.endpoint(map[string]any{"timeout_ms": 60000})
		ctx := context.Background()
		old := &db.Run{ID: db.NewID("run_"), EndpointID: ep.ID(), OwnerID: e.User, Status: db.RunRunning, Input: "x",
			Async: true, CreatedAt: time.Now().Add(-time.Minute - interruptedMargin - time.Second)}
		young := &db.Run{ID: db.NewID("run_"), EndpointID: ep.ID(), OwnerID: e.User, Status: db.RunRunning, Input: "y",
			Async: true, CreatedAt: time.Now().Add(-interruptedMargin)} // within timeout + margin
		if err := e.Store.SaveRuns(ctx, []*db.Run{old, young}); err != nil {
			t.Fatal(err)
		}
		e.replica(e.Store) // a gateway starting over the store
		got, err := e.Store.Run(ctx, old.ID)
		if err != nil || got.Status != db.RunError || got.ErrorCode != stream.CodeInternal || got.FinishedAt == nil ||
			!strings.Contains(got.ErrorMessage, "interrupted") {
			t.Fatalf("old run %+v %v", got, err)
		}
		got, err = e.Store.Run(ctx, young.ID)
		if err != nil || got.Status != db.RunRunning || got.FinishedAt != nil {
			t.Fatalf("young run %+v %v", got, err)
		}
		// A follower of the interrupted run (no events stored) gets 404; its status says error.
		var st struct {
			Run runJSON `json:"run"`
		}
		r := e.do("GET", "/api/runs/"+old.ID, nil, "X-API-Key", ep.APIKey)
		r.json(t, &st)
		if st.Run.Status != "error" || st.Run.Error == nil {
			t.Fatalf("status %s", r.Body)
		}
	})
}
