package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sse "github.com/tmaxmax/go-sse"

	"github.com/agentgate/agentgate/db"
	"github.com/agentgate/agentgate/db/dbtest"
	"github.com/agentgate/agentgate/stream"
	"github.com/agentgate/agentgate/stream/streamtest"
)

// Harness for the stream tests (async runs, resume, replicas, shutdown).

// asyncAnswer is the 202 answer of an async run.
type asyncAnswer struct {
	RunID       string `json:"run_id"`
	Status      string `json:"status"`
	EventsURL   string `json:"events_url"`
	StatusURL   string `json:"status_url"`
	StreamToken string `json:"stream_token"`
}

// startAsync starts an async run of ep with input and returns the 202 answer.
func (e *testEnv) startAsync(ep createdEndpoint, input string) asyncAnswer {
	e.tb.Helper()
	r := e.do("POST", "/api/run/"+ep.Slug()+"?async=true", map[string]string{"input": input}, "X-API-Key", ep.APIKey)
	if r.Status != 202 {
		e.tb.Fatalf("async run: %d %s", r.Status, r.Body)
	}
	var a asyncAnswer
	r.json(e.tb, &a)
	if a.RunID == "" || a.EventsURL != "/api/runs/"+a.RunID+"/events" || a.StreamToken == "" {
		e.tb.Fatalf("async answer %s", r.Body)
	}
	return a
}

// events opens GET /api/runs/:id/events with the endpoint key and Last-Event-ID after (none
// when after < 0). The caller closes the body.
func (e *testEnv) events(ctx context.Context, ep createdEndpoint, runID string, after int64) *http.Response {
	e.tb.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", e.URL+"/api/runs/"+runID+"/events", nil)
	if err != nil {
		e.tb.Fatal(err)
	}
	req.Header.Set("X-API-Key", ep.APIKey)
	if after >= 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(after, 10))
	}
	res, err := e.HTTP.Do(req)
	if err != nil {
		e.tb.Fatalf("events %s: %v", runID, err)
	}
	return res
}

// readAll reads a whole events response (status 200) with go-sse's parser.
func (e *testEnv) readAll(ep createdEndpoint, runID string, after int64) []streamtest.Message {
	e.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res := e.events(ctx, ep, runID, after)
	defer res.Body.Close()
	if res.StatusCode != 200 {
		body, _ := io.ReadAll(res.Body)
		e.tb.Fatalf("events %s after %d: %d %s", runID, after, res.StatusCode, body)
	}
	return streamtest.Parse(e.tb, res.Body)
}

// readN reads n events of an open stream (then the caller cancels it).
func readN(tb testing.TB, r io.Reader, n int) []streamtest.Message {
	tb.Helper()
	var out []streamtest.Message
	if n == 0 {
		return out
	}
	for ev, err := range sse.Read(r, &sse.ReadConfig{MaxEventSize: streamtest.MaxEventSize}) {
		if err != nil {
			tb.Fatalf("read after %d events: %v", len(out), err)
		}
		out = append(out, streamtest.Message{ID: ev.LastEventID, Event: ev.Type, Data: ev.Data})
		if len(out) == n {
			break
		}
	}
	if len(out) != n {
		tb.Fatalf("stream ended after %d events, want %d", len(out), n)
	}
	return out
}

// ids renders the ids of msgs (for failure messages and comparisons).
func ids(msgs []streamtest.Message) string {
	parts := make([]string, len(msgs))
	for i, m := range msgs {
		parts[i] = m.ID + ":" + m.Event
	}
	return strings.Join(parts, " ")
}

// sameMessages fails unless got equals want message by message.
func sameMessages(tb testing.TB, what string, got, want []streamtest.Message) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("%s: %d events, want %d\n got: %s\nwant: %s", what, len(got), len(want), ids(got), ids(want))
	}
	for i := range got {
		if got[i] != want[i] {
			tb.Fatalf("%s: event %d = %+v, want %+v", what, i, got[i], want[i])
		}
	}
}

// replica starts another gateway over store (the same database as e, or e's own store after
// a restart), with e's model server and secrets; its default user is e's. It is shut down when
// the test ends.
func (e *testEnv) replica(store *db.Store, opts ...envOption) *testEnv {
	e.tb.Helper()
	tb := e.tb
	cfg := e.Srv.cfg
	for _, o := range opts {
		o(&cfg)
	}
	srv, url, client := serveTest(tb, cfg, store)
	return &testEnv{tb: tb, kind: e.kind, Store: store, Srv: srv, URL: url, LLM: e.LLM, Token: e.Token, User: e.User, HTTP: client}
}

// shutdown shuts e's server down now (the cleanup's Shutdown is then a no-op).
func (e *testEnv) shutdown() {
	e.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.Srv.Shutdown(ctx); err != nil {
		e.tb.Fatalf("shutdown: %v", err)
	}
}

// sharedStores opens two stores on one database of kind, as two gateway processes would:
// PostgreSQL on one schema, SQLite on one file.
func sharedStores(tb testing.TB, kind string) (*db.Store, *db.Store) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var opts db.Options
	opts.SecretKey = dbtest.SecretKey
	var drop func()
	switch kind {
	case dbtest.Postgres:
		opts.URL, drop = dbtest.Schema(tb)
		opts.MaxOpenConns = 8
	default:
		opts.DataDir = tb.TempDir()
	}
	open := func() *db.Store {
		s, err := db.Open(ctx, opts)
		if err != nil {
			if drop != nil {
				drop()
			}
			tb.Fatalf("open %s: %v", kind, err)
		}
		return s
	}
	a := open()
	b := open()
	if drop != nil {
		tb.Cleanup(drop)
	}
	tb.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	return a, b
}

// eventsOf decodes messages that may start after a Last-Event-ID and checks that their ids
// run on from from+1 without a gap.
func eventsOf(tb testing.TB, from int64, msgs []streamtest.Message) []stream.Event {
	tb.Helper()
	out := make([]stream.Event, 0, len(msgs))
	for i, m := range msgs {
		want := strconv.FormatInt(from+int64(i)+1, 10)
		if m.ID != want {
			tb.Fatalf("event %d: id %q, want %s (%s)", i, m.ID, want, ids(msgs))
		}
		ev, err := stream.Parse(from+int64(i)+1, m.Event, []byte(m.Data))
		if err != nil {
			tb.Fatalf("event %d: %v", i, err)
		}
		out = append(out, ev)
	}
	return out
}

// words returns n words of text.
func words(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "w%d", i)
	}
	return b.String()
}

// newGet builds an events request with the endpoint key and Last-Event-ID after (none when 0).
func newGet(ctx context.Context, url, key string, after int64) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-API-Key", key)
	if after > 0 {
		req.Header.Set("Last-Event-ID", strconv.FormatInt(after, 10))
	}
	return req, nil
}

// tailer parses a live stream in its own goroutine, so a test can wait for some events, act,
// then read on.
type tailer struct {
	mu   sync.Mutex
	msgs []streamtest.Message
	more chan struct{} // poked on every message
	done chan struct{} // closed at the end of the stream
	err  error
}

// tail starts parsing body; the goroutine ends with the stream (close body to end it early).
func tail(body io.Reader) *tailer {
	tl := &tailer{more: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(tl.done)
		for ev, err := range sse.Read(body, &sse.ReadConfig{MaxEventSize: streamtest.MaxEventSize}) {
			if err != nil {
				tl.mu.Lock()
				tl.err = err
				tl.mu.Unlock()
				return
			}
			tl.mu.Lock()
			tl.msgs = append(tl.msgs, streamtest.Message{ID: ev.LastEventID, Event: ev.Type, Data: ev.Data})
			tl.mu.Unlock()
			select {
			case tl.more <- struct{}{}:
			default:
			}
		}
	}()
	return tl
}

// wait blocks until n messages arrived (fails after a bounded wait, or if the stream ends).
func (tl *tailer) wait(tb testing.TB, n int) []streamtest.Message {
	tb.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		tl.mu.Lock()
		got := append([]streamtest.Message(nil), tl.msgs...)
		tl.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-tl.more:
		case <-tl.done:
			tl.mu.Lock()
			got, err := len(tl.msgs), tl.err
			tl.mu.Unlock()
			if got >= n {
				continue
			}
			tb.Fatalf("stream ended after %d events (err %v), want %d", got, err, n)
		case <-deadline.C:
			tb.Fatalf("waited for %d events, have %d", n, len(got))
		}
	}
}

// all waits for the end of the stream and returns every message.
func (tl *tailer) all(tb testing.TB) []streamtest.Message {
	tb.Helper()
	select {
	case <-tl.done:
	case <-time.After(20 * time.Second):
		tb.Fatalf("stream did not end")
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	if tl.err != nil {
		tb.Fatalf("stream: %v", tl.err)
	}
	return append([]streamtest.Message(nil), tl.msgs...)
}
