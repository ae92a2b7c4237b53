package server

import (
	"regexp"
	"strings"
	"testing"
)

var workspaceIDRe = regexp.MustCompile(`^ws_[0-9a-f]{18}$`)

// wsAnswer is {"workspace":{...}}.
type wsAnswer struct {
	Workspace map[string]any `json:"workspace"`
}

func TestWorkspace_CRUD(t *testing.T) {
	t.Parallel()
	forKinds(t, func(t *testing.T, kind string) {
		e := newEnv(t, kind)
		r := e.as(e.Token, "POST", "/api/workspaces", map[string]any{"name": "  My Tools ", "description": "search and fetch"})
		r.want(t, 201, "")
		var c wsAnswer
		r.json(t, &c)
		w := c.Workspace
		id, _ := w["id"].(string)
		if !workspaceIDRe.MatchString(id) || w["slug"] != "my-tools" || w["name"] != "My Tools" || w["description"] != "search and fetch" {
			t.Fatalf("created %s", r.Body)
		}
		for _, k := range []string{"created_at", "updated_at"} {
			if s, _ := w[k].(string); !rfc3339Z.MatchString(s) {
				t.Fatalf("%s = %#v", k, w[k])
			}
		}
		// Derived slugs are unique per owner; another owner starts over.
		second := e.as(e.Token, "POST", "/api/workspaces", map[string]any{"name": "my tools"})
		second.want(t, 201, "")
		var c2 wsAnswer
		second.json(t, &c2)
		if c2.Workspace["slug"] != "my-tools-2" || c2.Workspace["description"] != "" {
			t.Fatalf("second %s", second.Body)
		}
		other, _ := e.register("other@example.com")
		theirs := e.as(other, "POST", "/api/workspaces", map[string]any{"name": "My Tools"})
		theirs.want(t, 201, "")
		var c3 wsAnswer
		theirs.json(t, &c3)
		if c3.Workspace["slug"] != "my-tools" {
			t.Fatalf("other owner's slug %s", theirs.Body)
		}

		// A server in the first workspace, for server_count.
		e.as(e.Token, "POST", "/api/workspaces/"+id+"/servers", map[string]any{
			"name": "search", "transport": "streamable_http", "url": "http://127.0.0.1:1/mcp",
		}).want(t, 201, "")

		// List: the caller's own, newest first, with server_count.
		list := e.as(e.Token, "GET", "/api/workspaces", nil)
		list.want(t, 200, "")
		var l struct {
			Workspaces []map[string]any `json:"workspaces"`
		}
		list.json(t, &l)
		if len(l.Workspaces) != 2 || l.Workspaces[0]["id"] != c2.Workspace["id"] || l.Workspaces[1]["id"] != id {
			t.Fatalf("list %s", list.Body)
		}
		if l.Workspaces[0]["server_count"] != 0.0 || l.Workspaces[1]["server_count"] != 1.0 {
			t.Fatalf("server_count %v %v", l.Workspaces[0]["server_count"], l.Workspaces[1]["server_count"])
		}
		// GET adds servers.
		get := e.as(e.Token, "GET", "/api/workspaces/"+id, nil)
		get.want(t, 200, "")
		var g wsAnswer
		get.json(t, &g)
		servers, _ := g.Workspace["servers"].([]any)
		if len(servers) != 1 || servers[0].(map[string]any)["name"] != "search" || g.Workspace["server_count"] != 1.0 {
			t.Fatalf("get %s", get.Body)
		}
		// An empty workspace answers servers: [] (not absent, not null).
		empty := e.as(e.Token, "GET", "/api/workspaces/"+c2.Workspace["id"].(string), nil)
		if !strings.Contains(string(empty.Body), `"servers":[]`) || !strings.Contains(string(empty.Body), `"server_count":0`) {
			t.Fatalf("empty workspace: %s", empty.Body)
		}

		// PATCH: partial; description null clears it.
		p := e.as(e.Token, "PATCH", "/api/workspaces/"+id, map[string]any{"name": "Renamed"})
		p.want(t, 200, "")
		var pa wsAnswer
		p.json(t, &pa)
		if pa.Workspace["name"] != "Renamed" || pa.Workspace["description"] != "search and fetch" || pa.Workspace["slug"] != "my-tools" {
			t.Fatalf("patch name %s", p.Body)
		}
		p = e.as(e.Token, "PATCH", "/api/workspaces/"+id, map[string]any{"description": nil})
		p.want(t, 200, "")
		p.json(t, &pa)
		if pa.Workspace["description"] != "" || pa.Workspace["name"] != "Renamed" {
			t.Fatalf("patch description %s", p.Body)
		}
		get = e.as(e.Token, "GET", "/api/workspaces/"+id, nil)
		get.json(t, &g)
		if g.Workspace["name"] != "Renamed" || g.Workspace["description"] != "" {
			t.Fatalf("GET after PATCH %s", get.Body)
		}

		// DELETE → 204, then 404 everywhere.
		e.as(e.Token, "DELETE", "/api/workspaces/"+id, nil).want(t, 204, "")
		e.as(e.Token, "GET", "/api/workspaces/"+id, nil).want(t, 404, "NOT_FOUND")
		e.as(e.Token, "PATCH", "/api/workspaces/"+id, map[string]any{"name": "x"}).want(t, 404, "NOT_FOUND")
		e.as(e.Token, "DELETE", "/api/workspaces/"+id, nil).want(t, 404, "NOT_FOUND")
		e.as(e.Token, "GET", "/api/workspaces/"+id+"/tools", nil).want(t, 404, "NOT_FOUND")
		list = e.as(e.Token, "GET", "/api/workspaces", nil)
		list.json(t, &l)
		if len(l.Workspaces) != 1 {
			t.Fatalf("list after delete %s", list.Body)
		}
		// The other owner's workspace is untouched.
		e.as(other, "GET", "/api/workspaces/"+c3.Workspace["id"].(string), nil).want(t, 200, "")
	})
}

func TestWorkspace_DeleteKeepsEndpoints(t *testing.T) {
	t.Parallel()
	forKinds(t, func(t *testing.T, kind string) {
		e := newEnv(t, kind)
		ws := e.workspace(e.Token, "tools")
		ep := e.endpoint(map[string]any{"llm_provider": "demo", "workspace_id": ws})
		e.run(ep, map[string]any{"input": "before"}).want(t, 200, "")
		e.as(e.Token, "DELETE", "/api/workspaces/"+ws, nil).want(t, 204, "")
		// The endpoint lives on without tools.
		_, got := e.getEndpointJSON(e.Token, ep.ID())
		if got == nil || got["workspace_id"] != nil {
			t.Fatalf("endpoint after workspace delete: %v", got)
		}
		r := e.run(ep, map[string]any{"input": "after"})
		r.want(t, 200, "")
		var ans struct {
			Output    string `json:"output"`
			ToolCalls []any  `json:"tool_calls"`
		}
		r.json(t, &ans)
		if ans.Output == "" || len(ans.ToolCalls) != 0 {
			t.Fatalf("run after workspace delete: %s", r.Body)
		}
		// And it cannot be pointed back at the deleted workspace.
		e.as(e.Token, "PATCH", "/api/agent-endpoints/"+ep.ID(), map[string]any{"workspace_id": ws}).want(t, 400, "VALIDATION_ERROR")
	})
}

func TestWorkspace_Tools_Empty(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	ws := e.workspace(e.Token, "empty")
	r := e.as(e.Token, "GET", "/api/workspaces/"+ws+"/tools", nil)
	r.want(t, 200, "")
	if !strings.Contains(string(r.Body), `"tools":[]`) {
		t.Fatalf("tools %s", r.Body)
	}
}

func TestWorkspace_Validation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	ws := e.workspace(e.Token, "keep")
	before := e.as(e.Token, "GET", "/api/workspaces/"+ws, nil)
	cases := []struct {
		name  string
		body  any
		field string
		patch bool // also refused by PATCH
	}{
		{"name missing", map[string]any{"description": "d"}, "name", false},
		{"name empty", map[string]any{"name": ""}, "name", true},
		{"name blank", map[string]any{"name": "   "}, "name", true},
		{"name long", map[string]any{"name": strings.Repeat("n", 101)}, "name", true},
		{"name number", map[string]any{"name": 7}, "name", true},
		{"name null", map[string]any{"name": nil}, "name", true},
		{"description long", map[string]any{"name": "x", "description": strings.Repeat("d", 501)}, "description", true},
		{"description number", map[string]any{"name": "x", "description": 1}, "description", true},
		{"description object", map[string]any{"name": "x", "description": map[string]any{}}, "description", true},
		{"unknown field", map[string]any{"name": "x", "slug": "x"}, "slug", true},
		{"unknown field 2", map[string]any{"name": "x", "servers": []any{}}, "servers", true},
		{"not json", "name=x", "", true},
		{"array", `[{"name":"x"}]`, "", true},
		{"null", `null`, "", true},
		{"empty", ``, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := e.as(e.Token, "POST", "/api/workspaces", tc.body)
			r.want(t, 400, "VALIDATION_ERROR")
			if !strings.Contains(r.errMessage(), tc.field) {
				t.Fatalf("message %q does not name %q", r.errMessage(), tc.field)
			}
			if tc.patch {
				r = e.as(e.Token, "PATCH", "/api/workspaces/"+ws, tc.body)
				r.want(t, 400, "VALIDATION_ERROR")
			}
		})
	}
	t.Cleanup(func() {
		var l struct {
			Workspaces []any `json:"workspaces"`
		}
		e.as(e.Token, "GET", "/api/workspaces", nil).json(t, &l)
		if len(l.Workspaces) != 1 {
			t.Errorf("refused creates left %d workspaces", len(l.Workspaces))
		}
		after := e.as(e.Token, "GET", "/api/workspaces/"+ws, nil)
		if string(after.Body) != string(before.Body) {
			t.Errorf("refused PATCHes changed the workspace:\n%s\n%s", before.Body, after.Body)
		}
	})
}
