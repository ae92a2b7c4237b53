package server

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/agentgate/agentgate/agent/llmtest"
	"github.com/agentgate/agentgate/tools/toolstest"
)

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

var labelRE = regexp.MustCompile(`(\w+)="([^"]*)"`)

// scrape fetches GET /metrics and parses its samples.
func (e *testEnv) scrape() []sample {
	e.tb.Helper()
	r := e.do("GET", "/metrics", nil)
	if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
		e.tb.Fatalf("GET /metrics: %d %s %s", r.Status, r.Header.Get("Content-Type"), r.Body)
	}
	var out []sample
	for _, line := range strings.Split(string(r.Body), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			e.tb.Fatalf("bad sample %q", line)
		}
		s := sample{name: line[:sp], labels: map[string]string{}, value: v}
		if i := strings.IndexByte(line[:sp], '{'); i >= 0 {
			s.name = line[:i]
			for _, m := range labelRE.FindAllStringSubmatch(line[i:sp], -1) {
				s.labels[m[1]] = m[2]
			}
		}
		out = append(out, s)
	}
	return out
}

// value returns the sample with name and exactly the given labels (name, value pairs), and
// whether there is one.
func value(samples []sample, name string, labels ...string) (float64, bool) {
next:
	for _, s := range samples {
		if s.name != name || len(s.labels) != len(labels)/2 {
			continue
		}
		for i := 0; i+1 < len(labels); i += 2 {
			if s.labels[labels[i]] != labels[i+1] {
				continue next
			}
		}
		return s.value, true
	}
	return 0, false
}

// startMCP serves an MCP server with one tool, "add", over Streamable HTTP on 127.0.0.1 and
// returns its URL.
func startMCP(tb testing.TB) string {
	tb.Helper()
	return toolstest.StartStreamable(tb, func(s *mcpserver.MCPServer) {
		s.AddTool(mcp.NewTool("add", mcp.WithNumber("a"), mcp.WithNumber("b")),
			func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return mcp.NewToolResultText(strconv.Itoa(req.GetInt("a", 0) + req.GetInt("b", 0))), nil
			})
	}, nil).URL
}

func TestMetrics_Scrape(t *testing.T) {
	t.Parallel()
	forKinds(t, func(t *testing.T, kind string) {
		e := newEnv(t, kind)
		mcpURL := startMCP(t)

		ws := e.workspace(e.Token, "calc")
		e.addServer(ws, map[string]any{"name": "calc", "slug": "calc", "transport": "streamable_http", "url": mcpURL})
		ep := e.endpoint(map[string]any{"slug": "metered", "llm_model": "gpt-4o-mini", "workspace_id": ws,
			"rate_limit_per_minute": 3})

		// Run 1: a tool call, then the answer. Run 2: the upstream refuses (400, not retried).
		// Run 3 and its stream are fine; run 4 is over the limit of 3 per minute.
		e.LLM.Script(
			llmtest.Reply{ToolCalls: []llmtest.ToolCall{{Name: "calc__add", Arguments: `{"a":2,"b":3}`}},
				Usage: &llmtest.Usage{Prompt: 100, Completion: 10}},
			llmtest.Reply{Text: "It is 5.", Usage: &llmtest.Usage{Prompt: 120, Completion: 4}},
			llmtest.Reply{Status: 400, Text: "bad request"},
		)
		if r := e.run(ep, `{"input":"2+3?"}`); r.Status != 200 || !strings.Contains(string(r.Body), `"success":true`) {
			t.Fatalf("tool run: %d %s", r.Status, r.Body)
		}
		if r := e.run(ep, `{"input":"fail"}`); r.Status != 502 {
			t.Fatalf("failing run: %d %s", r.Status, r.Body)
		}

		// An open stream shows in agentgate_open_streams while it is open.
		e.LLM.Script(llmtest.Reply{Hang: true}) // no content: nothing is billed or estimated
		ctx, cancel := context.WithCancel(context.Background())
		res := e.openStream(ctx, ep, `{"input":"hang"}`)
		waitCtx, waitCancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer waitCancel()
		for {
			req, err := e.LLM.WaitStarted(waitCtx) // earlier requests signalled too
			if err != nil {
				t.Fatal(err)
			}
			if req.LastUser() == "hang" {
				break
			}
		}
		if v, _ := value(e.scrape(), "agentgate_open_streams"); v != 1 {
			t.Fatalf("agentgate_open_streams = %v during a stream, want 1", v)
		}
		cancel()
		res.Body.Close()

		if r := e.run(ep, `{"input":"over"}`); r.Status != 429 {
			t.Fatalf("4th run: %d %s", r.Status, r.Body)
		}
		// Wait until the three runs are recorded (the stream's ends when its cancel lands).
		deadline := time.Now().Add(10 * time.Second)
		var s []sample
		for {
			s = e.scrape()
			n := 0.0
			for _, st := range []string{"success", "error", "cancelled"} {
				v, _ := value(s, "agentgate_runs_total", "endpoint", "metered", "provider", "openai", "status", st)
				n += v
			}
			if n == 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("runs recorded: %v", n)
			}
			select {
			case <-time.After(10 * time.Millisecond): // polling an external effect with a deadline
			}
		}

		want := []struct {
			name   string
			labels []string
			value  float64
		}{
			{"agentgate_runs_total", []string{"endpoint", "metered", "provider", "openai", "status", "success"}, 1},
			{"agentgate_runs_total", []string{"endpoint", "metered", "provider", "openai", "status", "error"}, 1},
			{"agentgate_runs_total", []string{"endpoint", "metered", "provider", "openai", "status", "cancelled"}, 1},
			{"agentgate_tokens_total", []string{"endpoint", "metered", "direction", "input"}, 220},
			{"agentgate_tokens_total", []string{"endpoint", "metered", "direction", "output"}, 14},
			{"agentgate_tool_calls_total", []string{"endpoint", "metered", "status", "success"}, 1},
			{"agentgate_tool_call_duration_seconds_count", []string{"status", "success"}, 1},
			{"agentgate_upstream_errors_total", []string{"provider", "openai"}, 1},
			{"agentgate_rate_limited_total", []string{"endpoint", "metered"}, 1},
			{"agentgate_run_duration_seconds_count", []string{"endpoint", "metered"}, 3},
			{"agentgate_run_ttft_seconds_count", []string{"endpoint", "metered"}, 1},
			{"agentgate_overhead_seconds_count", nil, 2},
			{"agentgate_open_streams", nil, 0},
			{"agentgate_live_runs", nil, 0},
		}
		for _, w := range want {
			got, ok := value(s, w.name, w.labels...)
			if !ok || got != w.value {
				t.Errorf("%s%v = %v (present %v), want %v", w.name, w.labels, got, ok, w.value)
			}
		}
		// gpt-4o-mini is priced: 220 tokens in and 14 out cost something.
		if v, _ := value(s, "agentgate_cost_cents_total", "endpoint", "metered"); v <= 0 {
			t.Errorf("agentgate_cost_cents_total = %v, want > 0", v)
		}
		// The run log wrote the runs' records (start and finish versions).
		if v, _ := value(s, "agentgate_runlog_records_written_total", "kind", "runs"); v < 3 {
			t.Errorf("agentgate_runlog_records_written_total{kind=runs} = %v, want ≥ 3", v)
		}
		if _, ok := value(s, "process_resident_memory_bytes"); !ok {
			t.Errorf("process collector missing")
		}
	})
}

func TestOverheadHeader(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	ep := e.endpoint(map[string]any{"llm_model": "gpt-4o-mini"})
	// The model takes 500 ms before its first byte: the header must leave that out.
	const modelWait = 500 * time.Millisecond
	e.LLM.Script(llmtest.Reply{Text: "slow answer", Delay: modelWait})
	start := time.Now()
	r := e.run(ep, `{"input":"x"}`)
	total := time.Since(start)
	if r.Status != 200 {
		t.Fatalf("run: %d %s", r.Status, r.Body)
	}
	h := r.Header.Get("X-Agentgate-Overhead-Ms")
	ms, err := strconv.ParseFloat(h, 64)
	if err != nil || ms < 0 {
		t.Fatalf("X-Agentgate-Overhead-Ms = %q", h)
	}
	if ms >= float64(modelWait.Milliseconds()) || time.Duration(ms*float64(time.Millisecond))+modelWait > total {
		t.Fatalf("overhead %v ms must exclude the model's %v (client saw %v)", ms, modelWait, total)
	}

	// A run that ended in an upstream error is answered as JSON too, with the header.
	e.LLM.Script(llmtest.Reply{Status: 400, Text: "no"})
	if r := e.run(ep, `{"input":"x"}`); r.Status != 502 || r.Header.Get("X-Agentgate-Overhead-Ms") == "" {
		t.Fatalf("error run: %d header %q", r.Status, r.Header.Get("X-Agentgate-Overhead-Ms"))
	}
}
