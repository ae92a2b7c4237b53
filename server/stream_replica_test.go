package server

import (
	"context"
	"testing"
	"time"

	"github.com/agentgate/agentgate/agent/llmtest"
	"github.com/agentgate/agentgate/db/dbtest"
	"github.com/agentgate/agentgate/stream"
	"github.com/agentgate/agentgate/stream/streamtest"
)

// TestStream_TwoInstances: a run goes async on instance A, a client follows it on instance B
// of the same database from before the model's first word to done, with no gap or duplicate.
// On PostgreSQL B's polling is off (an hour), so only LISTEN/NOTIFY can wake it; on SQLite (two
// processes sharing a file) B polls. Then B shuts down while following a hung run of A: the
// stream still ends with the shutdown error, carrying the last id it delivered.
func TestStream_TwoInstances(t *testing.T) {
	t.Parallel()
	forKinds(t, func(t *testing.T, kind string) {
		poll := 20 * time.Millisecond
		if kind == dbtest.Postgres {
			poll = time.Hour
		}
		sa, sb := sharedStores(t, kind)
		opts := func(c *Config) { c.FollowPoll, c.DrainTimeout = poll, 10*time.Millisecond }
		a := startEnv(t, kind, sa, opts)
		b := a.replica(sb)
		if kind == dbtest.Postgres && b.Srv.follow.listener == nil {
			t.Fatal("instance B does not listen for notifications")
		}
		gate := make(chan struct{})
		a.LLM.Handle(func(r llmtest.Request) llmtest.Reply {
			select {
			case <-gate:
			case <-time.After(20 * time.Second):
			}
			return llmtest.Reply{Text: r.LastUser(), Pace: 2 * time.Millisecond}
		})
		ep := a.endpoint(nil)
		run := a.startAsync(ep, words(50))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res := b.events(ctx, ep, run.RunID, -1)
		if res.StatusCode != 200 {
			t.Fatalf("events on B: %d", res.StatusCode)
		}
		followed := tail(res.Body)
		// The model has not answered yet: B must follow the run live.
		followed.wait(t, 2) // thinking starting, llm_call
		if _, live := a.Srv.runner.lookup(run.RunID); !live {
			t.Fatal("the run finished before B followed it")
		}
		close(gate)
		got := followed.all(t)
		res.Body.Close()
		evs := streamtest.Decode(t, got)
		checkStream(t, got, evs)
		if last := evs[len(evs)-1]; last.Type != stream.TypeDone || last.Done.Output != words(50) {
			t.Fatalf("last event on B %+v", last)
		}
		a.waitRun(run.RunID)
		sameMessages(t, "B against A", got, a.readAll(ep, run.RunID, -1))

		// B shuts down while following a run that goes on on A.
		a.LLM.Script(llmtest.Reply{Chunks: []string{"still", " thinking"}, Hang: true})
		hung := a.startAsync(ep, "hang")
		res = b.events(ctx, ep, hung.RunID, -1)
		defer res.Body.Close()
		followed = tail(res.Body)
		seen := followed.wait(t, 4) // two thinking events, two tokens (flushed by age)
		b.shutdown()
		got = followed.all(t)
		if len(got) != 5 {
			t.Fatalf("B's stream at shutdown: %s (seen %s)", ids(got), ids(seen))
		}
		end, err := stream.Parse(4, got[4].Event, []byte(got[4].Data))
		if err != nil || got[4].ID != "4" || end.Type != stream.TypeError || end.Error.Code != stream.CodeUnavailable ||
			end.Error.Message != "server shutting down" || end.Error.RunID != hung.RunID {
			t.Fatalf("terminal event at B's shutdown: %+v (%v)", got[4], err)
		}
		// The client resumes on A with that id and misses nothing: A still runs the run.
		if _, live := a.Srv.runner.lookup(hung.RunID); !live {
			t.Fatal("the hung run is not live on A")
		}
		sctx, scancel := context.WithCancel(ctx)
		defer scancel()
		res2 := a.events(sctx, ep, hung.RunID, 4)
		defer res2.Body.Close()
		a.shutdown()
		rest := tail(res2.Body).all(t)
		evs = eventsOf(t, 4, rest)
		if last := evs[len(evs)-1]; last.Type != stream.TypeError || last.Error.Code != stream.CodeUnavailable {
			t.Fatalf("rest on A: %s", ids(rest))
		}
	})
}
