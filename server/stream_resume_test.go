package server

import (
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sse "github.com/tmaxmax/go-sse"

	"github.com/agentgate/agentgate/agent/llmtest"
	"github.com/agentgate/agentgate/stream"
	"github.com/agentgate/agentgate/stream/streamtest"
)

// pacedEcho makes the model echo the input word by word, pace apart.
func pacedEcho(pace time.Duration) func(llmtest.Request) llmtest.Reply {
	return func(r llmtest.Request) llmtest.Reply { return llmtest.Reply{Text: r.LastUser(), Pace: pace} }
}

// TestStream_ResumeEveryPosition: a recorded (finished, stored) run resumed after every id
// gives exactly the remaining events; at the last id 204 (EventSource stops), beyond it 400.
func TestStream_ResumeEveryPosition(t *testing.T) {
	t.Parallel()
	forKinds(t, func(t *testing.T, kind string) {
		e := newEnv(t, kind)
		ep := e.endpoint(nil)
		a := e.startAsync(ep, words(24))
		rec := e.waitRun(a.RunID)
		if rec.Status != "success" || !rec.Async {
			t.Fatalf("record %+v", rec)
		}
		full := e.readAll(ep, a.RunID, -1)
		evs := streamtest.Decode(t, full)
		checkStream(t, full, evs)
		if evs[len(evs)-1].Type != stream.TypeDone || evs[len(evs)-1].Done.Output != words(24) {
			t.Fatalf("last event %+v", evs[len(evs)-1])
		}
		n := int64(len(full))
		for k := int64(0); k < n; k++ {
			var got []streamtest.Message
			if k%2 == 0 {
				got = e.readAll(ep, a.RunID, k)
			} else { // the query form, for clients that cannot set the header
				r := e.do("GET", "/api/runs/"+a.RunID+"/events?last_event_id="+strconv.FormatInt(k, 10), nil, "X-API-Key", ep.APIKey)
				if r.Status != 200 {
					t.Fatalf("after %d: %d %s", k, r.Status, r.Body)
				}
				got = streamtest.Parse(t, strings.NewReader(string(r.Body)))
			}
			sameMessages(t, "resume after "+strconv.FormatInt(k, 10), got, full[k:])
		}
		if r := e.do("GET", a.EventsURL, nil, "X-API-Key", ep.APIKey, "Last-Event-ID", strconv.FormatInt(n, 10)); r.Status != 204 || len(r.Body) != 0 {
			t.Fatalf("after the last event: %d %q, want 204", r.Status, r.Body)
		}
		if r := e.do("GET", a.EventsURL, nil, "X-API-Key", ep.APIKey, "Last-Event-ID", strconv.FormatInt(n+1, 10)); r.Status != 400 || r.errCode() != stream.CodeValidation {
			t.Fatalf("beyond the last event: %d %s, want 400", r.Status, r.Body)
		}
	})
}

// TestStream_ResumeLiveEveryPosition: the same from the hub while the run is live (the model
// hangs after its text): every resume replays exactly the events after its id, then waits.
func TestStream_ResumeLiveEveryPosition(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite", func(c *Config) { c.DrainTimeout = 10 * time.Millisecond })
	e.LLM.Script(llmtest.Reply{Chunks: strings.Split("a b c d e f g h", " "), Hang: true})
	ep := e.endpoint(nil)
	a := e.startAsync(ep, "hi")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// thinking starting, thinking llm_call, then the 8 tokens: 10 events before the hang.
	const live = 10
	res := e.events(ctx, ep, a.RunID, -1)
	full := readN(t, res.Body, live)
	res.Body.Close()
	for i, m := range full {
		if m.ID != strconv.Itoa(i+1) {
			t.Fatalf("ids %s", ids(full))
		}
	}
	if full[live-1].Event != "token" {
		t.Fatalf("events %s", ids(full))
	}
	for k := int64(0); k <= live; k++ {
		sctx, scancel := context.WithCancel(ctx)
		res := e.events(sctx, ep, a.RunID, k)
		if res.StatusCode != 200 {
			t.Fatalf("after %d: %d", k, res.StatusCode)
		}
		got := readN(t, res.Body, live-int(k))
		sameMessages(t, "live resume after "+strconv.FormatInt(k, 10), got, full[k:])
		scancel()
		res.Body.Close()
	}
	if r := e.do("GET", a.EventsURL, nil, "X-API-Key", ep.APIKey, "Last-Event-ID", strconv.Itoa(live+1)); r.Status != 400 {
		t.Fatalf("beyond the live end: %d %s, want 400", r.Status, r.Body)
	}
}

// TestStream_CutAndResume: 1,000 cycles (SQLite; 200 on PostgreSQL) of cutting the connection at a random byte and
// resuming from the last id received, against live runs (and runs that finished while the
// client was away): no event is lost or repeated, and the streams equal the stored ones.
func TestStream_CutAndResume(t *testing.T) {
	t.Parallel()
	forKinds(t, func(t *testing.T, kind string) {
		cycles := 1000
		if kind != "sqlite" || testing.Short() {
			cycles = 200 // the same paths; the full count runs once
		}
		e := newEnv(t, kind)
		e.LLM.Handle(pacedEcho(time.Millisecond))
		ep := e.endpoint(nil)
		start := time.Now()
		var done atomic.Int64
		var runs atomic.Int64
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		errs := make(chan string, 8)
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(w), 42))
				for done.Load() < int64(cycles) && ctx.Err() == nil {
					if msg := cutAndResume(ctx, e, ep, rng, &done); msg != "" {
						errs <- msg
						return
					}
					runs.Add(1)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for msg := range errs {
			t.Error(msg)
		}
		if done.Load() < int64(cycles) {
			t.Fatalf("only %d cycles (%v)", done.Load(), ctx.Err())
		}
		t.Logf("%s: %d cut-and-resume cycles over %d runs in %v", kind, done.Load(), runs.Load(), time.Since(start).Round(time.Millisecond))
	})
}

// cutAndResume follows one async run to its end through random cuts; it returns a failure
// message, or "". It runs in a worker goroutine: no testing.TB calls that stop the test.
func cutAndResume(ctx context.Context, e *testEnv, ep createdEndpoint, rng *rand.Rand, cycles *atomic.Int64) string {
	body := `{"input":"` + words(60+rng.IntN(60)) + `"}`
	req, _ := http.NewRequestWithContext(ctx, "POST", e.URL+"/api/run/"+ep.Slug()+"?async=true", strings.NewReader(body))
	req.Header.Set("X-API-Key", ep.APIKey)
	req.Header.Set("Content-Type", "application/json")
	res, err := e.HTTP.Do(req)
	if err != nil {
		return "async run: " + err.Error()
	}
	var a asyncAnswer
	err = json.NewDecoder(res.Body).Decode(&a)
	res.Body.Close()
	if res.StatusCode != 202 || err != nil {
		return "async run: " + strconv.Itoa(res.StatusCode)
	}
	var got []streamtest.Message
	last := int64(0)
	widen := int64(0)
	for {
		cycles.Add(1)
		cctx, cancel := context.WithCancel(ctx)
		req, _ := newGet(cctx, e.URL+a.EventsURL, ep.APIKey, last)
		res, err := e.HTTP.Do(req)
		if err != nil {
			cancel()
			return "events: " + err.Error()
		}
		if res.StatusCode == 204 {
			cancel()
			res.Body.Close()
			return "204 before the terminal event (last " + strconv.FormatInt(last, 10) + ")"
		}
		if res.StatusCode != 200 {
			cancel()
			res.Body.Close()
			return "events status " + strconv.Itoa(res.StatusCode)
		}
		// Cut at a random byte: a partial event must be discarded, never half-counted.
		// A cut that let no event through widens the next one, so the large done event
		// gets through too.
		limit := int64(rng.IntN(600)) + widen
		terminal, before := false, last
		for ev, err := range sse.Read(io.LimitReader(res.Body, limit), nil) {
			if err != nil {
				break
			}
			if ev.LastEventID != strconv.FormatInt(last+1, 10) {
				cancel()
				res.Body.Close()
				return "after " + strconv.FormatInt(last, 10) + " got id " + ev.LastEventID + " (" + ev.Type + ")"
			}
			last++
			got = append(got, streamtest.Message{ID: ev.LastEventID, Event: ev.Type, Data: ev.Data})
			if ev.Type == "done" || ev.Type == "error" {
				terminal = true
			}
		}
		cancel()
		res.Body.Close()
		if last == before {
			widen += 600
		} else {
			widen = 0
		}
		if terminal {
			break
		}
	}
	full := storedStream(ctx, e, ep, a.RunID)
	if len(full) != len(got) {
		return "run " + a.RunID + ": resumed " + strconv.Itoa(len(got)) + " events, stored " + strconv.Itoa(len(full)) + "\n" + ids(got) + "\n" + ids(full) + "\n" + got[len(got)-1].Data
	}
	var out strings.Builder
	for i := range got {
		if got[i] != full[i] {
			return "run " + a.RunID + ": event " + strconv.Itoa(i) + " differs:\n" + got[i].Data + "\n" + full[i].Data
		}
		if ev, err := stream.Parse(int64(i+1), got[i].Event, []byte(got[i].Data)); err == nil && ev.Type == stream.TypeToken {
			out.WriteString(ev.Token.Delta)
		}
	}
	if last := got[len(got)-1]; last.Event != "done" || !strings.Contains(last.Data, `"output":"`+out.String()+`"`) {
		return "run " + a.RunID + ": tokens do not make the output"
	}
	return ""
}

// storedStream reads a finished run's whole stream (nil on failure).
func storedStream(ctx context.Context, e *testEnv, ep createdEndpoint, runID string) []streamtest.Message {
	req, _ := newGet(ctx, e.URL+"/api/runs/"+runID+"/events", ep.APIKey, 0)
	res, err := e.HTTP.Do(req)
	if err != nil {
		return nil
	}
	defer res.Body.Close()
	var out []streamtest.Message
	for ev, err := range sse.Read(res.Body, nil) {
		if err != nil {
			return nil
		}
		out = append(out, streamtest.Message{ID: ev.LastEventID, Event: ev.Type, Data: ev.Data})
	}
	return out
}

// TestStream_ResumeAfterRestart: a client resumes on a new gateway over the same store; a run
// the old one was still running at shutdown ended cancelled with the shutdown error, which the
// new one replays.
func TestStream_ResumeAfterRestart(t *testing.T) {
	t.Parallel()
	forKinds(t, func(t *testing.T, kind string) {
		e1 := newEnv(t, kind, func(c *Config) { c.DrainTimeout = 10 * time.Millisecond })
		ep := e1.endpoint(nil)
		done := e1.startAsync(ep, words(30))
		e1.waitRun(done.RunID)
		first := e1.readAll(ep, done.RunID, -1)

		e1.LLM.Script(llmtest.Reply{Chunks: []string{"never", " ends"}, Hang: true})
		hung := e1.startAsync(ep, "hang")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		res := e1.events(ctx, ep, hung.RunID, -1)
		seen := readN(t, res.Body, 4) // starting, llm_call, two tokens
		res.Body.Close()

		e1.shutdown()
		e2 := e1.replica(e1.Store)

		// The finished run, resumed from its middle on the new instance.
		cut := int64(len(first) / 2)
		sameMessages(t, "after restart", e2.readAll(ep, done.RunID, cut), first[cut:])
		// The interrupted run: the rest is its usage so far and its shutdown error, real
		// events of the run.
		rest := e2.readAll(ep, hung.RunID, 4)
		evs := eventsOf(t, 4, rest)
		if len(evs) != 2 || evs[0].Type != stream.TypeUsage || evs[1].Type != stream.TypeError ||
			evs[1].Error.Code != stream.CodeUnavailable || evs[1].Error.Message != "server shutting down" {
			t.Fatalf("rest of the interrupted run: %s (seen %s)", ids(rest), ids(seen))
		}
		rec, err := e2.Store.Run(ctx, hung.RunID)
		if err != nil || rec.Status != "cancelled" || rec.ErrorCode != stream.CodeUnavailable || rec.FinishedAt == nil {
			t.Fatalf("record %+v %v", rec, err)
		}
		var st struct {
			Run runJSON `json:"run"`
		}
		r := e2.do("GET", done.StatusURL, nil, "X-API-Key", ep.APIKey)
		r.json(t, &st)
		if r.Status != 200 || st.Run.Status != "success" || st.Run.Output != words(30) {
			t.Fatalf("status after restart: %d %s", r.Status, r.Body)
		}
	})
}
