package tools

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// A gateway secret that stdio children must not inherit (TestStdioServer).
	_ = os.Setenv("TOOLS_TEST_SECRET", "gateway-secret")
	code := m.Run()
	if stdioBuild.dir != "" {
		_ = os.RemoveAll(stdioBuild.dir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// stdioBuild caches the test stdio server binary for the whole test binary.
var stdioBuild struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// stdioServerPath builds testdata/stdioserver once and returns its path.
func stdioServerPath(tb testing.TB) string {
	tb.Helper()
	stdioBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "tools-stdioserver-")
		if err != nil {
			stdioBuild.err = err
			return
		}
		stdioBuild.dir = dir
		stdioBuild.path = filepath.Join(dir, "stdioserver")
		out, err := exec.Command("go", "build", "-o", stdioBuild.path, "./testdata/stdioserver").CombinedOutput()
		if err != nil {
			stdioBuild.err = fmt.Errorf("go build stdioserver: %v\n%s", err, out)
		}
	})
	if stdioBuild.err != nil {
		tb.Fatal(stdioBuild.err)
	}
	return stdioBuild.path
}

// testServer is a real mcp-go server on 127.0.0.1:0 with request counters.
type testServer struct {
	mcp   *server.MCPServer
	ts    *httptest.Server
	inits atomic.Int32
	lists atomic.Int32
	cfg   ServerConfig
}

// newMCP returns an mcp-go server whose initialize and tools/list requests
// are counted into ts.
func newMCP(ts *testServer, opts ...server.ServerOption) *server.MCPServer {
	hooks := &server.Hooks{}
	hooks.AddAfterInitialize(func(context.Context, any, *mcp.InitializeRequest, *mcp.InitializeResult) { ts.inits.Add(1) })
	hooks.AddAfterListTools(func(context.Context, any, *mcp.ListToolsRequest, *mcp.ListToolsResult) { ts.lists.Add(1) })
	opts = append([]server.ServerOption{server.WithHooks(hooks), server.WithToolCapabilities(true)}, opts...)
	return server.NewMCPServer("test", "1.0.0", opts...)
}

// startStreamable serves an MCP server over Streamable HTTP at /mcp.
// wrap, if set, wraps the handler (e.g. to check headers).
func startStreamable(tb testing.TB, slug string, setup func(*server.MCPServer), wrap func(http.Handler) http.Handler, opts ...server.ServerOption) *testServer {
	tb.Helper()
	s := &testServer{}
	s.mcp = newMCP(s, opts...)
	if setup != nil {
		setup(s.mcp)
	}
	var h http.Handler = server.NewStreamableHTTPServer(s.mcp)
	if wrap != nil {
		h = wrap(h)
	}
	mux := http.NewServeMux()
	mux.Handle("/mcp", h)
	s.ts = httptest.NewServer(mux)
	tb.Cleanup(func() { s.ts.CloseClientConnections(); s.ts.Close() })
	s.cfg = ServerConfig{ID: "id-" + slug, Slug: slug, Transport: TransportStreamableHTTP, URL: s.ts.URL + "/mcp", Version: "1"}
	return s
}

// startSSE serves an MCP server over the legacy HTTP+SSE transport at /sse.
func startSSE(tb testing.TB, slug string, setup func(*server.MCPServer)) *testServer {
	tb.Helper()
	s := &testServer{}
	s.mcp = newMCP(s)
	if setup != nil {
		setup(s.mcp)
	}
	s.ts = httptest.NewUnstartedServer(nil)
	base := "http://" + s.ts.Listener.Addr().String()
	s.ts.Config.Handler = server.NewSSEServer(s.mcp, server.WithBaseURL(base))
	s.ts.Start()
	tb.Cleanup(func() { s.ts.CloseClientConnections(); s.ts.Close() })
	s.cfg = ServerConfig{ID: "id-" + slug, Slug: slug, Transport: TransportSSE, URL: base + "/sse", Version: "1"}
	return s
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

// echoTool registers "echo", which returns its "text" argument.
func echoTool(s *server.MCPServer) {
	s.AddTool(mcp.NewTool("echo", mcp.WithString("text", mcp.Required())),
		func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText(req.GetString("text", "")), nil
		})
}

// waitFor polls cond until it holds or the deadline passes; it waits for an
// effect outside the test's control (a server notification, a process exit).
func waitFor(tb testing.TB, what string, cond func() bool) {
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

func names(ts []Tool) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}
