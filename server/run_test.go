package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentgate/agentgate/agent/llmtest"
	"github.com/agentgate/agentgate/db"
	"github.com/agentgate/agentgate/stream"
	"github.com/agentgate/agentgate/stream/streamtest"
)

// waitRun polls the run log until the run reaches a final status (the run finishes in its own
// goroutine after the terminal event went out).
func (e *testEnv) waitRun(id string) *db.Run {
	e.tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.Srv.runner.rlog.sync(context.Background())
		r, err := e.Store.Run(context.Background(), id)
		if err == nil && r.Status != "running" && r.FinishedAt != nil {
			if _, live := e.Srv.runner.lookup(id); !live {
				return r
			}
		}
		if time.Now().After(deadline) {
			e.tb.Fatalf("run %s did not finish (last: %+v, err %v)", id, r, err)
		}
		select {
		case <-time.After(5 * time.Millisecond): // polling an external effect with a deadline
		}
	}
}

func TestRun_JSON(t *testing.T) {
	t.Parallel()
	forKinds(t, func(t *testing.T, kind string) {
		e := newEnv(t, kind)
		e.LLM.Script(llmtest.Reply{Text: "A short summary.", Usage: &llmtest.Usage{Prompt: 312, Completion: 67}})
		ep := e.endpoint(map[string]any{"llm_model": "gpt-4o-mini", "output_format": "text"})
		r := e.run(ep, map[string]any{"input": "Summarize: the quick brown fox."})
		if r.Status != 200 {
			t.Fatalf("status %d: %s", r.Status, r.Body)
		}
		var ans struct {
			RunID     string           `json:"run_id"`
			Output    string           `json:"output"`
			ToolCalls []map[string]any `json:"tool_calls"`
			Usage     struct {
				TokensInput  int64   `json:"tokens_input"`
				TokensOutput int64   `json:"tokens_output"`
				CostCents    float64 `json:"cost_cents"`
				LatencyMs    int64   `json:"latency_ms"`
				Iterations   int     `json:"iterations"`
			} `json:"usage"`
		}
		r.json(t, &ans)
		if ans.Output != "A short summary." || !strings.HasPrefix(ans.RunID, "run_") || len(ans.RunID) != 22 {
			t.Fatalf("answer %s", r.Body)
		}
		if ans.ToolCalls == nil || len(ans.ToolCalls) != 0 {
			t.Fatalf("tool_calls must be an empty array: %s", r.Body)
		}
		if ans.Usage.TokensInput != 312 || ans.Usage.TokensOutput != 67 || ans.Usage.Iterations != 1 {
			t.Fatalf("usage %+v", ans.Usage)
		}
		// gpt-4o-mini is priced: 312 in and 67 out tokens cost a little more than nothing.
		if ans.Usage.CostCents <= 0 {
			t.Fatalf("cost_cents = %v, want > 0", ans.Usage.CostCents)
		}
		if r.Header.Get("X-Run-Id") != ans.RunID {
			t.Fatalf("X-Run-Id %q", r.Header.Get("X-Run-Id"))
		}
		reqs := e.LLM.Requests()
		if len(reqs) != 1 || reqs[0].Messages[0].Role != "system" || reqs[0].Messages[0].Content != "You are a concise summarizer." ||
			reqs[0].LastUser() != "Summarize: the quick brown fox." || !reqs[0].Stream || !reqs[0].IncludeUsage || reqs[0].Model != "gpt-4o-mini" {
			t.Fatalf("upstream request %+v", reqs)
		}
		rec := e.waitRun(ans.RunID)
		if rec.Status != "success" || rec.Output != ans.Output || rec.TokensInput != 312 || rec.TokensOutput != 67 ||
			rec.Iterations != 1 || rec.Input != "Summarize: the quick brown fox." || rec.CostMicroCents <= 0 {
			t.Fatalf("run record %+v", rec)
		}
		// The owner reads it back through the API.
		got := e.as(e.Token, "GET", "/api/agent-endpoints/"+ep.ID()+"/runs/"+ans.RunID, nil)
		var rr struct {
			Run map[string]any `json:"run"`
		}
		got.json(t, &rr)
		if got.Status != 200 || rr.Run["status"] != "success" || rr.Run["output"] != ans.Output {
			t.Fatalf("run detail %d %s", got.Status, got.Body)
		}
	})
}

// readStream parses a whole SSE response with go-sse's parser.
func readStream(t *testing.T, e *testEnv, ep createdEndpoint, body string) ([]streamtest.Message, []stream.Event) {
	t.Helper()
	res := e.openStream(context.Background(), ep, body)
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	for name, want := range map[string]string{
		"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Connection": "keep-alive",
	} {
		if got := res.Header.Get(name); !strings.HasPrefix(got, want) {
			t.Fatalf("header %s = %q, want %q", name, got, want)
		}
	}
	if !strings.HasPrefix(res.Header.Get("X-Run-Id"), "run_") {
		t.Fatalf("X-Run-Id %q", res.Header.Get("X-Run-Id"))
	}
	msgs := streamtest.Parse(t, res.Body)
	return msgs, streamtest.Decode(t, msgs)
}

// checkStream asserts the invariants of every stream: ids 1..n gap-free, exactly one
// terminal event and it is last, data "type" equals the event name, and the token deltas
// concatenate to done.output.
func checkStream(t *testing.T, msgs []streamtest.Message, evs []stream.Event) {
	t.Helper()
	var out strings.Builder
	for i, m := range msgs {
		if m.ID != strconv.Itoa(i+1) {
			t.Fatalf("event %d has id %q", i, m.ID)
		}
		var typed struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal([]byte(m.Data), &typed); err != nil || typed.Type != m.Event {
			t.Fatalf("event %d: data type %q != event %q", i, typed.Type, m.Event)
		}
		if strings.Contains(m.Data, "\n") {
			t.Fatalf("event %d: data spans lines", i)
		}
		if evs[i].Type.Terminal() != (i == len(evs)-1) {
			t.Fatalf("terminal event at %d of %d", i, len(evs))
		}
		if evs[i].Type == stream.TypeToken {
			out.WriteString(evs[i].Token.Delta)
		}
	}
	if last := evs[len(evs)-1]; last.Type == stream.TypeDone && last.Done.Output != out.String() {
		t.Fatalf("tokens %q != done.output %q", out.String(), last.Done.Output)
	}
}

func golden(t *testing.T, name string, msgs []streamtest.Message) {
	t.Helper()
	streamtest.Golden(t, "testdata/"+name+".golden", streamtest.Format(streamtest.Normalize(msgs)))
}

func TestRun_StreamPlainAnswer(t *testing.T) {
	t.Parallel()
	forKinds(t, func(t *testing.T, kind string) {
		e := newEnv(t, kind)
		e.LLM.Script(llmtest.Reply{Text: "The fox jumps over the dog.", Usage: &llmtest.Usage{Prompt: 20, Completion: 7}})
		ep := e.endpoint(nil)
		msgs, evs := readStream(t, e, ep, `{"input":"Summarize the fox story."}`)
		checkStream(t, msgs, evs)
		if evs[len(evs)-1].Type != stream.TypeDone {
			t.Fatalf("last event %s", evs[len(evs)-1].Type)
		}
		var tokens int
		for _, ev := range evs {
			if ev.Type == stream.TypeToken {
				tokens++
			}
		}
		if tokens < 2 {
			t.Fatalf("answer arrived in %d token events, want it streamed", tokens)
		}
		if kind == "sqlite" { // one transcript: both databases must give the same stream
			golden(t, "stream_plain", msgs)
		}
		rec := e.waitRun(evs[len(evs)-1].Done.RunID)
		if rec.Status != "success" || rec.TTFTMs < 0 || rec.Output != "The fox jumps over the dog." {
			t.Fatalf("record %+v", rec)
		}
	})
}

func TestRun_StreamModelError(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	e.LLM.Script(llmtest.Reply{Status: 400, Text: "model not found"})
	ep := e.endpoint(nil)
	msgs, evs := readStream(t, e, ep, `{"input":"hi"}`)
	checkStream(t, msgs, evs)
	last := evs[len(evs)-1]
	if last.Type != stream.TypeError || last.Error.Code != stream.CodeLLM || last.Error.RunID == "" {
		t.Fatalf("last event %+v", last)
	}
	golden(t, "stream_model_error", msgs)
	if rec := e.waitRun(last.Error.RunID); rec.Status != "error" || rec.ErrorCode != stream.CodeLLM {
		t.Fatalf("record %+v", rec)
	}
	// The same failure as JSON: the error envelope with the run id, status 502.
	e.LLM.Script(llmtest.Reply{Status: 400, Text: "model not found"})
	r := e.run(ep, `{"input":"hi"}`)
	var env struct {
		Error stream.Error `json:"error"`
	}
	r.json(t, &env)
	if r.Status != 502 || env.Error.Code != stream.CodeLLM || !strings.HasPrefix(env.Error.RunID, "run_") {
		t.Fatalf("json error %d %s", r.Status, r.Body)
	}
}

func TestRun_Timeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	e.LLM.Script(llmtest.Reply{Text: "never finishes", Hang: true})
	ep := e.endpoint(map[string]any{"timeout_ms": 1000})
	msgs, evs := readStream(t, e, ep, `{"input":"hi"}`)
	checkStream(t, msgs, evs)
	last := evs[len(evs)-1]
	if last.Type != stream.TypeError || last.Error.Code != stream.CodeTimeout {
		t.Fatalf("last event %+v", last)
	}
	golden(t, "stream_timeout", msgs)
	rec := e.waitRun(last.Error.RunID)
	if rec.Status != "timeout" || rec.ErrorCode != stream.CodeTimeout {
		t.Fatalf("record %+v", rec)
	}
	if _, err := e.LLM.WaitAborted(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatalf("upstream request not aborted after the timeout: %v", err)
	}
	// JSON: 504 TIMEOUT.
	e.LLM.Script(llmtest.Reply{Text: "never finishes", Hang: true})
	r := e.run(ep, `{"input":"hi"}`)
	if r.Status != 504 || r.errCode() != stream.CodeTimeout {
		t.Fatalf("json timeout %d %s", r.Status, r.Body)
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestRun_DisconnectCancels: a synchronous stream whose client goes away cancels the run;
// the upstream request is aborted within 1 s, and the run is logged cancelled with the usage
// so far.
func TestRun_DisconnectCancels(t *testing.T) {
	t.Parallel()
	forKinds(t, func(t *testing.T, kind string) {
		e := newEnv(t, kind)
		// Some text, then silence: the gateway has nothing to write, so only its disconnect
		// watcher can notice the client leaving.
		e.LLM.Script(llmtest.Reply{Chunks: []string{"Partial", " answer"}, Hang: true})
		ep := e.endpoint(nil)
		ctx, cancel := context.WithCancel(context.Background())
		res := e.openStream(ctx, ep, `{"input":"hi"}`)
		runID := res.Header.Get("X-Run-Id")
		// Read until both tokens arrived, then hang up.
		br := bufio.NewReader(res.Body)
		var seen strings.Builder
		for !strings.Contains(seen.String(), `"delta":" answer"`) {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("read: %v (so far %q)", err, seen.String())
			}
			seen.WriteString(line)
		}
		if line, err := br.ReadString('\n'); err != nil || line != "\n" { // the event's closing blank line
			t.Fatalf("event not closed: %q %v", line, err)
		} else {
			seen.WriteString(line)
		}
		closed := time.Now()
		cancel()
		res.Body.Close()
		if _, err := e.LLM.WaitAborted(ctxTimeout(t, 5*time.Second)); err != nil {
			t.Fatalf("upstream not aborted: %v", err)
		}
		if took := time.Since(closed); took > time.Second {
			t.Errorf("upstream aborted %v after the client left, want ≤ 1s", took)
		}
		rec := e.waitRun(runID)
		if rec.Status != "cancelled" || rec.Output != "Partial answer" {
			t.Fatalf("record %+v", rec)
		}
		if kind == "sqlite" {
			msgs := streamtest.Parse(t, strings.NewReader(seen.String()))
			golden(t, "stream_cancelled", msgs)
		}
	})
}

func TestRun_InputAndNegotiation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	ep := e.endpoint(nil)
	streamEP := e.endpoint(map[string]any{"name": "streamer", "enable_streaming": true})
	tests := []struct {
		name    string
		ep      createdEndpoint
		path    string
		body    string
		headers []string
		status  int
		sse     bool
		input   string
	}{
		{"input field", ep, "", `{"input":"a"}`, nil, 200, false, "a"},
		{"prompt field", ep, "", `{"prompt":"p"}`, nil, 200, false, "p"},
		{"object input encoded", ep, "", `{"input":{"x":1}}`, nil, 200, false, `{"x":1}`},
		{"whole body", ep, "", `{"question":"q"}`, nil, 200, false, `{"question":"q"}`},
		{"empty input", ep, "", `{"input":""}`, nil, 400, false, ""},
		{"empty body", ep, "", ``, nil, 400, false, ""},
		{"accept header streams", ep, "", `{"input":"a"}`, []string{"Accept", "text/event-stream"}, 200, true, "a"},
		{"query streams", ep, "?stream=true", `{"input":"a"}`, nil, 200, true, "a"},
		{"endpoint streams by default", streamEP, "", `{"input":"a"}`, nil, 200, true, "a"},
		{"stream=false wins", streamEP, "?stream=false", `{"input":"a"}`, nil, 200, false, "a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(e.LLM.Requests())
			r := e.do("POST", "/api/run/"+tt.ep.Slug()+tt.path, tt.body, append([]string{"X-API-Key", tt.ep.APIKey}, tt.headers...)...)
			if r.Status != tt.status {
				t.Fatalf("status %d: %s", r.Status, r.Body)
			}
			if tt.status != 200 {
				if r.errCode() != stream.CodeValidation {
					t.Fatalf("error %s", r.Body)
				}
				return
			}
			isSSE := strings.HasPrefix(r.Header.Get("Content-Type"), "text/event-stream")
			if isSSE != tt.sse {
				t.Fatalf("content-type %q, want sse=%v", r.Header.Get("Content-Type"), tt.sse)
			}
			reqs := e.LLM.Requests()
			if len(reqs) != before+1 || reqs[len(reqs)-1].LastUser() != tt.input {
				t.Fatalf("model saw %q, want %q", reqs[len(reqs)-1].LastUser(), tt.input)
			}
		})
	}
}

func TestRun_AuthAndLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite", func(c *Config) { c.BodyLimit = 1 << 20 })
	ep := e.endpoint(nil)
	public := e.endpoint(map[string]any{"name": "open", "auth_mode": "public"})
	cases := []struct {
		name    string
		slug    string
		body    string
		headers []string
		status  int
		code    string
	}{
		{"no key", ep.Slug(), `{"input":"a"}`, nil, 401, stream.CodeUnauthorized},
		{"wrong key", ep.Slug(), `{"input":"a"}`, []string{"Authorization", "Bearer aek_00000000000000000000000000000000"}, 401, stream.CodeUnauthorized},
		{"jwt is not a key", ep.Slug(), `{"input":"a"}`, []string{"Authorization", "Bearer " + e.Token}, 401, stream.CodeUnauthorized},
		{"bearer key", ep.Slug(), `{"input":"a"}`, []string{"Authorization", "Bearer " + ep.APIKey}, 200, ""},
		{"x-api-key", ep.Slug(), `{"input":"a"}`, []string{"X-API-Key", ep.APIKey}, 200, ""},
		{"public needs no key", public.Slug(), `{"input":"a"}`, nil, 200, ""},
		{"unknown slug", "no-such-endpoint", `{"input":"a"}`, nil, 404, stream.CodeNotFound},
		{"body too large", ep.Slug(), `{"input":"` + strings.Repeat("x", 1<<20) + `"}`, []string{"X-API-Key", ep.APIKey}, 413, stream.CodePayloadTooLarge},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			r := e.do("POST", "/api/run/"+tt.slug, tt.body, tt.headers...)
			if r.Status != tt.status || r.errCode() != tt.code {
				t.Fatalf("got %d %s, want %d %s", r.Status, r.Body, tt.status, tt.code)
			}
			if tt.status == 200 {
				wantLimit := "60"
				if tt.slug == public.Slug() {
					wantLimit = "20" // the per-IP limit of public endpoints is the tighter one
				}
				if r.Header.Get("X-RateLimit-Limit") != wantLimit || r.Header.Get("X-RateLimit-Remaining") == "" || r.Header.Get("X-RateLimit-Reset") == "" {
					t.Fatalf("rate limit headers %v", r.Header)
				}
			}
		})
	}
}

func TestRun_RateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	ep := e.endpoint(map[string]any{"rate_limit_per_minute": 3})
	for i := 0; i < 3; i++ {
		if r := e.run(ep, `{"input":"a"}`); r.Status != 200 || r.Header.Get("X-RateLimit-Remaining") != strconv.Itoa(2-i) {
			t.Fatalf("run %d: %d remaining %q", i, r.Status, r.Header.Get("X-RateLimit-Remaining"))
		}
	}
	r := e.run(ep, `{"input":"a"}`)
	if r.Status != 429 || r.errCode() != stream.CodeRateLimited || r.Header.Get("Retry-After") == "" {
		t.Fatalf("4th run: %d %s %v", r.Status, r.Body, r.Header)
	}
	want := fmt.Sprintf("Rate limit exceeded. Try again in %s seconds.", r.Header.Get("Retry-After"))
	if r.errMessage() != want {
		t.Fatalf("message %q, want %q", r.errMessage(), want)
	}
}
