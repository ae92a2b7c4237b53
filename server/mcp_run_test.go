//go:build unix

package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"
	"go.uber.org/goleak"

	"github.com/agentgate/agentgate/agent"
	"github.com/agentgate/agentgate/agent/llmtest"
	"github.com/agentgate/agentgate/stream"
	"github.com/agentgate/agentgate/tools"
	"github.com/agentgate/agentgate/tools/toolstest"
)

// toolMessage returns the tool message answering callID in a recorded model request.
func toolMessage(tb testing.TB, req llmtest.Request, callID string) string {
	tb.Helper()
	for _, m := range req.Messages {
		if m.Role == "tool" && m.ToolCallID == callID {
			return m.Content
		}
	}
	tb.Fatalf("request %d has no tool message for %s: %+v", req.Seq, callID, req.Messages)
	return ""
}

func toolNames(req llmtest.Request) []string {
	var out []string
	for _, t := range req.Tools {
		out = append(out, t.Name)
	}
	return out
}

// TestMCP_EverythingEcho is issue 3's "done means": a run against llmtest that calls
// everything__echo on the reference MCP server streams thinking…, tool_call, tool_result
// (success), tokens, done with tool_calls[0] and usage.iterations = 2, on both databases.
func TestMCP_EverythingEcho(t *testing.T) {
	t.Parallel()
	url := toolstest.StartEverything(t)
	forKinds(t, func(t *testing.T, kind string) {
		e := newEnv(t, kind)
		ep, _ := e.toolEndpoint(map[string]map[string]any{"everything": httpServer("streamable_http", url)}, nil)
		e.LLM.Script(
			llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "call_echo", Name: "everything__echo", Arguments: `{"message":"hello from agentgate"}`}}},
			llmtest.Reply{Text: "The server echoed: hello from agentgate."},
		)
		msgs, evs := readStream(t, e, ep, `{"input":"Echo hello from agentgate."}`)
		checkStream(t, msgs, evs)
		want := []string{"thinking:starting", "thinking:loading_tools", "thinking:tools_loaded", "thinking:llm_call", "usage",
			"tool_call", "tool_result", "thinking:llm_call", "token", "usage", "done"}
		if got := compact(eventTypes(evs)); !slices.Equal(got, want) {
			t.Fatalf("events %v\nwant   %v", got, want)
		}
		reqs := e.LLM.Requests()
		if len(reqs) != 2 {
			t.Fatalf("%d model calls", len(reqs))
		}
		offered := toolNames(reqs[0])
		if !slices.Contains(offered, "everything__echo") || !slices.Contains(offered, "everything__get-sum") {
			t.Fatalf("offered tools %q", offered)
		}
		if msg := firstOf(t, evs, stream.TypeThinking); msg.Thinking.Message != "Starting run" {
			t.Fatalf("first thinking %+v", msg.Thinking)
		}
		loaded := toolsLoaded(t, evs)
		if wantMsg := pluralTools(len(offered)); loaded != wantMsg {
			t.Fatalf("tools_loaded message %q, want %q (the real count)", loaded, wantMsg)
		}
		call := firstOf(t, evs, stream.TypeToolCall).ToolCall
		if call.ID != "call_echo" || call.Tool != "everything__echo" || call.Iteration != 1 || string(call.Arguments) != `{"message":"hello from agentgate"}` {
			t.Fatalf("tool_call %+v", call)
		}
		res := firstOf(t, evs, stream.TypeToolResult).ToolResult
		if res.ID != "call_echo" || res.Tool != "everything__echo" || !res.Success || res.Result != "Echo: hello from agentgate" || res.LatencyMs < 0 {
			t.Fatalf("tool_result %+v", res)
		}
		done := lastDone(t, evs)
		if len(done.ToolCalls) != 1 || done.Usage.Iterations != 2 || done.Output != "The server echoed: hello from agentgate." {
			t.Fatalf("done %+v", done)
		}
		tc := done.ToolCalls[0]
		if tc.Name != "everything__echo" || string(tc.Arguments) != `{"message":"hello from agentgate"}` ||
			tc.Result != "Echo: hello from agentgate" || !tc.Success || tc.LatencyMs < 0 {
			t.Fatalf("done.tool_calls[0] %+v", tc)
		}
		// The wire names of SPEC §5: {name, arguments, result, latencyMs, success}.
		var raw struct {
			ToolCalls []map[string]json.RawMessage `json:"tool_calls"`
		}
		if err := json.Unmarshal([]byte(msgs[len(msgs)-1].Data), &raw); err != nil {
			t.Fatal(err)
		}
		keys := make([]string, 0)
		for k := range raw.ToolCalls[0] {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, []string{"arguments", "latencyMs", "name", "result", "success"}) {
			t.Fatalf("tool_calls[0] keys %q", keys)
		}
		// The model got the full result as the answer to its call.
		if got := toolMessage(t, reqs[1], "call_echo"); got != "Echo: hello from agentgate" {
			t.Fatalf("tool message %q", got)
		}
		rec := e.waitRun(done.RunID)
		var logged []stream.ToolCallRecord
		if err := json.Unmarshal(rec.ToolCalls, &logged); err != nil || len(logged) != 1 || logged[0].Result != tc.Result || rec.Iterations != 2 {
			t.Fatalf("run log tool_calls %s iterations %d (%v)", rec.ToolCalls, rec.Iterations, err)
		}

		// get-sum through a JSON run.
		e.LLM.Script(
			llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "call_sum", Name: "everything__get-sum", Arguments: `{"a":2,"b":40}`}}},
			llmtest.Reply{Text: "It is 42."},
		)
		r := e.run(ep, map[string]any{"input": "What is 2+40?"})
		var ans stream.Answer
		r.json(t, &ans)
		if r.Status != 200 || len(ans.ToolCalls) != 1 || !ans.ToolCalls[0].Success || !strings.Contains(ans.ToolCalls[0].Result, "42") ||
			ans.Usage.Iterations != 2 || ans.Output != "It is 42." {
			t.Fatalf("get-sum run: %d %s", r.Status, r.Body)
		}
	})
}

// toolsLoaded returns the message of the tools_loaded thinking event.
func toolsLoaded(tb testing.TB, evs []stream.Event) string {
	tb.Helper()
	for _, ev := range evs {
		if ev.Type == stream.TypeThinking && ev.Thinking.Status == stream.StatusToolsLoaded {
			return ev.Thinking.Message
		}
	}
	tb.Fatalf("no tools_loaded event in %v", eventTypes(evs))
	return ""
}

func pluralTools(n int) string {
	if n == 1 {
		return "1 tool loaded"
	}
	return strconv.Itoa(n) + " tools loaded"
}

// kitPeer is a Streamable HTTP MCP server with the tools most run tests use.
func kitPeer(tb testing.TB) *toolstest.Server {
	tb.Helper()
	return toolstest.StartStreamable(tb, func(s *mcpserver.MCPServer) { toolstest.EchoTool(s); failTool(s) }, nil)
}

// TestMCP_GoldenToolRoundTrip pins the transcripts of a tool round trip and of a failing tool
// (an MCP isError result: reported to the model, the run goes on).
func TestMCP_GoldenToolRoundTrip(t *testing.T) {
	t.Parallel()
	peer := kitPeer(t)
	cases := []struct {
		golden  string
		call    llmtest.ToolCall
		answer  string
		success bool
		result  string
	}{
		{"stream_tool", llmtest.ToolCall{ID: "call_1", Name: "kit__echo", Arguments: `{"text":"hi there"}`}, "The tool said hi there.", true, "hi there"},
		{"stream_tool_error", llmtest.ToolCall{ID: "call_1", Name: "kit__fail", Arguments: `{}`}, "The tool failed: disk quota exceeded.", false, "Error: disk quota exceeded"},
	}
	for _, tt := range cases {
		t.Run(tt.golden, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, "sqlite")
			ep, _ := e.toolEndpoint(map[string]map[string]any{"kit": httpServer("streamable_http", peer.URL)}, nil)
			e.LLM.Script(llmtest.Reply{ToolCalls: []llmtest.ToolCall{tt.call}}, llmtest.Reply{Text: tt.answer})
			msgs, evs := readStream(t, e, ep, `{"input":"Use the tool."}`)
			checkStream(t, msgs, evs)
			done := lastDone(t, evs)
			if len(done.ToolCalls) != 1 || done.ToolCalls[0].Success != tt.success || done.ToolCalls[0].Result != tt.result || done.Usage.Iterations != 2 {
				t.Fatalf("done %+v", done)
			}
			if got := toolMessage(t, e.LLM.Requests()[1], "call_1"); got != tt.result {
				t.Fatalf("the model got %q, want %q", got, tt.result)
			}
			golden(t, tt.golden, msgs)
		})
	}
}

// TestMCP_Transports runs a tool through a full run over each transport: Streamable HTTP and
// HTTP+SSE (workspace servers) and stdio (an operator server).
func TestMCP_Transports(t *testing.T) {
	t.Parallel()
	streamable := toolstest.StartStreamable(t, toolstest.EchoTool, nil)
	sse := toolstest.StartSSE(t, toolstest.EchoTool)
	stdio := toolstest.StdioServer(t)
	cases := []struct {
		name   string
		server map[string]any
	}{
		{"streamable_http", httpServer("streamable_http", streamable.URL)},
		{"sse", httpServer("sse", sse.URL)},
		{"stdio", map[string]any{"operator_server": "local"}},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, "sqlite", func(c *Config) { c.OperatorServers = []tools.ServerConfig{stdioOperator("local", stdio)} })
			ep, _ := e.toolEndpoint(map[string]map[string]any{"srv": tt.server}, nil)
			e.LLM.Script(
				llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "c1", Name: "srv__echo", Arguments: `{"text":"over ` + tt.name + `"}`}}},
				llmtest.Reply{Text: "ok"},
			)
			r := e.run(ep, map[string]any{"input": "go"})
			var ans stream.Answer
			r.json(t, &ans)
			if r.Status != 200 || len(ans.ToolCalls) != 1 || !ans.ToolCalls[0].Success || ans.ToolCalls[0].Result != "over "+tt.name {
				t.Fatalf("run: %d %s", r.Status, r.Body)
			}
		})
	}
}

// TestMCP_StdioCrashMidCall: the operator's stdio server exits during a call. That tool
// result fails, the run completes, and the next run gets a fresh child.
func TestMCP_StdioCrashMidCall(t *testing.T) {
	t.Parallel()
	stdio := toolstest.StdioServer(t)
	e := newEnv(t, "sqlite", func(c *Config) { c.OperatorServers = []tools.ServerConfig{stdioOperator("local", stdio)} })
	ep, _ := e.toolEndpoint(map[string]map[string]any{"local": {"operator_server": "local"}}, nil)
	pid := func() string { t.Helper(); return e.stdioPid(ep, "local__pid") }
	first := pid()

	e.LLM.Script(llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "boom", Name: "local__crash"}}}, llmtest.Reply{Text: "It crashed."})
	_, evs := readStream(t, e, ep, `{"input":"crash it"}`)
	done := lastDone(t, evs)
	res := firstOf(t, evs, stream.TypeToolResult).ToolResult
	if res.Success || !strings.HasPrefix(res.Result, "Error: ") || done.Output != "It crashed." || done.ToolCalls[0].Success {
		t.Fatalf("crash: result %+v done %+v", res, done)
	}
	if msg := toolMessage(t, e.LLM.Requests()[3], "boom"); !strings.HasPrefix(msg, "Error: ") {
		t.Fatalf("the model got %q", msg)
	}
	if again := pid(); again == first || again == "" {
		t.Fatalf("pid after the crash %q, want a new child (was %q)", again, first)
	}
}

// TestMCP_ServerDownAtStart: a workspace server that cannot be reached when the run starts is
// left out; the run goes on with the other server's tools and says so in a thinking event.
func TestMCP_ServerDownAtStart(t *testing.T) {
	t.Parallel()
	forKinds(t, func(t *testing.T, kind string) {
		peer := kitPeer(t)
		e := newEnv(t, kind)
		ep, _ := e.toolEndpoint(map[string]map[string]any{
			"kit":  httpServer("streamable_http", peer.URL),
			"down": httpServer("streamable_http", closedURL(t)),
		}, nil)
		e.LLM.Script(llmtest.Reply{Text: "Answered without the missing server."})
		_, evs := readStream(t, e, ep, `{"input":"hi"}`)
		done := lastDone(t, evs)
		if done.Output != "Answered without the missing server." {
			t.Fatalf("done %+v", done)
		}
		msg := toolsLoaded(t, evs)
		if !strings.HasPrefix(msg, "2 tools loaded; ") || !strings.Contains(msg, `mcp server "down" unavailable`) {
			t.Fatalf("tools_loaded message %q", msg)
		}
		if got := toolNames(e.LLM.Requests()[0]); !slices.Equal(got, []string{"kit__echo", "kit__fail"}) {
			t.Fatalf("offered %q", got)
		}
	})
}

// TestMCP_ServerDiesMidCall: the HTTP MCP server drops every connection during a call. That
// tool result fails, the run completes, and the next run reconnects.
func TestMCP_ServerDiesMidCall(t *testing.T) {
	t.Parallel()
	var ts atomic.Pointer[httptest.Server]
	peer := toolstest.StartStreamable(t, func(s *mcpserver.MCPServer) {
		toolstest.EchoTool(s)
		s.AddTool(mcp.NewTool("die"), func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			go ts.Load().CloseClientConnections()
			<-ctx.Done()
			return nil, ctx.Err()
		})
	}, nil)
	ts.Store(peer.TS)
	e := newEnv(t, "sqlite")
	ep, _ := e.toolEndpoint(map[string]map[string]any{"kit": httpServer("streamable_http", peer.URL)}, nil)
	e.LLM.Script(llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "d", Name: "kit__die"}}}, llmtest.Reply{Text: "The server went away."})
	_, evs := readStream(t, e, ep, `{"input":"die"}`)
	done := lastDone(t, evs)
	if len(done.ToolCalls) != 1 || done.ToolCalls[0].Success || !strings.HasPrefix(done.ToolCalls[0].Result, "Error: ") ||
		done.Output != "The server went away." || done.Usage.Iterations != 2 {
		t.Fatalf("done %+v", done)
	}
	e.LLM.Script(llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "e", Name: "kit__echo", Arguments: `{"text":"back"}`}}}, llmtest.Reply{Text: "ok"})
	var ans stream.Answer
	r := e.run(ep, map[string]any{"input": "again"})
	r.json(t, &ans)
	if r.Status != 200 || len(ans.ToolCalls) != 1 || !ans.ToolCalls[0].Success || ans.ToolCalls[0].Result != "back" {
		t.Fatalf("run after the drop: %d %s", r.Status, r.Body)
	}
}

// faultKit is a Streamable HTTP MCP server whose tools misbehave on purpose, with the
// counters one test case reads.
type faultKit struct {
	peer     *toolstest.Server
	hung     chan error // the hang tool's view of its cancellation
	echoes   atomic.Int32
	arrived  atomic.Int32
	together chan struct{} // closed when two barrier calls are in flight at once
}

func newFaultKit(tb testing.TB) *faultKit {
	tb.Helper()
	k := &faultKit{hung: make(chan error, 4), together: make(chan struct{})}
	k.peer = toolstest.StartStreamable(tb, func(s *mcpserver.MCPServer) {
		s.AddTool(mcp.NewTool("echo", mcp.WithString("text", mcp.Required())),
			func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				k.echoes.Add(1)
				return mcp.NewToolResultText(req.GetString("text", "")), nil
			})
		hangTool(s, k.hung)
		s.AddTool(mcp.NewTool("big"), func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText(strings.Repeat("abcdefgh", 1<<17)), nil // 1 MiB
		})
		// barrier answers only once two calls are inside it at the same time.
		s.AddTool(mcp.NewTool("barrier"), func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			if k.arrived.Add(1) == 2 {
				close(k.together)
			}
			select {
			case <-k.together:
				return mcp.NewToolResultText("met"), nil
			case <-time.After(5 * time.Second): // bounds a broken (sequential) loop
				return mcp.NewToolResultError("alone at the barrier"), nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		})
	}, nil)
	return k
}

// scriptByInput makes the scripted model answer each request by its user input (the case)
// and its turn (the assistant messages so far), so cases can share one gateway in parallel.
func scriptByInput(e *testEnv, replies map[string][]llmtest.Reply) {
	e.LLM.Handle(func(req llmtest.Request) llmtest.Reply {
		turn := 0
		for _, m := range req.Messages {
			if m.Role == "assistant" {
				turn++
			}
		}
		list := replies[req.LastUser()]
		if turn >= len(list) {
			return llmtest.Reply{Status: 500, Text: "unscripted turn"}
		}
		return list[turn]
	})
}

// requestsFor returns the recorded model requests whose user input is input.
func requestsFor(e *testEnv, input string) []llmtest.Request {
	var out []llmtest.Request
	for _, r := range e.LLM.Requests() {
		if r.LastUser() == input {
			out = append(out, r)
		}
	}
	return out
}

// TestMCP_LoopFaults: the loop's answers to misbehaving tools and models. Each case scripts
// the model and checks the stream, the answer and what the model was sent.
func TestMCP_LoopFaults(t *testing.T) {
	t.Parallel()
	type check func(t *testing.T, k *faultKit, reqs []llmtest.Request, evs []stream.Event, done *stream.Answer)
	cases := []struct {
		name     string
		cfg      func(*Config) // set: the case gets a gateway of its own
		endpoint map[string]any
		replies  []llmtest.Reply
		check    check
	}{
		{
			name: "tool hangs past the tool timeout",
			cfg:  func(c *Config) { c.ToolTimeout = 300 * time.Millisecond },
			replies: []llmtest.Reply{
				{ToolCalls: []llmtest.ToolCall{{ID: "h", Name: "kit__hang"}}},
				{Text: "Gave up on it."},
			},
			check: func(t *testing.T, k *faultKit, reqs []llmtest.Request, evs []stream.Event, done *stream.Answer) {
				res := firstOf(t, evs, stream.TypeToolResult).ToolResult
				if res.Success || !strings.Contains(res.Result, "timed out after 300ms") || done.Output != "Gave up on it." {
					t.Fatalf("result %+v done %+v", res, done)
				}
				if msg := toolMessage(t, reqs[1], "h"); !strings.Contains(msg, "timed out") {
					t.Fatalf("the model got %q", msg)
				}
				select {
				case err := <-k.hung:
					if err == nil {
						t.Fatal("hang tool saw no cancellation")
					}
				case <-time.After(10 * time.Second):
					t.Fatal("the MCP server's tool was never cancelled")
				}
			},
		},
		{
			name:    "1 MiB result",
			replies: []llmtest.Reply{{ToolCalls: []llmtest.ToolCall{{ID: "b", Name: "kit__big"}}}, {Text: "Big."}},
			check: func(t *testing.T, k *faultKit, reqs []llmtest.Request, evs []stream.Event, done *stream.Answer) {
				res := firstOf(t, evs, stream.TypeToolResult).ToolResult
				if !res.Success || len(res.Result) != stream.ResultLimit+len("…[truncated]") || !strings.HasSuffix(res.Result, "…[truncated]") {
					t.Fatalf("event result: success %v, %d bytes", res.Success, len(res.Result))
				}
				msg := toolMessage(t, reqs[1], "b")
				if len(msg) > agent.DefaultToolResultLimit+100 || !strings.HasPrefix(msg, "abcdefgh") ||
					!strings.Contains(msg, "[truncated: ") {
					t.Fatalf("the model got %d bytes (limit %d)", len(msg), agent.DefaultToolResultLimit)
				}
				if got := done.ToolCalls[0].Result; len(got) > agent.DefaultToolResultLimit+100 {
					t.Fatalf("done result %d bytes", len(got))
				}
			},
		},
		{
			name: "unknown tool",
			replies: []llmtest.Reply{
				{ToolCalls: []llmtest.ToolCall{{ID: "u", Name: "ghost__tool", Arguments: `{}`}}},
				{Text: "No such tool."},
			},
			check: func(t *testing.T, k *faultKit, reqs []llmtest.Request, evs []stream.Event, done *stream.Answer) {
				res := firstOf(t, evs, stream.TypeToolResult).ToolResult
				if res.Success || !strings.Contains(res.Result, `unknown tool "ghost__tool"`) || done.Output != "No such tool." {
					t.Fatalf("result %+v done %+v", res, done)
				}
				if msg := toolMessage(t, reqs[1], "u"); !strings.HasPrefix(msg, "Error: ") {
					t.Fatalf("the model got %q", msg)
				}
			},
		},
		{
			name: "invalid JSON arguments",
			replies: []llmtest.Reply{
				{ToolCalls: []llmtest.ToolCall{{ID: "j", Name: "kit__echo", Arguments: `{"text": "unterminated`}}},
				{Text: "Bad args."},
			},
			check: func(t *testing.T, k *faultKit, reqs []llmtest.Request, evs []stream.Event, done *stream.Answer) {
				call := firstOf(t, evs, stream.TypeToolCall).ToolCall
				res := firstOf(t, evs, stream.TypeToolResult).ToolResult
				if res.Success || !strings.Contains(res.Result, "not valid JSON") || done.Output != "Bad args." {
					t.Fatalf("result %+v done %+v", res, done)
				}
				// The event and the log keep what the model sent, as a JSON string.
				var sent string
				if err := json.Unmarshal(call.Arguments, &sent); err != nil || sent != `{"text": "unterminated` {
					t.Fatalf("tool_call arguments %s", call.Arguments)
				}
				if string(done.ToolCalls[0].Arguments) != string(call.Arguments) {
					t.Fatalf("done arguments %s", done.ToolCalls[0].Arguments)
				}
				if k.echoes.Load() != 0 {
					t.Fatal("the tool ran with invalid arguments")
				}
				if msg := toolMessage(t, reqs[1], "j"); !strings.Contains(msg, "not valid JSON") {
					t.Fatalf("the model got %q", msg)
				}
			},
		},
		{
			name: "arguments not an object",
			replies: []llmtest.Reply{
				{ToolCalls: []llmtest.ToolCall{{ID: "a", Name: "kit__echo", Arguments: `["x"]`}}},
				{Text: "Array args."},
			},
			check: func(t *testing.T, k *faultKit, reqs []llmtest.Request, evs []stream.Event, done *stream.Answer) {
				res := firstOf(t, evs, stream.TypeToolResult).ToolResult
				if res.Success || !strings.Contains(res.Result, "JSON object") || done.Output != "Array args." || k.echoes.Load() != 0 {
					t.Fatalf("result %+v done %+v", res, done)
				}
			},
		},
		{
			name:     "max_tool_calls exhausted",
			endpoint: map[string]any{"max_tool_calls": 2},
			replies: []llmtest.Reply{
				{ToolCalls: []llmtest.ToolCall{{ID: "m1", Name: "kit__echo", Arguments: `{"text":"one"}`}}},
				{ToolCalls: []llmtest.ToolCall{
					{ID: "m2", Name: "kit__echo", Arguments: `{"text":"two"}`},
					{ID: "m3", Name: "kit__echo", Arguments: `{"text":"three"}`},
				}},
				{Text: "Out of tool calls."},
			},
			check: func(t *testing.T, k *faultKit, reqs []llmtest.Request, evs []stream.Event, done *stream.Answer) {
				if len(reqs) != 3 || len(reqs[0].Tools) == 0 || len(reqs[1].Tools) == 0 || len(reqs[2].Tools) != 0 {
					t.Fatalf("%d model calls, tools offered %d/%d/%d", len(reqs), len(reqs[0].Tools), len(reqs[1].Tools), len(reqs[len(reqs)-1].Tools))
				}
				if len(done.ToolCalls) != 2 || done.Usage.Iterations != 3 || done.Output != "Out of tool calls." {
					t.Fatalf("done %+v", done)
				}
				if k.echoes.Load() != 2 {
					t.Fatalf("%d tool executions, want 2", k.echoes.Load())
				}
				if msg := toolMessage(t, reqs[2], "m3"); !strings.Contains(msg, "max_tool_calls") {
					t.Fatalf("the call over the budget got %q", msg)
				}
			},
		},
		{
			name: "parallel calls in one turn",
			replies: []llmtest.Reply{
				{ToolCalls: []llmtest.ToolCall{{ID: "p1", Name: "kit__barrier"}, {ID: "p2", Name: "kit__barrier"}}},
				{Text: "Both met."},
			},
			check: func(t *testing.T, k *faultKit, reqs []llmtest.Request, evs []stream.Event, done *stream.Answer) {
				if len(done.ToolCalls) != 2 {
					t.Fatalf("done %+v", done)
				}
				for _, tc := range done.ToolCalls {
					if !tc.Success || tc.Result != "met" {
						t.Fatalf("tool calls did not run at the same time: %+v", done.ToolCalls)
					}
				}
				// Both calls announced before either result.
				types := eventTypes(evs)
				if i := slices.Index(types, "tool_call"); types[i+1] != "tool_call" {
					t.Fatalf("events %v", types)
				}
			},
		},
		{
			name: "model text in the tool turn",
			replies: []llmtest.Reply{
				{Text: "Let me check.", ToolCalls: []llmtest.ToolCall{{ID: "t", Name: "kit__echo", Arguments: `{"text":"checked"}`}}},
				{Text: " All good."},
			},
			check: func(t *testing.T, k *faultKit, reqs []llmtest.Request, evs []stream.Event, done *stream.Answer) {
				want := []string{"thinking:starting", "thinking:loading_tools", "thinking:tools_loaded", "thinking:llm_call", "token", "usage",
					"tool_call", "tool_result", "thinking:llm_call", "token", "usage", "done"}
				if got := compact(eventTypes(evs)); !slices.Equal(got, want) {
					t.Fatalf("events %v", got)
				}
				res := firstOf(t, evs, stream.TypeToolResult).ToolResult
				if !res.Success || res.Result != "checked" || res.Iteration != 1 || done.Output != "Let me check. All good." {
					t.Fatalf("result %+v done %+v", res, done)
				}
				var asst *llmtest.Message
				for i, m := range reqs[1].Messages {
					if m.Role == "assistant" {
						asst = &reqs[1].Messages[i]
					}
				}
				if asst == nil || asst.Content != "Let me check." || len(asst.ToolCalls) != 1 || asst.ToolCalls[0].ID != "t" {
					t.Fatalf("assistant turn sent back %+v", asst)
				}
			},
		},
	}
	shared := newEnv(t, "sqlite")
	script := map[string][]llmtest.Reply{}
	for _, tt := range cases {
		script[tt.name] = tt.replies
	}
	scriptByInput(shared, script)
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := shared
			if tt.cfg != nil {
				e = newEnv(t, "sqlite", tt.cfg)
				scriptByInput(e, script)
			}
			k := newFaultKit(t)
			ep, _ := e.toolEndpoint(map[string]map[string]any{"kit": httpServer("streamable_http", k.peer.URL)}, tt.endpoint)
			body, _ := json.Marshal(map[string]string{"input": tt.name})
			msgs, evs := readStream(t, e, ep, string(body))
			checkStream(t, msgs, evs)
			done := lastDone(t, evs)
			tt.check(t, k, requestsFor(e, tt.name), evs, done)
			rec := e.waitRun(done.RunID)
			if rec.Status != "success" || rec.Iterations != done.Usage.Iterations {
				t.Fatalf("record %+v", rec)
			}
		})
	}
}

// TestMCP_DemoTool: the demo model's `/tool <name> <json>` line calls a real MCP tool and the
// answer quotes its result — the tool loop with no key.
func TestMCP_DemoTool(t *testing.T) {
	t.Parallel()
	peer := kitPeer(t)
	e := newEnv(t, "sqlite")
	ep, _ := e.toolEndpoint(map[string]map[string]any{"kit": httpServer("streamable_http", peer.URL)},
		map[string]any{"llm_provider": "demo", "llm_model": "demo"})
	r := e.run(ep, map[string]any{"input": "Say it back.\n/tool echo {\"text\":\"from the demo\"}"})
	var ans stream.Answer
	r.json(t, &ans)
	if r.Status != 200 || len(ans.ToolCalls) != 1 || ans.ToolCalls[0].Name != "kit__echo" || !ans.ToolCalls[0].Success ||
		ans.Usage.Iterations != 2 || !strings.Contains(ans.Output, "Tool kit__echo returned: from the demo") {
		t.Fatalf("demo run: %d %s", r.Status, r.Body)
	}
	if len(e.LLM.Requests()) != 0 {
		t.Fatal("the demo model reached the upstream")
	}
}

// TestMCP_SessionReuse: one MCP session serves many runs (initialize once, tools/list cached).
func TestMCP_SessionReuse(t *testing.T) {
	t.Parallel()
	peer := kitPeer(t)
	e := newEnv(t, "sqlite")
	ep, _ := e.toolEndpoint(map[string]map[string]any{"kit": httpServer("streamable_http", peer.URL)}, nil)
	for i := range 3 {
		e.LLM.Script(llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "c", Name: "kit__echo", Arguments: `{"text":"x"}`}}}, llmtest.Reply{Text: "ok"})
		r := e.run(ep, map[string]any{"input": "go"})
		var ans stream.Answer
		r.json(t, &ans)
		if r.Status != 200 || len(ans.ToolCalls) != 1 || !ans.ToolCalls[0].Success {
			t.Fatalf("run %d: %d %s", i, r.Status, r.Body)
		}
	}
	if n := peer.Inits.Load(); n != 1 {
		t.Fatalf("initialize ran %d times over 3 runs, want 1", n)
	}
	if n := peer.Lists.Load(); n != 1 {
		t.Fatalf("tools/list ran %d times over 3 runs, want 1 (cached)", n)
	}
}

// TestMCP_DisconnectCancelsTools: the client of a synchronous stream hangs up while a tool
// runs. The tool call's ctx is cancelled (the MCP server's handler observes it), the run is
// logged cancelled, and no goroutine of the run is left behind — neither while the gateway
// keeps running nor after it shut down.
//
// Not parallel: it inspects every goroutine of the process, so no other test may run meanwhile
// (parallel tests only start once every sequential test has finished).
func TestMCP_DisconnectCancelsTools(t *testing.T) {
	hung := make(chan error, 1)
	peer := toolstest.StartStreamable(t, func(s *mcpserver.MCPServer) { hangTool(s, hung) }, nil)
	// Process-wide goroutines that libraries start once (fasthttp's date ticker …) are
	// started by a first gateway before the baseline is taken.
	t.Run("warm up", func(t *testing.T) {
		e := newEnv(t, "sqlite")
		if r := e.run(e.endpoint(nil), `{"input":"warm up"}`); r.Status != 200 {
			t.Fatalf("warm-up run: %d %s", r.Status, r.Body)
		}
	})
	baseline := goleak.IgnoreCurrent()

	t.Run("disconnect", func(t *testing.T) {
		e := newEnv(t, "sqlite")
		ep, _ := e.toolEndpoint(map[string]map[string]any{"kit": httpServer("streamable_http", peer.URL)}, nil)
		e.LLM.Script(llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "h", Name: "kit__hang"}}})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		res := e.openStream(ctx, ep, `{"input":"hang"}`)
		runID := res.Header.Get("X-Run-Id")
		br := bufio.NewReader(res.Body)
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("stream ended before the tool call: %v", err)
			}
			if line == "event: tool_call\n" {
				break
			}
		}
		cancel()
		res.Body.Close()

		select {
		case err := <-hung:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("the tool's ctx ended with %v, want cancelled", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the MCP tool never saw its call cancelled")
		}
		rec := e.waitRun(runID)
		if rec.Status != "cancelled" {
			t.Fatalf("record %+v", rec)
		}
		var logged []stream.ToolCallRecord
		if err := json.Unmarshal(rec.ToolCalls, &logged); err != nil || len(logged) != 1 || logged[0].Success {
			t.Fatalf("logged tool calls %s", rec.ToolCalls)
		}
		// The gateway is still up: none of the run's goroutines (loop, tool workers, MCP
		// calls) may remain.
		toolstest.WaitFor(t, "the run's goroutines to end", func() bool {
			return !goroutinesIn("agent.(*run)", "agent.RunTo(", "tools.(*Toolbox).Call", "server.(*runner).execute")
		})
	})
	// fasthttp's worker-pool cleaner notices a stopped server only after its 10 s sleep.
	goleak.VerifyNone(t, baseline, goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"))
}

// goroutinesIn reports whether a goroutine of the process has a frame containing one of fns.
func goroutinesIn(fns ...string) bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for _, fn := range fns {
		if bytes.Contains(buf, []byte(fn)) {
			return true
		}
	}
	return false
}

// TestMCP_OperatorServerInTwoWorkspaces: one operator stdio server attached by two workspaces
// under different slugs. Runs of one workspace must not end the other's MCP session (its
// child process stays the same across runs).
func TestMCP_OperatorServerInTwoWorkspaces(t *testing.T) {
	t.Parallel()
	stdio := toolstest.StdioServer(t)
	e := newEnv(t, "sqlite", func(c *Config) { c.OperatorServers = []tools.ServerConfig{stdioOperator("local", stdio)} })
	a, _ := e.toolEndpoint(map[string]map[string]any{"local": {"operator_server": "local"}}, map[string]any{"name": "a"})
	b, _ := e.toolEndpoint(map[string]map[string]any{"files": {"operator_server": "local"}}, map[string]any{"name": "b"})
	pid := e.stdioPid
	first := pid(a, "local__pid")
	pid(b, "files__pid")
	if again := pid(a, "local__pid"); again != first {
		t.Fatalf("workspace a's stdio child changed from %s to %s after a run of workspace b", first, again)
	}
}

// TestMCP_RunTimeoutDuringTool: the run's timeout_ms ends a run whose tool is still running.
// The tool call is cancelled on the MCP server and the stream ends with TIMEOUT.
func TestMCP_RunTimeoutDuringTool(t *testing.T) {
	t.Parallel()
	hung := make(chan error, 1)
	peer := toolstest.StartStreamable(t, func(s *mcpserver.MCPServer) { hangTool(s, hung) }, nil)
	e := newEnv(t, "sqlite")
	ep, _ := e.toolEndpoint(map[string]map[string]any{"kit": httpServer("streamable_http", peer.URL)}, map[string]any{"timeout_ms": 1000})
	e.LLM.Script(llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "h", Name: "kit__hang"}}})
	msgs, evs := readStream(t, e, ep, `{"input":"hang"}`)
	checkStream(t, msgs, evs)
	last := evs[len(evs)-1]
	if last.Type != stream.TypeError || last.Error.Code != stream.CodeTimeout {
		t.Fatalf("last event %+v", last)
	}
	if res := firstOf(t, evs, stream.TypeToolResult).ToolResult; res.Success {
		t.Fatalf("tool result %+v", res)
	}
	select {
	case err := <-hung:
		if err == nil {
			t.Fatal("no cancellation seen by the tool")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the MCP tool was never cancelled")
	}
	if rec := e.waitRun(last.Error.RunID); rec.Status != "timeout" || rec.Iterations != 1 {
		t.Fatalf("record %+v", rec)
	}
}
