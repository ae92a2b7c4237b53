// Package toolstest holds the MCP peers that tests of the tools package and of its users (the
// server) run against: real mcp-go servers on 127.0.0.1:0 over Streamable HTTP or HTTP+SSE,
// the reference server-everything, the test stdio server. It is for tests only; it imports
// libraries only (not even tools, so that tools' own tests can use it) and must not import any
// other package of the module.
package toolstest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
)

// Server is a real mcp-go server on 127.0.0.1:0 with counters of the requests it handled.
type Server struct {
	MCP   *server.MCPServer // register tools on it, also after the start (list_changed)
	TS    *httptest.Server  // the HTTP server; closed when the test ends
	URL   string            // the MCP endpoint: …/mcp (Streamable HTTP) or …/sse (HTTP+SSE)
	Inits atomic.Int32      // initialize requests handled
	Lists atomic.Int32      // tools/list requests handled
}

// newMCP returns an mcp-go server whose initialize and tools/list requests are counted into s;
// setup (optional) registers its tools.
func (s *Server) newMCP(setup func(*server.MCPServer), opts []server.ServerOption) {
	hooks := &server.Hooks{}
	hooks.AddAfterInitialize(func(context.Context, any, *mcp.InitializeRequest, *mcp.InitializeResult) { s.Inits.Add(1) })
	hooks.AddAfterListTools(func(context.Context, any, *mcp.ListToolsRequest, *mcp.ListToolsResult) { s.Lists.Add(1) })
	opts = append([]server.ServerOption{server.WithHooks(hooks), server.WithToolCapabilities(true)}, opts...)
	s.MCP = server.NewMCPServer("test", "1.0.0", opts...)
	if setup != nil {
		setup(s.MCP)
	}
}

// StartStreamable serves an MCP server over Streamable HTTP at /mcp until the test ends;
// setup (optional) registers its tools, wrap (optional) wraps the handler (to check or count
// headers), opts are added to the server's options.
func StartStreamable(tb testing.TB, setup func(*server.MCPServer), wrap func(http.Handler) http.Handler, opts ...server.ServerOption) *Server {
	tb.Helper()
	s := &Server{}
	s.newMCP(setup, opts)
	var h http.Handler = server.NewStreamableHTTPServer(s.MCP)
	if wrap != nil {
		h = wrap(h)
	}
	mux := http.NewServeMux()
	mux.Handle("/mcp", h)
	s.TS = httptest.NewServer(mux)
	tb.Cleanup(func() { s.TS.CloseClientConnections(); s.TS.Close() })
	s.URL = s.TS.URL + "/mcp"
	return s
}

// StartSSE serves an MCP server over the legacy HTTP+SSE transport at /sse until the test
// ends; setup (optional) registers its tools.
func StartSSE(tb testing.TB, setup func(*server.MCPServer), opts ...server.ServerOption) *Server {
	tb.Helper()
	s := &Server{}
	s.newMCP(setup, opts)
	s.TS = httptest.NewUnstartedServer(nil)
	base := "http://" + s.TS.Listener.Addr().String()
	s.TS.Config.Handler = server.NewSSEServer(s.MCP, server.WithBaseURL(base))
	s.TS.Start()
	tb.Cleanup(func() { s.TS.CloseClientConnections(); s.TS.Close() })
	s.URL = base + "/sse"
	return s
}

// EchoTool registers "echo" (described "Echoes its text."): its required "text" argument back.
func EchoTool(s *server.MCPServer) {
	s.AddTool(mcp.NewTool("echo", mcp.WithDescription("Echoes its text."), mcp.WithString("text", mcp.Required())),
		func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText(req.GetString("text", "")), nil
		})
}

// WaitFor polls cond until it holds or 10 s pass (then the test fails): it waits for an effect
// outside the test's control (a process listening, a server notification, goroutines ending).
func WaitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-tb.Context().Done():
			tb.Fatalf("test ended waiting for %s", what)
		}
	}
}
