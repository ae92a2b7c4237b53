//go:build unix

package server

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/agentgate/agentgate/stream"
	"github.com/agentgate/agentgate/tools"
)

// mcpPeer is a real mcp-go server on 127.0.0.1:0 (Streamable HTTP at /mcp, or HTTP+SSE at
// /sse) with counters of the requests it handled.
type mcpPeer struct {
	MCP   *mcpserver.MCPServer
	TS    *httptest.Server
	URL   string // what a workspace server's "url" should be
	Inits atomic.Int32
	Lists atomic.Int32
}

// newPeerMCP returns an mcp-go server whose initialize and tools/list are counted into p.
func newPeerMCP(p *mcpPeer) *mcpserver.MCPServer {
	hooks := &mcpserver.Hooks{}
	hooks.AddAfterInitialize(func(context.Context, any, *mcp.InitializeRequest, *mcp.InitializeResult) { p.Inits.Add(1) })
	hooks.AddAfterListTools(func(context.Context, any, *mcp.ListToolsRequest, *mcp.ListToolsResult) { p.Lists.Add(1) })
	return mcpserver.NewMCPServer("peer", "1.0.0", mcpserver.WithHooks(hooks), mcpserver.WithToolCapabilities(true))
}

// startStreamablePeer serves an MCP server over Streamable HTTP; setup registers its tools,
// wrap (optional) wraps the handler. It is closed when the test ends.
func startStreamablePeer(tb testing.TB, setup func(*mcpserver.MCPServer), wrap func(http.Handler) http.Handler) *mcpPeer {
	tb.Helper()
	p := &mcpPeer{}
	p.MCP = newPeerMCP(p)
	if setup != nil {
		setup(p.MCP)
	}
	var h http.Handler = mcpserver.NewStreamableHTTPServer(p.MCP)
	if wrap != nil {
		h = wrap(h)
	}
	mux := http.NewServeMux()
	mux.Handle("/mcp", h)
	p.TS = httptest.NewServer(mux)
	tb.Cleanup(func() { p.TS.CloseClientConnections(); p.TS.Close() })
	p.URL = p.TS.URL + "/mcp"
	return p
}

// startSSEPeer serves an MCP server over the legacy HTTP+SSE transport.
func startSSEPeer(tb testing.TB, setup func(*mcpserver.MCPServer)) *mcpPeer {
	tb.Helper()
	p := &mcpPeer{}
	p.MCP = newPeerMCP(p)
	if setup != nil {
		setup(p.MCP)
	}
	p.TS = httptest.NewUnstartedServer(nil)
	base := "http://" + p.TS.Listener.Addr().String()
	p.TS.Config.Handler = mcpserver.NewSSEServer(p.MCP, mcpserver.WithBaseURL(base))
	p.TS.Start()
	tb.Cleanup(func() { p.TS.CloseClientConnections(); p.TS.Close() })
	p.URL = base + "/sse"
	return p
}

// echoTool registers "echo": its "text" argument back.
func echoTool(s *mcpserver.MCPServer) {
	s.AddTool(mcp.NewTool("echo", mcp.WithDescription("Echoes its text."), mcp.WithString("text", mcp.Required())),
		func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return mcp.NewToolResultText(req.GetString("text", "")), nil
		})
}

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

// createWorkspace makes a workspace for the default user and returns its id.
func (e *testEnv) createWorkspace(name string) string {
	e.tb.Helper()
	r := e.as(e.Token, "POST", "/api/workspaces", map[string]any{"name": name})
	if r.Status != 201 {
		e.tb.Fatalf("create workspace: %d %s", r.Status, r.Body)
	}
	var out struct {
		Workspace struct {
			ID string `json:"id"`
		} `json:"workspace"`
	}
	r.json(e.tb, &out)
	return out.Workspace.ID
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
	ws := e.createWorkspace("tools")
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

// buildStdioServer builds tools/testdata/stdioserver into dir and returns its path.
func buildStdioServer(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "stdioserver")
	out, err := exec.Command("go", "build", "-o", path, "../tools/testdata/stdioserver").CombinedOutput()
	if err != nil {
		tb.Fatalf("go build stdioserver: %v\n%s", err, out)
	}
	return path
}

// stdioOperator is an operator-declared stdio server running the test stdio server.
func stdioOperator(slug, command string) tools.ServerConfig {
	return tools.ServerConfig{ID: "op:" + slug, Slug: slug, Transport: tools.TransportStdio, Command: command}
}

// startEverything runs the reference MCP server (@modelcontextprotocol/server-everything,
// pinned in e2e/package.json) over Streamable HTTP bound to 127.0.0.1 (e2e/bind-localhost.cjs)
// and returns its /mcp URL. It skips without e2e/node_modules, unless CI=true.
func startEverything(tb testing.TB) string {
	tb.Helper()
	e2e, err := filepath.Abs("../e2e")
	if err != nil {
		tb.Fatal(err)
	}
	entry := filepath.Join(e2e, "node_modules", "@modelcontextprotocol", "server-everything", "dist", "index.js")
	node, nodeErr := exec.LookPath("node")
	if _, err := os.Stat(entry); err != nil || nodeErr != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("server-everything not installed (run npm ci in e2e/): %v %v", err, nodeErr)
		}
		tb.Skipf("server-everything not installed (run npm ci in e2e/): %v %v", err, nodeErr)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()

	var out lockedBuffer
	cmd := exec.Command(node, "--require", filepath.Join(e2e, "bind-localhost.cjs"), entry, "streamableHttp")
	cmd.Dir = e2e
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "PORT=" + strconv.Itoa(port)}
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	tb.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-waited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-waited
		}
		if tb.Failed() {
			tb.Logf("server-everything output:\n%s", out.String())
		}
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	waitUntil(tb, "server-everything to listen on "+addr, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	})
	return "http://" + addr + "/mcp"
}

// waitUntil polls cond until it holds or 10 s pass: it waits for an effect outside the test's
// control (a process listening, goroutines ending).
func waitUntil(tb testing.TB, what string, cond func() bool) {
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

// lockedBuffer is a bytes.Buffer safe for a child's stdout and stderr at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *lockedBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *lockedBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
