package server

import (
	"encoding/json"
	"strings"
	"testing"
)

// checkEnvelope fails unless r is an error answer in the envelope of SPEC §1, below 500.
func checkEnvelope(tb testing.TB, what string, r response) {
	tb.Helper()
	if r.Status >= 500 {
		tb.Fatalf("%s: %d %s (a client mistake must never be a 5xx)", what, r.Status, r.Body)
	}
	if r.Status < 400 {
		return
	}
	var env struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.Body, &env); err != nil || env.Error == nil || env.Error.Code == "" || env.Error.Message == "" {
		tb.Fatalf("%s: %d with a body that is not the error envelope: %s", what, r.Status, r.Body)
	}
	if want := map[int]string{400: "VALIDATION_ERROR", 401: "UNAUTHORIZED", 404: "NOT_FOUND", 409: "SLUG_TAKEN",
		413: "PAYLOAD_TOO_LARGE", 429: "RATE_LIMIT_EXCEEDED"}[r.Status]; want != "" && env.Error.Code != want {
		tb.Fatalf("%s: %d with code %s", what, r.Status, env.Error.Code)
	}
}

// TestBadInput sends malformed bodies to every POST and PATCH route: management routes answer
// 400 VALIDATION_ERROR; the routes that take free-form input (run, test) or none
// (regenerate-key) may accept them; none answers a 5xx or something other than the envelope.
func TestBadInput(t *testing.T) {
	t.Parallel()
	forKinds(t, badInput)
}

func badInput(t *testing.T, kind string) {
	e := newEnv(t, kind, func(c *Config) { c.TestPerMinute, c.RunsPerMinute = 1000, 1000 })
	ws := e.workspace(e.Token, "ws")
	srv := e.as(e.Token, "POST", "/api/workspaces/"+ws+"/servers", map[string]any{
		"name": "s", "transport": "streamable_http", "url": "http://127.0.0.1:1/mcp",
	})
	srv.want(t, 201, "")
	var sv struct {
		Server struct {
			ID string `json:"id"`
		} `json:"server"`
	}
	srv.json(t, &sv)
	ep := e.endpoint(map[string]any{"llm_provider": "demo"})

	deep := strings.Repeat("[", 20000) + strings.Repeat("]", 20000)
	deepObj := strings.Repeat(`{"a":`, 20000) + "1" + strings.Repeat("}", 20000)
	bodies := []string{
		"", " ", "not json", "{", "}", "[]", "[1,2]", `[{"name":"x"}]`, "null", "true", "0", `"str"`, "1e999",
		`{"name":1e999}`, `{"name":"x","max_tokens":1e999}`, `{"max_tokens":123456789012345678901234567890}`,
		`{"name":"x"}garbage`, `{"name":"x"} {"name":"y"}`, "\xff\xfe{}", deep, deepObj, `{"":1}`, `{"name":{"$gt":""}}`,
	}
	// Valid JSON at the edges: a route may accept these, but never with a 5xx.
	edges := []string{`{"name":"\ud800"}`, `{"name":"x","name":"y"}`, `{"name":"x\u0000"}`, `{"name":"` + strings.Repeat("é", 100) + `"}`}
	routes := []struct {
		method, path string
		strict       bool // management route: every malformed body → 400
		auth         bool // sends the JWT (else the endpoint key)
	}{
		{"POST", "/api/auth/register", true, false},
		{"POST", "/api/auth/login", true, false},
		{"POST", "/api/workspaces", true, true},
		{"PATCH", "/api/workspaces/" + ws, true, true},
		{"POST", "/api/workspaces/" + ws + "/servers", true, true},
		{"PATCH", "/api/workspaces/" + ws + "/servers/" + sv.Server.ID, true, true},
		{"POST", "/api/agent-endpoints", true, true},
		{"PATCH", "/api/agent-endpoints/" + ep.ID(), true, true},
		{"POST", "/api/agent-endpoints/" + ep.ID() + "/test", false, true},
		{"POST", "/api/run/" + ep.Slug(), false, false},
		{"POST", "/api/admin/wallet/deposit", false, true},
	}
	for _, rt := range routes {
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			for _, body := range append(append([]string{}, bodies...), edges...) {
				what := rt.method + " " + rt.path + " " + trimForLog(body)
				var r response
				switch {
				case rt.auth:
					r = e.as(e.Token, rt.method, rt.path, body)
				default:
					r = e.do(rt.method, rt.path, body, "Authorization", "Bearer "+ep.APIKey)
				}
				checkEnvelope(t, what, r)
				if rt.strict && !contains(edges, body) && (r.Status != 400 || r.errCode() != "VALIDATION_ERROR") {
					t.Fatalf("%s: %d %s, want 400 VALIDATION_ERROR", what, r.Status, r.Body)
				}
			}
		})
	}
	// regenerate-key last: it changes the key the run route above used.
	for _, body := range bodies[:5] {
		checkEnvelope(t, "regenerate "+body, e.as(e.Token, "POST", "/api/agent-endpoints/"+ep.ID()+"/regenerate-key", body))
	}
}

// TestBadInput_NullEverywhere sends every field of each management body as null, alone and
// all at once: nullable fields clear, the others are a 400 naming the field; never a 5xx.
func TestBadInput_NullEverywhere(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	ws := e.workspace(e.Token, "ws")
	ep := e.endpoint(map[string]any{"workspace_id": ws, "description": "d"})
	nullable := map[string]bool{"workspace_id": true, "description": true, "llm_base_url": true, "llm_api_key": true,
		"output_schema": true, "input_schema": true, "rate_limit_per_minute": true}
	all := map[string]any{}
	for _, f := range endpointFields {
		all[f] = nil
		r := e.as(e.Token, "PATCH", "/api/agent-endpoints/"+ep.ID(), map[string]any{f: nil})
		checkEnvelope(t, "PATCH endpoint "+f+"=null", r)
		if nullable[f] {
			r.want(t, 200, "")
			continue
		}
		r.want(t, 400, "VALIDATION_ERROR")
		if !strings.Contains(r.errMessage(), f) {
			t.Errorf("%s=null: message %q does not name it", f, r.errMessage())
		}
		r = e.as(e.Token, "POST", "/api/agent-endpoints", map[string]any{"name": "n", "system_prompt": "p", f: nil})
		if f == "name" || f == "system_prompt" {
			r = e.as(e.Token, "POST", "/api/agent-endpoints", map[string]any{f: nil})
		}
		r.want(t, 400, "VALIDATION_ERROR")
	}
	checkEnvelope(t, "POST endpoint all null", e.as(e.Token, "POST", "/api/agent-endpoints", all))
	checkEnvelope(t, "PATCH endpoint all null", e.as(e.Token, "PATCH", "/api/agent-endpoints/"+ep.ID(), all))
	for _, body := range []map[string]any{
		{"name": nil, "description": nil},
		{"email": nil, "password": nil},
		{"name": nil, "slug": nil, "transport": nil, "url": nil, "headers": nil, "enabled": nil, "operator_server": nil},
	} {
		for _, p := range []string{"/api/workspaces", "/api/auth/register", "/api/auth/login", "/api/workspaces/" + ws + "/servers"} {
			checkEnvelope(t, "POST "+p+" nulls", e.as(e.Token, "POST", p, body))
		}
		checkEnvelope(t, "PATCH workspace nulls", e.as(e.Token, "PATCH", "/api/workspaces/"+ws, body))
	}
}

// TestBadInput_Oversized: over the body limit is 413 on management routes too; a big body
// under it is a 400 for the field, not a crash.
func TestBadInput_Oversized(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite", func(c *Config) { c.BodyLimit = 64 << 10 })
	big := `{"name":"` + strings.Repeat("x", 70<<10) + `","system_prompt":"p"}`
	e.as(e.Token, "POST", "/api/agent-endpoints", big).want(t, 413, "PAYLOAD_TOO_LARGE")
	e.do("POST", "/api/auth/register", big).want(t, 413, "PAYLOAD_TOO_LARGE")
	under := `{"name":"` + strings.Repeat("x", 60<<10) + `","system_prompt":"p"}`
	r := e.as(e.Token, "POST", "/api/agent-endpoints", under)
	r.want(t, 400, "VALIDATION_ERROR")
	if !strings.Contains(r.errMessage(), "name") {
		t.Fatalf("message %q", r.errMessage())
	}
}

// TestBadInput_UnknownRoutes: unknown API routes and methods are 404 in the envelope.
func TestBadInput_UnknownRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	for _, p := range []struct{ method, path string }{
		{"GET", "/api/nope"}, {"POST", "/api/agent-endpoints/x/y/z"}, {"PUT", "/api/agent-endpoints"},
		{"DELETE", "/api/workspaces"}, {"GET", "/api/auth/register"},
	} {
		r := e.as(e.Token, p.method, p.path, nil)
		checkEnvelope(t, p.method+" "+p.path, r)
		if r.Status != 404 && r.Status != 405 {
			t.Errorf("%s %s: %d %s", p.method, p.path, r.Status, r.Body)
		}
	}
}

func trimForLog(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// TestBadInput_NULAndInvalidUTF8: PostgreSQL text refuses NUL and invalid UTF-8. A management
// field with NUL is a 400; a run whose input (or output) has them is still logged.
func TestBadInput_NULAndInvalidUTF8(t *testing.T) {
	t.Parallel()
	forKinds(t, func(t *testing.T, kind string) {
		e := newEnv(t, kind)
		r := e.as(e.Token, "POST", "/api/workspaces", `{"name":"a\u0000b"}`)
		r.want(t, 400, "VALIDATION_ERROR")
		if !strings.Contains(r.errMessage(), "name") {
			t.Fatalf("message %q", r.errMessage())
		}
		e.as(e.Token, "POST", "/api/agent-endpoints", `{"name":"n","system_prompt":"a\u0000b"}`).want(t, 400, "VALIDATION_ERROR")
		ep := e.endpoint(map[string]any{"llm_provider": "demo"})
		e.as(e.Token, "PATCH", "/api/agent-endpoints/"+ep.ID(), `{"description":"\u0000"}`).want(t, 400, "VALIDATION_ERROR")
		for _, tc := range []struct{ body, stored string }{
			{`{"input":"a\u0000b"}`, "a\uFFFDb"},
			{"raw \xff bytes", "raw \uFFFD bytes"},
			{"raw \x00 nul", "raw \uFFFD nul"},
		} {
			r := e.run(ep, tc.body)
			r.want(t, 200, "")
			rec := e.waitRun(runIDOf(t, r))
			if rec.Status != "success" || rec.Input != tc.stored || strings.ContainsRune(rec.Output, 0) {
				t.Fatalf("%q stored as %+v", tc.body, rec)
			}
		}
	})
}

func TestStorableText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"", ""}, {"plain", "plain"}, {"héllo ✓", "héllo ✓"}, {"a\x00b", "a\uFFFDb"},
		{"\xff\xfe", "\uFFFD"}, {"ok\xffthen\x00", "ok\uFFFDthen\uFFFD"},
	} {
		if got := storableText(tc.in); got != tc.want {
			t.Errorf("storableText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
