package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentgate/agentgate/stream"
	"github.com/agentgate/agentgate/stream/streamtest"
)

// cutProxy stands between a real client and the gateway on 127.0.0.1: it serves a test page
// at / (same origin as the API, as EventSource needs), forwards /api/ and cuts the first cuts
// event-stream responses after cutAfter body bytes, mid-event, as a network failure would. It
// records the Last-Event-ID of every events request.
type cutProxy struct {
	gateway  string
	page     string
	cutAfter int
	srv      *http.Server
	url      string

	mu       sync.Mutex
	cuts     int
	lastIDs  []string // Last-Event-ID of each events request, in order
	cutCount int
	seen     int64         // the last event id the page reported it dispatched (GET /seen)
	seenCh   chan struct{} // closed and replaced when seen changes
}

func newCutProxy(tb testing.TB, gateway string, cuts, cutAfter int, page string) *cutProxy {
	tb.Helper()
	p := &cutProxy{gateway: gateway, page: page, cuts: cuts, cutAfter: cutAfter, seenCh: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p.url = "http://" + ln.Addr().String()
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() { defer close(served); _ = p.srv.Serve(ln) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.srv.Shutdown(ctx); err != nil {
			_ = p.srv.Close()
		}
		<-served
	})
	return p
}

func (p *cutProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/seen" {
		id, _ := strconv.ParseInt(r.URL.Query().Get("id"), 10, 64)
		p.mu.Lock()
		p.seen = max(p.seen, id)
		close(p.seenCh)
		p.seenCh = make(chan struct{})
		p.mu.Unlock()
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/api/") {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, p.page)
		return
	}
	req, err := http.NewRequestWithContext(r.Context(), r.Method, p.gateway+r.URL.RequestURI(), r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	for _, h := range []string{"Accept", "Last-Event-ID", "X-API-Key", "Authorization", "Content-Type", "Cache-Control"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	cut := -1
	if strings.HasSuffix(r.URL.Path, "/events") {
		p.mu.Lock()
		p.lastIDs = append(p.lastIDs, r.Header.Get("Last-Event-ID"))
		if p.cutCount < p.cuts {
			p.cutCount++
			cut = p.cutAfter
		}
		p.mu.Unlock()
	}
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer res.Body.Close()
	for k, vs := range res.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(res.StatusCode)
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, 64)
	sent := 0
	var forwarded []byte // the body sent so far, when it is to be cut
	for {
		n, err := res.Body.Read(buf)
		if cut >= 0 && sent+n >= cut {
			_, _ = w.Write(buf[:cut-sent])
			if flusher != nil {
				flusher.Flush()
			}
			if p.page != "" {
				// A browser may discard what arrives together with the failure: let the
				// page report the last whole event before cutting.
				p.waitSeen(r.Context(), lastWholeEventID(append(forwarded, buf[:cut-sent]...)))
			}
			panic(http.ErrAbortHandler) // drop the connection mid-event
		}
		if n > 0 {
			if cut >= 0 {
				forwarded = append(forwarded, buf[:n]...)
			}
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			sent += n
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}

// waitSeen waits until the page has reported dispatching event id, for a bounded time.
func (p *cutProxy) waitSeen(ctx context.Context, id int64) {
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		seen, ch := p.seen, p.seenCh
		p.mu.Unlock()
		if seen >= id {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		}
	}
}

// lastWholeEventID returns the id of the last complete event in an event-stream prefix (0:
// none).
func lastWholeEventID(body []byte) int64 {
	frames := strings.Split(string(body), "\n\n")
	last := int64(0)
	for _, f := range frames[:len(frames)-1] { // the part after the last blank line is cut
		for _, line := range strings.Split(f, "\n") {
			if v, ok := strings.CutPrefix(line, "id: "); ok {
				if id, err := strconv.ParseInt(v, 10, 64); err == nil {
					last = id
				}
			}
		}
	}
	return last
}

// requests returns the Last-Event-ID of each events request so far.
func (p *cutProxy) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lastIDs...)
}

// e2eDir returns the e2e directory and node, or skips (fails with CI=true) when the npm
// packages are not installed.
func e2eDir(t *testing.T, pkg string) (dir, node string) {
	t.Helper()
	dir, err := filepath.Abs("../e2e")
	if err != nil {
		t.Fatal(err)
	}
	node, nodeErr := exec.LookPath("node")
	_, statErr := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json"))
	if nodeErr != nil || statErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node or e2e/node_modules/%s missing (npm ci in e2e/): %v %v", pkg, nodeErr, statErr)
		}
		t.Skipf("node or e2e/node_modules/%s missing (npm ci in e2e/): %v %v", pkg, nodeErr, statErr)
	}
	return dir, node
}

// clientResult is what the Node scripts print.
type clientResult struct {
	Events []struct {
		ID   string `json:"id"`
		Type string `json:"type"`
		Data string `json:"data"`
	} `json:"events"`
	Errors int `json:"errors"`
}

// runEventClient runs an e2e script with a deadline and decodes its JSON line.
func runEventClient(t *testing.T, dir, node, script string, args ...string) clientResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{script}, args...)...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\nstdout: %s\nstderr: %s", script, err, stdout.String(), stderr.String())
	}
	var res clientResult
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res); err != nil {
		t.Fatalf("%s: output %q: %v (stderr %s)", script, stdout.String(), err, stderr.String())
	}
	return res
}

// checkClient checks that a real EventSource client ended with every event of the run exactly
// once, equal to the stored stream, after reconnecting by itself with Last-Event-ID.
func checkClient(t *testing.T, e *testEnv, ep createdEndpoint, runID string, got clientResult, p *cutProxy, cuts int) {
	t.Helper()
	msgs := make([]streamtest.Message, len(got.Events))
	for i, ev := range got.Events {
		msgs[i] = streamtest.Message{ID: ev.ID, Event: ev.Type, Data: ev.Data}
	}
	evs := streamtest.Decode(t, msgs) // ids 1..n, each once, one terminal event, last
	checkStream(t, msgs, evs)
	if evs[len(evs)-1].Type != stream.TypeDone {
		t.Fatalf("client ended with %s", ids(msgs))
	}
	e.waitRun(runID)
	sameMessages(t, "client against the stored stream", msgs, e.readAll(ep, runID, -1))
	reqs := p.requests()
	if len(reqs) < cuts+1 || got.Errors < cuts {
		t.Fatalf("want %d cuts and reconnects: %d events requests (Last-Event-IDs %q), %d connection errors", cuts, len(reqs), reqs, got.Errors)
	}
	prev := int64(0)
	for i, id := range reqs[1:] {
		n, err := strconv.ParseInt(id, 10, 64)
		if err != nil || n < prev || n >= int64(len(msgs)) {
			t.Fatalf("reconnect %d sent Last-Event-ID %q (all: %q)", i+1, id, reqs)
		}
		prev = n
	}
	if prev == 0 {
		t.Fatalf("no reconnect resumed past the first event: %q", reqs)
	}
}

// streamClientEnv starts a gateway with a short retry (clients reconnect fast) and an async
// run of paced tokens behind a cutting proxy.
func streamClientEnv(t *testing.T) (*testEnv, createdEndpoint) {
	t.Helper()
	e := newEnv(t, "sqlite", func(c *Config) { c.RetryMs = 100 })
	e.LLM.Handle(pacedEcho(5 * time.Millisecond))
	return e, e.endpoint(nil)
}

// TestStream_NodeEventSource: the `eventsource` npm package follows a run whose connection is
// cut mid-event twice; it reconnects with Last-Event-ID and gets every event exactly once.
func TestStream_NodeEventSource(t *testing.T) {
	t.Parallel()
	dir, node := e2eDir(t, "eventsource")
	e, ep := streamClientEnv(t)
	const cuts = 2
	p := newCutProxy(t, e.URL, cuts, 420, "")
	a := e.startAsync(ep, words(60))
	got := runEventClient(t, dir, node, "eventsource.mjs", p.url+a.EventsURL+"?token="+a.StreamToken)
	checkClient(t, e, ep, a.RunID, got, p, cuts)
}

// eventSourcePage opens an EventSource on ?events= and sets window.result at the terminal
// event.
const eventSourcePage = `<!doctype html>
<meta charset="utf-8"><title>agentgate EventSource</title>
<script>
const events = [];
let errors = 0;
const es = new EventSource(new URLSearchParams(location.search).get('events'));
const finish = () => { es.close(); window.result = { events, errors }; };
for (const type of ['thinking', 'token', 'tool_call', 'tool_result', 'usage', 'done']) {
  es.addEventListener(type, (e) => {
    events.push({ id: e.lastEventId, type, data: e.data });
    fetch('/seen?id=' + e.lastEventId).catch(() => {}); // lets the proxy cut after this event
    if (type === 'done') finish();
  });
}
es.addEventListener('error', (e) => {
  if (typeof e.data === 'string') { events.push({ id: e.lastEventId, type: 'error', data: e.data }); finish(); return; }
  errors++;
  if (es.readyState === EventSource.CLOSED) window.result = { events, errors, gaveUp: true };
});
</script>`

// TestStream_BrowserEventSource: Chromium's own EventSource, on a page of the same origin as
// the API, reconnects by itself after two cuts and ends with every event exactly once.
func TestStream_BrowserEventSource(t *testing.T) {
	t.Parallel()
	dir, node := e2eDir(t, "playwright-core")
	if _, err := os.Stat("/usr/bin/chromium"); err != nil && os.Getenv("CHROMIUM_PATH") == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium missing")
		}
		t.Skip("chromium missing")
	}
	e, ep := streamClientEnv(t)
	const cuts = 2
	p := newCutProxy(t, e.URL, cuts, 420, eventSourcePage)
	a := e.startAsync(ep, words(60))
	got := runEventClient(t, dir, node, "eventsource-browser.mjs", p.url+"/?events="+url.QueryEscape(a.EventsURL+"?token="+a.StreamToken))
	checkClient(t, e, ep, a.RunID, got, p, cuts)
}
