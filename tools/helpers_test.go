package tools

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"testing"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"go.uber.org/goleak"

	"github.com/agentgate/agentgate/tools/toolstest"
)

func TestMain(m *testing.M) {
	// A gateway secret that stdio children must not inherit (TestStdioServer).
	_ = os.Setenv("TOOLS_TEST_SECRET", "gateway-secret")
	code := m.Run()
	toolstest.RemoveBuilds()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// testServer is a real mcp-go server on 127.0.0.1:0 (toolstest.Server) with the config
// that reaches it.
type testServer struct {
	*toolstest.Server
	cfg ServerConfig
}

// startStreamable serves an MCP server over Streamable HTTP at /mcp.
// wrap, if set, wraps the handler (e.g. to check headers).
func startStreamable(tb testing.TB, slug string, setup func(*server.MCPServer), wrap func(http.Handler) http.Handler, opts ...server.ServerOption) *testServer {
	tb.Helper()
	s := toolstest.StartStreamable(tb, setup, wrap, opts...)
	return &testServer{s, ServerConfig{ID: "id-" + slug, Slug: slug, Transport: TransportStreamableHTTP, URL: s.URL, Version: "1"}}
}

// startSSE serves an MCP server over the legacy HTTP+SSE transport at /sse.
func startSSE(tb testing.TB, slug string, setup func(*server.MCPServer)) *testServer {
	tb.Helper()
	s := toolstest.StartSSE(tb, setup)
	return &testServer{s, ServerConfig{ID: "id-" + slug, Slug: slug, Transport: TransportSSE, URL: s.URL, Version: "1"}}
}

// startOver serves an MCP server over transport (TransportStreamableHTTP or TransportSSE).
func startOver(tb testing.TB, transport, slug string, setup func(*server.MCPServer)) *testServer {
	tb.Helper()
	if transport == TransportSSE {
		return startSSE(tb, slug, setup)
	}
	return startStreamable(tb, slug, setup, nil)
}

// newManager returns a Manager allowed to reach 127.0.0.1, closed at cleanup
// (before the servers, which were started earlier).
func newManager(tb testing.TB, opts Options) *Manager {
	tb.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
	}
	m := NewManager(opts)
	tb.Cleanup(func() {
		if err := m.Close(); err != nil {
			tb.Errorf("Manager.Close: %v", err)
		}
	})
	return m
}

// textTool registers a tool that answers with fixed text.
func textTool(s *server.MCPServer, name, text string) {
	s.AddTool(mcp.NewTool(name, mcp.WithDescription("says "+text)),
		func(context.Context, mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText(text), nil
		})
}

func names(ts []Tool) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}
