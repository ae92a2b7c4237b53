//go:build unix

package server

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/agentgate/agentgate/agent/llmtest"
	"github.com/agentgate/agentgate/db"
	"github.com/agentgate/agentgate/stream"
	"github.com/agentgate/agentgate/tools"
	"github.com/agentgate/agentgate/tools/toolstest"
)

// serverView is a server object as the API returns it, kept raw to spot leaked fields.
type serverView map[string]any

func (v serverView) str(k string) string { s, _ := v[k].(string); return s }

// TestMCP_ServerRoutes covers the workspace server routes: create over both HTTP transports
// with secret headers (encrypted at rest, sent to the MCP server, never returned), the
// enabled toggle, delete, and GET /tools merging every enabled server.
func TestMCP_ServerRoutes(t *testing.T) {
	t.Parallel()
	forKinds(t, func(t *testing.T, kind string) {
		const secret = "Bearer mcp-s3cret-token-value"
		var sawSecret atomic.Int32
		checkAuth := func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Authorization") != secret {
					http.Error(w, "unauthorized", http.StatusUnauthorized)
					return
				}
				sawSecret.Add(1)
				h.ServeHTTP(w, r)
			})
		}
		streamable := toolstest.StartStreamable(t, func(s *mcpserver.MCPServer) { toolstest.EchoTool(s); failTool(s) }, checkAuth)
		sse := toolstest.StartSSE(t, toolstest.EchoTool)
		e := newEnv(t, kind)
		ws := e.workspace(e.Token, "research")

		r := e.as(e.Token, "POST", "/api/workspaces/"+ws+"/servers", map[string]any{
			"name": "Docs Search", "transport": "streamable_http", "url": streamable.URL,
			"headers": map[string]string{"Authorization": secret},
		})
		if r.Status != 201 {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		if strings.Contains(string(r.Body), "s3cret") {
			t.Fatalf("create answer leaks the header value: %s", r.Body)
		}
		var created struct {
			Server serverView `json:"server"`
		}
		r.json(t, &created)
		srv := created.Server
		if !strings.HasPrefix(srv.str("id"), "mcs_") || len(srv.str("id")) != 22 || srv.str("slug") != "docs-search" ||
			srv.str("name") != "Docs Search" || srv.str("transport") != "streamable_http" || srv.str("url") != streamable.URL ||
			srv["enabled"] != true || srv.str("created_at") == "" {
			t.Fatalf("server %s", r.Body)
		}
		if _, ok := srv["headers"]; ok {
			t.Fatalf("server object has headers: %s", r.Body)
		}
		// At rest: the column holds ciphertext only.
		var raw string
		if err := e.Store.DB().QueryRowContext(context.Background(),
			e.Store.Rebind(`SELECT headers FROM mcp_servers WHERE id = ?`), srv.str("id")).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		if raw == "" || strings.Contains(raw, "s3cret") || strings.Contains(raw, "Bearer") {
			t.Fatalf("headers column is not encrypted: %q", raw)
		}

		sseID := e.addServer(ws, map[string]any{"name": "legacy", "transport": "sse", "url": sse.URL})

		// GET the workspace: both servers, no secret.
		r = e.as(e.Token, "GET", "/api/workspaces/"+ws, nil)
		if r.Status != 200 || strings.Contains(string(r.Body), "s3cret") {
			t.Fatalf("get workspace: %d %s", r.Status, r.Body)
		}
		var got struct {
			Workspace struct {
				ServerCount int          `json:"server_count"`
				Servers     []serverView `json:"servers"`
			} `json:"workspace"`
		}
		r.json(t, &got)
		if got.Workspace.ServerCount != 2 || len(got.Workspace.Servers) != 2 || got.Workspace.Servers[1].str("transport") != "sse" {
			t.Fatalf("workspace %s", r.Body)
		}

		// GET /tools: the live list of both servers, merged and named <slug>__<tool>; the
		// secret header reached the MCP server (decrypted from storage).
		listTools := func() []string {
			t.Helper()
			r := e.as(e.Token, "GET", "/api/workspaces/"+ws+"/tools", nil)
			if r.Status != 200 {
				t.Fatalf("tools: %d %s", r.Status, r.Body)
			}
			var out struct {
				Tools []struct {
					Name        string          `json:"name"`
					Description string          `json:"description"`
					InputSchema json.RawMessage `json:"input_schema"`
					Server      string          `json:"server"`
				} `json:"tools"`
				Warnings []string `json:"warnings"`
			}
			r.json(t, &out)
			if len(out.Warnings) != 0 {
				t.Fatalf("warnings %q", out.Warnings)
			}
			var names []string
			for _, tool := range out.Tools {
				names = append(names, tool.Server+"/"+tool.Name)
				if tool.Name == "docs-search__echo" && (tool.Description != "Echoes its text." || !strings.Contains(string(tool.InputSchema), `"text"`)) {
					t.Fatalf("echo tool %+v", tool)
				}
			}
			return names
		}
		if names := listTools(); !slices.Equal(names, []string{"docs-search/docs-search__echo", "docs-search/docs-search__fail", "legacy/legacy__echo"}) {
			t.Fatalf("tools %q", names)
		}
		if sawSecret.Load() == 0 {
			t.Fatal("the MCP server never received the secret header")
		}

		// Disable the SSE server: its tools leave the list; enable it again: they come back.
		for _, en := range []any{false, 1} {
			r = e.as(e.Token, "PATCH", "/api/workspaces/"+ws+"/servers/"+sseID, map[string]any{"enabled": en})
			var patched struct {
				Server serverView `json:"server"`
			}
			r.json(t, &patched)
			want := en == 1
			if r.Status != 200 || patched.Server["enabled"] != want {
				t.Fatalf("patch enabled=%v: %d %s", en, r.Status, r.Body)
			}
			names := listTools()
			if slices.Contains(names, "legacy/legacy__echo") != want {
				t.Fatalf("enabled=%v: tools %q", want, names)
			}
		}

		// Changing the headers keeps them secret and takes effect (a wrong token is refused).
		r = e.as(e.Token, "PATCH", "/api/workspaces/"+ws+"/servers/"+srv.str("id"), map[string]any{"headers": map[string]string{"Authorization": "Bearer wrong"}})
		if r.Status != 200 || strings.Contains(string(r.Body), "wrong") {
			t.Fatalf("patch headers: %d %s", r.Status, r.Body)
		}
		r = e.as(e.Token, "GET", "/api/workspaces/"+ws+"/tools", nil)
		if r.Status != 200 || !strings.Contains(string(r.Body), `docs-search`) || strings.Contains(string(r.Body), "Bearer wrong") {
			t.Fatalf("tools after a bad token: %d %s", r.Status, r.Body)
		}
		var warned struct {
			Warnings []string `json:"warnings"`
		}
		r.json(t, &warned)
		if len(warned.Warnings) != 1 || !strings.Contains(warned.Warnings[0], `"docs-search" unavailable`) {
			t.Fatalf("warnings %q", warned.Warnings)
		}

		// Another user sees nothing of it.
		other, _ := e.register("intruder@example.com")
		for _, req := range [][2]string{{"GET", "/api/workspaces/" + ws + "/tools"}, {"DELETE", "/api/workspaces/" + ws + "/servers/" + sseID}} {
			if r := e.as(other, req[0], req[1], nil); r.Status != 404 || r.errCode() != stream.CodeNotFound {
				t.Fatalf("%s %s as another user: %d %s", req[0], req[1], r.Status, r.Body)
			}
		}

		// DELETE: 204, then gone.
		if r := e.as(e.Token, "DELETE", "/api/workspaces/"+ws+"/servers/"+sseID, nil); r.Status != 204 {
			t.Fatalf("delete: %d %s", r.Status, r.Body)
		}
		if r := e.as(e.Token, "DELETE", "/api/workspaces/"+ws+"/servers/"+sseID, nil); r.Status != 404 {
			t.Fatalf("delete again: %d %s", r.Status, r.Body)
		}
		r = e.as(e.Token, "GET", "/api/workspaces/"+ws, nil)
		r.json(t, &got)
		if len(got.Workspace.Servers) != 1 {
			t.Fatalf("after delete: %s", r.Body)
		}
	})
}

// TestMCP_ServerValidation: what the API refuses, with 400 VALIDATION_ERROR naming the field.
func TestMCP_ServerValidation(t *testing.T) {
	t.Parallel()
	strict := newEnv(t, "sqlite", func(c *Config) {
		c.AllowPrivateEgress = false
		c.OperatorServers = []tools.ServerConfig{stdioOperator("local", "/bin/true")}
	})
	ws := strict.workspace(strict.Token, "w")
	cases := []struct {
		name string
		body map[string]any
		want string // in the message
	}{
		{"stdio through the API", map[string]any{"name": "x", "transport": "stdio", "url": "https://203.0.113.5/mcp"}, "transport"},
		{"unknown transport", map[string]any{"name": "x", "transport": "websocket", "url": "https://203.0.113.5/mcp"}, "transport"},
		{"not a URL", map[string]any{"name": "x", "transport": "sse", "url": "not a url"}, "url"},
		{"ftp URL", map[string]any{"name": "x", "transport": "sse", "url": "ftp://203.0.113.5/x"}, "url"},
		{"no URL", map[string]any{"name": "x", "transport": "sse"}, "url"},
		{"no transport", map[string]any{"name": "x", "url": "https://203.0.113.5/mcp"}, "transport"},
		{"loopback refused", map[string]any{"name": "x", "transport": "streamable_http", "url": "http://127.0.0.1:9/mcp"}, "url"},
		{"localhost refused", map[string]any{"name": "x", "transport": "streamable_http", "url": "http://localhost:9/mcp"}, "url"},
		{"private range refused", map[string]any{"name": "x", "transport": "sse", "url": "http://10.1.2.3/sse"}, "url"},
		{"link-local refused", map[string]any{"name": "x", "transport": "sse", "url": "http://169.254.169.254/sse"}, "url"},
		{"bad slug", map[string]any{"name": "x", "slug": "Bad_Slug", "transport": "sse", "url": "https://203.0.113.5/sse"}, "slug"},
		{"headers not strings", map[string]any{"name": "x", "transport": "sse", "url": "https://203.0.113.5/sse", "headers": map[string]any{"X": 1}}, "headers"},
		{"unknown field", map[string]any{"name": "x", "transport": "sse", "url": "https://203.0.113.5/sse", "command": "/bin/sh"}, "command"},
		{"unknown operator server", map[string]any{"operator_server": "nope"}, "operator_server"},
		{"operator server with a url", map[string]any{"operator_server": "local", "url": "https://203.0.113.5/mcp"}, "url"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := strict.as(strict.Token, "POST", "/api/workspaces/"+ws+"/servers", tt.body)
			if r.Status != 400 || r.errCode() != stream.CodeValidation || !strings.Contains(r.errMessage(), tt.want) {
				t.Fatalf("got %d %s, want 400 naming %q", r.Status, r.Body, tt.want)
			}
		})
	}
}

// TestMCP_OperatorServers: servers declared in the operator's config are listed by
// GET /api/mcp-servers and attached by slug; their command never shows.
func TestMCP_OperatorServers(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite", func(c *Config) {
		c.OperatorServers = []tools.ServerConfig{
			stdioOperator("local", "/opt/secret-path/stdioserver"),
			{ID: "op:remote", Slug: "remote", Transport: tools.TransportStreamableHTTP, URL: "https://mcp.example.com/mcp"},
		}
	})
	r := e.as(e.Token, "GET", "/api/mcp-servers", nil)
	if r.Status != 200 || r.Body == nil || strings.Contains(string(r.Body), "secret-path") {
		t.Fatalf("mcp-servers: %d %s", r.Status, r.Body)
	}
	var list struct {
		Servers []map[string]any `json:"servers"`
	}
	r.json(t, &list)
	if len(list.Servers) != 2 || list.Servers[0]["slug"] != "local" || list.Servers[0]["transport"] != "stdio" ||
		list.Servers[1]["slug"] != "remote" || list.Servers[1]["transport"] != "streamable_http" {
		t.Fatalf("mcp-servers %s", r.Body)
	}
	if r := e.do("GET", "/api/mcp-servers", nil); r.Status != 401 {
		t.Fatalf("without a token: %d", r.Status)
	}

	ws := e.workspace(e.Token, "ops")
	r = e.as(e.Token, "POST", "/api/workspaces/"+ws+"/servers", map[string]any{"operator_server": "local"})
	if r.Status != 201 || strings.Contains(string(r.Body), "secret-path") {
		t.Fatalf("attach: %d %s", r.Status, r.Body)
	}
	var att struct {
		Server serverView `json:"server"`
	}
	r.json(t, &att)
	if att.Server.str("operator_server") != "local" || att.Server.str("transport") != "stdio" || att.Server.str("slug") != "local" {
		t.Fatalf("attached %s", r.Body)
	}
	// Its transport and URL cannot be changed through the API.
	r = e.as(e.Token, "PATCH", "/api/workspaces/"+ws+"/servers/"+att.Server.str("id"), map[string]any{"url": "https://x.example.com/mcp"})
	if r.Status != 400 || r.errCode() != stream.CodeValidation {
		t.Fatalf("patch url of an operator server: %d %s", r.Status, r.Body)
	}
}

// closedURL is an MCP URL on 127.0.0.1 where nothing listens.
func closedURL(tb testing.TB) string {
	tb.Helper()
	return "http://" + closedAddr(tb) + "/mcp"
}

// TestMCP_EgressCheckedAtConnect: a loopback server that got into the database without the
// API's check (e.g. registered before the operator turned private egress off) is still refused
// when a run connects; the run goes on without it and says why.
func TestMCP_EgressCheckedAtConnect(t *testing.T) {
	t.Parallel()
	peer := toolstest.StartStreamable(t, toolstest.EchoTool, nil)
	e := newEnv(t, "sqlite", func(c *Config) { c.AllowPrivateEgress = false })
	ws := e.workspace(e.Token, "w")
	if err := e.Store.CreateMCPServer(context.Background(), &db.MCPServer{
		WorkspaceID: ws, Slug: "sneaky", Name: "sneaky", Transport: tools.TransportStreamableHTTP, URL: peer.URL, Enabled: true,
	}); err != nil {
		t.Fatal(err)
	}
	ep := e.endpoint(map[string]any{"workspace_id": ws})
	e.LLM.Script(llmtest.Reply{Text: "No tools."})
	_, evs := readStream(t, e, ep, `{"input":"hi"}`)
	if done := lastDone(t, evs); done.Output != "No tools." {
		t.Fatalf("done %+v", done)
	}
	if msg := toolsLoaded(t, evs); !strings.HasPrefix(msg, "0 tools loaded; ") || !strings.Contains(msg, "egress denied") {
		t.Fatalf("tools_loaded %q", msg)
	}
	if n := peer.Inits.Load(); n != 0 {
		t.Fatalf("the loopback server was initialised %d times", n)
	}
	if reqs := e.LLM.Requests(); len(reqs) != 1 || len(reqs[0].Tools) != 0 {
		t.Fatalf("model requests %+v", reqs)
	}
}
