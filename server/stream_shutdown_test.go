package server

import (
	"context"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentgate/agentgate/agent/llmtest"
	"github.com/agentgate/agentgate/db"
	"github.com/agentgate/agentgate/stream"
	"github.com/agentgate/agentgate/stream/streamtest"
)

// TestStream_Shutdown100: Shutdown (what SIGTERM calls) with 100 open streams of hanging runs,
// half synchronous streams and half followers of async runs: after the drain period every
// stream gets its terminal error event and every run record a final status.
func TestStream_Shutdown100(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite", func(c *Config) { c.DrainTimeout, c.RunsPerMinute = 50*time.Millisecond, 1000 })
	e.LLM.Handle(func(llmtest.Request) llmtest.Reply { return llmtest.Reply{Chunks: []string{"partial"}, Hang: true} })
	ep := e.endpoint(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 100
	tails := make([]*tailer, 0, n)
	runIDs := make([]string, 0, n)
	for i := range n {
		var res *http.Response
		if i%2 == 0 {
			res = e.openStream(ctx, ep, `{"input":"hang"}`)
			runIDs = append(runIDs, res.Header.Get("X-Run-Id"))
		} else {
			a := e.startAsync(ep, "hang")
			runIDs = append(runIDs, a.RunID)
			res = e.events(ctx, ep, a.RunID, -1)
		}
		if res.StatusCode != 200 {
			t.Fatalf("stream %d: %d", i, res.StatusCode)
		}
		defer res.Body.Close()
		tails = append(tails, tail(res.Body))
	}
	for _, tl := range tails {
		tl.wait(t, 3) // the runs are in the model call: starting, llm_call, the token
	}
	if got := e.Srv.openStreams.Load(); got != n {
		t.Fatalf("open streams %d, want %d", got, n)
	}
	e.shutdown()
	for i, tl := range tails {
		msgs := tl.all(t)
		evs := streamtest.Decode(t, msgs) // ids 1..k, one terminal event, last
		last := evs[len(evs)-1]
		if last.Type != stream.TypeError || last.Error.Code != stream.CodeUnavailable || last.Error.Message != "server shutting down" {
			t.Fatalf("stream %d ended with %s", i, ids(msgs))
		}
	}
	for i, id := range runIDs {
		rec, err := e.Store.Run(ctx, id)
		if err != nil || rec.Status != db.RunCancelled || rec.FinishedAt == nil || rec.ErrorCode != stream.CodeUnavailable {
			t.Fatalf("run %d record %+v %v", i, rec, err)
		}
	}
	if got := e.Srv.openStreams.Load(); got != 0 {
		t.Fatalf("open streams after shutdown %d", got)
	}
}

// TestStream_SlowSubscriber: a client that stops reading (a tiny receive buffer, nothing read)
// neither slows the run nor a fast subscriber; when it reads again it still gets every event
// (the hub dropped it and it resumed by id).
func TestStream_SlowSubscriber(t *testing.T) {
	t.Parallel()
	t.Run("run still in memory", func(t *testing.T) {
		t.Parallel()
		slowSubscriber(t, newEnv(t, "sqlite"))
	})
	// The hub forgets the run as soon as it ends: the dropped subscriber goes on from the
	// stored event log.
	t.Run("run gone from memory", func(t *testing.T) {
		t.Parallel()
		slowSubscriber(t, newEnv(t, "sqlite", func(c *Config) { c.HubLinger = -1 }))
	})
}

func slowSubscriber(t *testing.T, e *testEnv) {
	chunks := make([]string, 1200)
	for i := range chunks {
		chunks[i] = " " + strings.Repeat("x", 3000)
	}
	e.LLM.Script(llmtest.Reply{Chunks: chunks})
	ep := e.endpoint(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	slowClient := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) { serr = setReceiveBuffer(fd, 4096) }); err != nil {
				return err
			}
			return serr
		},
	}).DialContext}}
	defer slowClient.CloseIdleConnections()

	a := e.startAsync(ep, "go")
	req, _ := newGet(ctx, e.URL+a.EventsURL, ep.APIKey, 0)
	slow, err := slowClient.Do(req)
	if err != nil || slow.StatusCode != 200 {
		t.Fatalf("slow subscriber: %v", err)
	}
	defer slow.Body.Close()
	fast := e.readAll(ep, a.RunID, -1) // reads at full speed to the end
	evs := streamtest.Decode(t, fast)
	checkStream(t, fast, evs)
	if evs[len(evs)-1].Type != stream.TypeDone {
		t.Fatalf("fast subscriber ended with %s", evs[len(evs)-1].Type)
	}
	// The run finished (record final) while the slow client has read nothing.
	if rec := e.waitRun(a.RunID); rec.Status != "success" {
		t.Fatalf("record %+v", rec)
	}
	slowMsgs := streamtest.Parse(t, slow.Body)
	sameMessages(t, "slow subscriber", slowMsgs, fast)
}
