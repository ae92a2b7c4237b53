package server

import (
	"context"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/agentgate/agentgate/agent/llmtest"
	"github.com/agentgate/agentgate/stream"
	"github.com/agentgate/agentgate/tools"
)

// failTool registers "fail": an MCP error result (isError) with a fixed message.
func failTool(s *mcpserver.MCPServer) {
	s.AddTool(mcp.NewTool("fail", mcp.WithDescription("Always fails.")),
		func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultError("disk quota exceeded"), nil
		})
}

// hangTool registers "hang": it blocks until its ctx ends, then reports that on observed
// (buffered; a full channel drops the report).
func hangTool(s *mcpserver.MCPServer, observed chan<- error) {
	s.AddTool(mcp.NewTool("hang", mcp.WithDescription("Never answers.")),
		func(ctx context.Context, _ mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			<-ctx.Done()
			select {
			case observed <- ctx.Err():
			default:
			}
			return nil, ctx.Err()
		})
}

// addServer attaches an MCP server to a workspace (body as POST /servers takes it) and returns
// its id.
func (e *testEnv) addServer(wsID string, body map[string]any) string {
	e.tb.Helper()
	r := e.as(e.Token, "POST", "/api/workspaces/"+wsID+"/servers", body)
	if r.Status != 201 {
		e.tb.Fatalf("add server %v: %d %s", body, r.Status, r.Body)
	}
	var out struct {
		Server struct {
			ID string `json:"id"`
		} `json:"server"`
	}
	r.json(e.tb, &out)
	return out.Server.ID
}

// toolEndpoint creates a workspace holding the given servers (slug → body) and an endpoint on
// it; fields override the endpoint body.
func (e *testEnv) toolEndpoint(servers map[string]map[string]any, fields map[string]any) (createdEndpoint, string) {
	e.tb.Helper()
	ws := e.workspace(e.Token, "tools")
	for slug, body := range servers {
		b := map[string]any{"name": slug, "slug": slug}
		for k, v := range body {
			b[k] = v
		}
		e.addServer(ws, b)
	}
	f := map[string]any{"name": "tooled", "workspace_id": ws}
	for k, v := range fields {
		f[k] = v
	}
	return e.endpoint(f), ws
}

// httpServer is the POST /servers body of an HTTP MCP server.
func httpServer(transport, url string) map[string]any {
	return map[string]any{"transport": transport, "url": url}
}

// eventTypes lists the types of evs, with the thinking status after a colon.
func eventTypes(evs []stream.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = string(ev.Type)
		if ev.Type == stream.TypeThinking {
			out[i] += ":" + ev.Thinking.Status
		}
	}
	return out
}

// compact drops repeated token events from a list made by eventTypes, so the shape of a
// stream can be compared whatever the model's chunking.
func compact(types []string) []string {
	var out []string
	for _, t := range types {
		if t == string(stream.TypeToken) && len(out) > 0 && out[len(out)-1] == t {
			continue
		}
		out = append(out, t)
	}
	return out
}

// firstOf returns the first event of type t (fails when there is none).
func firstOf(tb testing.TB, evs []stream.Event, t stream.Type) stream.Event {
	tb.Helper()
	for _, ev := range evs {
		if ev.Type == t {
			return ev
		}
	}
	tb.Fatalf("no %s event in %v", t, eventTypes(evs))
	return stream.Event{}
}

// lastDone returns the done event ending evs (fails otherwise).
func lastDone(tb testing.TB, evs []stream.Event) *stream.Answer {
	tb.Helper()
	last := evs[len(evs)-1]
	if last.Type != stream.TypeDone {
		tb.Fatalf("stream ended with %s %+v, want done; events %v", last.Type, last.Error, eventTypes(evs))
	}
	return last.Done
}

// stdioPid runs ep once, the model calling tool (the test stdio server's "pid"), and returns
// the tool's result: the process id of the stdio child that answered.
func (e *testEnv) stdioPid(ep createdEndpoint, tool string) string {
	e.tb.Helper()
	e.LLM.Script(llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "p", Name: tool}}}, llmtest.Reply{Text: "pid"})
	var ans stream.Answer
	r := e.run(ep, map[string]any{"input": "pid?"})
	r.json(e.tb, &ans)
	if r.Status != 200 || len(ans.ToolCalls) != 1 || !ans.ToolCalls[0].Success {
		e.tb.Fatalf("pid run: %d %s", r.Status, r.Body)
	}
	return ans.ToolCalls[0].Result
}

// stdioOperator is an operator-declared stdio server running the test stdio server.
func stdioOperator(slug, command string) tools.ServerConfig {
	return tools.ServerConfig{ID: "op:" + slug, Slug: slug, Transport: tools.TransportStdio, Command: command}
}
