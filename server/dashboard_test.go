package server

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/agentgate/agentgate/agent"
	"github.com/agentgate/agentgate/agent/llmtest"
	"github.com/agentgate/agentgate/db/dbtest"
	"github.com/agentgate/agentgate/tools/toolstest"
)

// The dashboard's browser test (e2e/dashboard.mjs) and the unit tests of its modules
// (e2e/lib/*.test.mjs) are Node programs; these Go tests run them against a real gateway so
// that `make test` covers the dashboard.

// repoRoot is the module root: the server package's tests run in server/.
const repoRoot = ".."

// needNode skips the test when Node, the shared npm packages or (with browser) Chromium are
// missing, unless CI=true, where a missing piece is a failure. It returns the node binary.
func needNode(tb testing.TB, browser bool) string {
	tb.Helper()
	if testing.Short() {
		tb.Skip("-short: no Node clients or browser")
	}
	var missing []string
	node, err := exec.LookPath("node")
	if err != nil {
		missing = append(missing, "node")
	}
	if _, err := os.Stat(filepath.Join(repoRoot, "e2e", "node_modules", "playwright-core")); err != nil {
		missing = append(missing, "e2e/node_modules (run make deps)")
	}
	if browser {
		if _, err := os.Stat(chromiumPath()); err != nil {
			missing = append(missing, chromiumPath())
		}
	}
	if len(missing) > 0 {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("missing with CI=true: %s", strings.Join(missing, ", "))
		}
		tb.Skipf("missing: %s", strings.Join(missing, ", "))
	}
	return node
}

func chromiumPath() string {
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// runNode runs node with args in the repository root under a deadline and returns its
// combined output; a non-zero exit or the deadline fails the test with that output.
func runNode(tb testing.TB, node string, deadline time.Duration, env []string, args ...string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), deadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second // a browser child holding the pipes must not hang the test
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		tb.Fatalf("node %s: no result within %v\n%s", strings.Join(args, " "), deadline, out)
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		tb.Fatalf("node %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if err != nil {
		tb.Fatalf("node %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

// TestDashboardModules runs the Node unit tests of the dashboard's modules (SSE parser,
// streamPost, formatting, every module parses).
func TestDashboardModules(t *testing.T) {
	t.Parallel()
	node := needNode(t, false)
	out := runNode(t, node, 2*time.Minute, nil, "--test", "e2e/lib/")
	if !strings.Contains(out, "# fail 0") {
		t.Fatalf("node --test reported failures:\n%s", out)
	}
	t.Log(out)
}

// dashboardMCP is the MCP server the browser adds to its workspace: one tool, "lookup",
// served over Streamable HTTP on a loopback port.
type dashboardMCP struct {
	url   string
	calls atomic.Int32 // tools/call of lookup
	hdr   atomic.Int32 // requests that carried the header the dashboard configures
}

func startDashboardMCP(tb testing.TB) *dashboardMCP {
	tb.Helper()
	m := &dashboardMCP{}
	peer := toolstest.StartStreamable(tb, func(s *mcpserver.MCPServer) {
		s.AddTool(mcp.NewTool("lookup",
			mcp.WithDescription("Looks a term up in the reference notes."),
			mcp.WithString("query", mcp.Required(), mcp.Description("what to look up"))),
			func(_ context.Context, req mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				m.calls.Add(1)
				return mcp.NewToolResultText("agentgate: a gateway for agent endpoints (looked up: " + req.GetString("query", "") + ")"), nil
			})
	}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("X-E2E") == "1" {
				m.hdr.Add(1)
			}
			h.ServeHTTP(w, r)
		})
	})
	m.url = peer.URL
	return m
}

// dashboardAnswer is the scripted model's final answer in the browser test.
const dashboardAnswer = "The reference says agentgate is a gateway for agent endpoints, so here is the answer."

// TestDashboardInBrowser drives the dashboard in Chromium against a real gateway: sign up,
// workspace with a real MCP server, endpoint on the scripted model, a live test-console run
// that calls the MCP tool, runs table, charts, wallet, phone width, sign out.
func TestDashboardInBrowser(t *testing.T) {
	t.Parallel()
	node := needNode(t, true)
	e := newEnv(t, dbtest.SQLite, func(c *Config) {
		c.AllowPrivateEgress = true // the MCP server and the model are on loopback
		c.Prices = agent.DefaultPrices()
		c.Prices["scripted"] = agent.Price{InputPerMTok: 3000, OutputPerMTok: 9000} // so cost charts show something
	})
	mcpSrv := startDashboardMCP(t)

	// The console's run: the first model call asks for the tool, the second answers, token
	// by token at a visible pace. Other callers get the same script.
	e.LLM.Handle(func(req llmtest.Request) llmtest.Reply {
		for _, m := range req.Messages {
			if m.Role == "tool" {
				return llmtest.Reply{Text: dashboardAnswer, Pace: 15 * time.Millisecond}
			}
		}
		return llmtest.Reply{Pace: 15 * time.Millisecond,
			ToolCalls: []llmtest.ToolCall{{Name: "ref__lookup", Arguments: `{"query":"agentgate"}`}}}
	})

	shots, err := filepath.Abs(filepath.Join(repoRoot, "e2e", "screenshots"))
	if err != nil {
		t.Fatal(err)
	}
	// The folder (git-ignored) holds the screenshots of the latest run only.
	if err := os.RemoveAll(shots); err != nil {
		t.Fatal(err)
	}
	out := runNode(t, node, 3*time.Minute, []string{
		"AGENTGATE_URL=" + e.URL,
		"MCP_URL=" + mcpSrv.url,
		"LLM_URL=" + e.LLM.URL(),
		"LLM_MODEL=scripted",
		"RUN_INPUT=Look agentgate up with a tool, then answer.",
		"SCREENSHOT_DIR=" + shots,
		"CHROMIUM_PATH=" + chromiumPath(),
	}, "e2e/dashboard.mjs")
	t.Log(out)
	if !strings.Contains(out, " 0 failed") {
		t.Fatalf("the browser script did not report success:\n%s", out)
	}

	// What the browser saw must have happened on the real peers.
	if n := mcpSrv.calls.Load(); n < 1 {
		t.Errorf("the MCP tool was called %d times, want at least 1", n)
	}
	if n := mcpSrv.hdr.Load(); n < 1 {
		t.Errorf("no MCP request carried the header set in the dashboard")
	}
	var sawTool bool
	for _, r := range e.LLM.Requests() {
		if r.Model != "scripted" {
			t.Errorf("model request for %q, want scripted", r.Model)
		}
		for _, m := range r.Messages {
			sawTool = sawTool || (m.Role == "tool" && strings.Contains(m.Content, "looked up: agentgate"))
		}
	}
	if !sawTool {
		t.Errorf("the model never received the tool result")
	}
}
