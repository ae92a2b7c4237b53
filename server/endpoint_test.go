package server

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentgate/agentgate/db"
)

var (
	apiKeyRe     = regexp.MustCompile(`^aek_[0-9a-f]{32}$`)
	endpointIDRe = regexp.MustCompile(`^aep_[0-9a-f]{18}$`)
)

// want checks a response's status and, for errors, its code.
func (r response) want(tb testing.TB, status int, code string) {
	tb.Helper()
	if r.Status != status {
		tb.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	if code != "" && r.errCode() != code {
		tb.Fatalf("code %q, want %q: %s", r.errCode(), code, r.Body)
	}
}

// workspace creates a workspace for the holder of token and returns its id.
func (e *testEnv) workspace(token, name string) string {
	e.tb.Helper()
	r := e.as(token, "POST", "/api/workspaces", map[string]any{"name": name})
	r.want(e.tb, 201, "")
	var out struct {
		Workspace struct {
			ID string `json:"id"`
		} `json:"workspace"`
	}
	r.json(e.tb, &out)
	return out.Workspace.ID
}

// getEndpointJSON reads an endpoint through the API as a generic object.
func (e *testEnv) getEndpointJSON(token, id string) (response, map[string]any) {
	e.tb.Helper()
	r := e.as(token, "GET", "/api/agent-endpoints/"+id, nil)
	var out struct {
		Endpoint map[string]any `json:"endpoint"`
	}
	if r.Status == 200 {
		r.json(e.tb, &out)
	}
	return r, out.Endpoint
}

// noSecrets fails when an answer carries an endpoint key or an llm_api_key.
func noSecrets(tb testing.TB, r response, secrets ...string) {
	tb.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(string(r.Body), s) {
			tb.Fatalf("answer contains the secret %q: %s", s, r.Body)
		}
	}
	var probe func(v any)
	probe = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, vv := range x {
				if k == "api_key" || k == "llm_api_key" || k == "api_key_hash" {
					tb.Fatalf("answer has a %q field: %s", k, r.Body)
				}
				probe(vv)
			}
		case []any:
			for _, vv := range x {
				probe(vv)
			}
		}
	}
	var v any
	_ = json.Unmarshal(r.Body, &v)
	probe(v)
}

func TestEndpoint_CreateDefaults(t *testing.T) {
	t.Parallel()
	forKinds(t, func(t *testing.T, kind string) {
		e := newEnv(t, kind)
		r := e.as(e.Token, "POST", "/api/agent-endpoints", map[string]any{
			"name": "summarizer", "system_prompt": "You are a concise summarizer.",
		})
		r.want(t, 201, "")
		var created createdEndpoint
		r.json(t, &created)
		if !apiKeyRe.MatchString(created.APIKey) {
			t.Fatalf("api_key %q", created.APIKey)
		}
		if created.RunURL != "/api/run/summarizer" {
			t.Fatalf("run_url %q", created.RunURL)
		}
		ep := created.Endpoint
		want := map[string]any{
			"name": "summarizer", "slug": "summarizer", "system_prompt": "You are a concise summarizer.",
			"workspace_id": nil, "description": nil, "agent_type": "extractor", "llm_provider": "openai",
			"llm_model": "gpt-4o-mini", "llm_base_url": nil, "max_tokens": 4096.0, "temperature": 0.3,
			"output_format": "text", "output_schema": nil, "input_schema": nil, "max_tool_calls": 10.0,
			"timeout_ms": 30000.0, "enable_streaming": false, "async_mode": false, "auth_mode": "api_key",
			"price_per_run_cents": 0.0, "status": "active", "owner_id": e.User, "run_url": "/api/run/summarizer",
		}
		for k, v := range want {
			got, ok := ep[k]
			if !ok || got != v {
				t.Errorf("%s = %#v (present %v), want %#v", k, got, ok, v)
			}
		}
		if !endpointIDRe.MatchString(created.ID()) {
			t.Errorf("id %q", created.ID())
		}
		for _, k := range []string{"created_at", "updated_at"} {
			if s, _ := ep[k].(string); !rfc3339Z.MatchString(s) {
				t.Errorf("%s = %#v", k, ep[k])
			}
		}
		// The key is stored only as a hash.
		stored, err := e.Store.Endpoint(context.Background(), e.User, created.ID(), false)
		if err != nil {
			t.Fatal(err)
		}
		if stored.APIKeyHash == "" || stored.APIKeyHash == created.APIKey || strings.Contains(stored.APIKeyHash, created.APIKey[4:]) {
			t.Fatalf("key stored as %q", stored.APIKeyHash)
		}
		for _, k := range []string{"api_key", "llm_api_key", "api_key_hash"} {
			if _, ok := ep[k]; ok {
				t.Fatalf("endpoint object has %s", k)
			}
		}
		// Never again: GET, list, PATCH.
		get := e.as(e.Token, "GET", "/api/agent-endpoints/"+created.ID(), nil)
		get.want(t, 200, "")
		noSecrets(t, get, created.APIKey)
		list := e.as(e.Token, "GET", "/api/agent-endpoints", nil)
		list.want(t, 200, "")
		noSecrets(t, list, created.APIKey)
		var l struct {
			Endpoints []map[string]any `json:"endpoints"`
		}
		list.json(t, &l)
		if len(l.Endpoints) != 1 || l.Endpoints[0]["id"] != created.ID() {
			t.Fatalf("list %s", list.Body)
		}
		patch := e.as(e.Token, "PATCH", "/api/agent-endpoints/"+created.ID(), map[string]any{"llm_api_key": "sk-secret-byok-123"})
		patch.want(t, 200, "")
		noSecrets(t, patch, created.APIKey, "sk-secret-byok-123")
		var p struct {
			Endpoint map[string]any `json:"endpoint"`
		}
		patch.json(t, &p)
		if p.Endpoint["has_llm_api_key"] != true {
			t.Fatalf("has_llm_api_key after PATCH: %s", patch.Body)
		}
		for _, r := range []response{e.as(e.Token, "GET", "/api/agent-endpoints/"+created.ID(), nil), e.as(e.Token, "GET", "/api/agent-endpoints", nil)} {
			noSecrets(t, r, created.APIKey, "sk-secret-byok-123")
		}
		// The BYO key is stored encrypted, not in clear.
		var rawKey string
		if err := e.Store.DB().Get(&rawKey, e.Store.Rebind(`SELECT llm_api_key FROM endpoints WHERE id = ?`), created.ID()); err != nil {
			t.Fatal(err)
		}
		if rawKey == "" || strings.Contains(rawKey, "sk-secret-byok-123") {
			t.Fatalf("llm_api_key stored as %q", rawKey)
		}
	})
}

func TestEndpoint_CreateAllFields(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	ws := e.workspace(e.Token, "tools")
	schema := map[string]any{"type": "object", "properties": map[string]any{"summary": map[string]any{"type": "string"}}, "required": []any{"summary"}}
	body := map[string]any{
		"name": "Full One", "workspace_id": ws, "system_prompt": "p", "description": "d", "slug": "full-one",
		"agent_type": "pipeline", "llm_provider": "custom", "llm_model": "m", "llm_base_url": "http://127.0.0.1:9/v1",
		"llm_api_key": "sk-x", "max_tokens": 32768, "temperature": 2, "output_format": "json", "output_schema": schema,
		"input_schema": map[string]any{"type": "object"}, "max_tool_calls": 50, "timeout_ms": 300000,
		"enable_streaming": 1, "async_mode": 0, "auth_mode": "public", "price_per_run_cents": 10000,
	}
	r := e.as(e.Token, "POST", "/api/agent-endpoints", body)
	r.want(t, 201, "")
	var out createdEndpoint
	r.json(t, &out)
	ep := out.Endpoint
	want := map[string]any{
		"workspace_id": ws, "description": "d", "slug": "full-one", "agent_type": "pipeline", "llm_provider": "custom",
		"llm_model": "m", "llm_base_url": "http://127.0.0.1:9/v1", "max_tokens": 32768.0, "temperature": 2.0,
		"output_format": "json", "max_tool_calls": 50.0, "timeout_ms": 300000.0, "enable_streaming": true,
		"async_mode": false, "auth_mode": "public", "price_per_run_cents": 10000.0, "has_llm_api_key": true,
	}
	for k, v := range want {
		if ep[k] != v {
			t.Errorf("%s = %#v, want %#v", k, ep[k], v)
		}
	}
	if s, _ := json.Marshal(ep["output_schema"]); !strings.Contains(string(s), `"summary"`) {
		t.Errorf("output_schema %s", s)
	}
	if s, _ := json.Marshal(ep["input_schema"]); string(s) != `{"type":"object"}` {
		t.Errorf("input_schema %s", s)
	}
	if _, ok := ep["llm_api_key"]; ok || strings.Contains(string(r.Body), "sk-x") {
		t.Fatalf("create answer returns llm_api_key: %s", r.Body)
	}
	// Lower bounds too.
	r = e.as(e.Token, "POST", "/api/agent-endpoints", map[string]any{
		"name": "low", "system_prompt": "p", "max_tokens": 100, "temperature": 0, "max_tool_calls": 1, "timeout_ms": 1000,
		"price_per_run_cents": 0, "enable_streaming": true, "async_mode": false, "description": nil, "workspace_id": nil,
		"output_schema": nil, "input_schema": nil, "llm_base_url": nil, "llm_api_key": nil,
	})
	r.want(t, 201, "")
}

func TestEndpoint_Validation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	otherToken, _ := e.register("other@example.com")
	foreignWS := e.workspace(otherToken, "theirs")
	ep := e.endpoint(nil)
	before, _ := e.getEndpointJSON(e.Token, ep.ID())
	long := func(n int) string { return strings.Repeat("x", n) }
	cases := []struct {
		field string
		value any
		extra map[string]any // other fields sent with it
	}{
		{"name", 5, nil}, {"name", "", nil}, {"name", "   ", nil}, {"name", long(101), nil}, {"name", nil, nil}, {"name", []any{"a"}, nil},
		{"workspace_id", 5, nil}, {"workspace_id", "ws_000000000000000000", nil}, {"workspace_id", foreignWS, nil},
		{"system_prompt", true, nil}, {"system_prompt", "", nil}, {"system_prompt", long(10001), nil},
		{"description", 5, nil}, {"description", long(501), nil},
		{"slug", 5, nil}, {"slug", "Bad Slug", nil}, {"slug", "-abc", nil}, {"slug", "", nil}, {"slug", long(61), nil}, {"slug", "ab_c", nil},
		{"agent_type", 1, nil}, {"agent_type", "robot", nil}, {"agent_type", nil, nil},
		{"llm_provider", 1, nil}, {"llm_provider", "azure", nil}, {"llm_provider", "OPENAI", nil},
		{"llm_model", 1, nil}, {"llm_model", "", nil}, {"llm_model", long(101), nil},
		{"llm_base_url", 1, nil}, {"llm_base_url", "ftp://example.com", nil}, {"llm_base_url", "not a url", nil}, {"llm_base_url", "http://", nil},
		{"llm_base_url", nil, map[string]any{"llm_provider": "custom"}},
		{"llm_api_key", 1, nil}, {"llm_api_key", long(501), nil},
		{"max_tokens", "4096", nil}, {"max_tokens", 99, nil}, {"max_tokens", 32769, nil}, {"max_tokens", 100.5, nil},
		{"max_tokens", 1e300, nil}, {"max_tokens", -1e300, nil}, {"max_tokens", nil, nil}, {"max_tokens", true, nil},
		{"temperature", "0.3", nil}, {"temperature", -0.1, nil}, {"temperature", 2.01, nil}, {"temperature", nil, nil}, {"temperature", 1e308, nil},
		{"output_format", 1, nil}, {"output_format", "xml", nil}, {"output_format", "JSON", nil},
		{"output_schema", "str", map[string]any{"output_format": "json"}},
		{"output_schema", []any{1}, map[string]any{"output_format": "json"}},
		{"output_schema", map[string]any{"type": "object"}, nil},
		{"output_schema", map[string]any{"type": "object"}, map[string]any{"output_format": "markdown"}},
		{"output_schema", map[string]any{"type": 12}, map[string]any{"output_format": "json"}},
		{"output_schema", map[string]any{"type": "no-such-type"}, map[string]any{"output_format": "json"}},
		{"output_schema", map[string]any{"minLength": -1}, map[string]any{"output_format": "json"}},
		{"input_schema", "str", nil}, {"input_schema", 5, nil},
		{"max_tool_calls", "10", nil}, {"max_tool_calls", 0, nil}, {"max_tool_calls", 51, nil},
		{"timeout_ms", "x", nil}, {"timeout_ms", 999, nil}, {"timeout_ms", 300001, nil}, {"timeout_ms", 1e20, nil},
		{"enable_streaming", "yes", nil}, {"enable_streaming", 2, nil}, {"enable_streaming", "true", nil}, {"enable_streaming", nil, nil},
		{"async_mode", "false", nil}, {"async_mode", -1, nil}, {"async_mode", 0.5, nil},
		{"auth_mode", 1, nil}, {"auth_mode", "oauth", nil}, {"auth_mode", "", nil},
		{"price_per_run_cents", "1", nil}, {"price_per_run_cents", -1, nil}, {"price_per_run_cents", 10001, nil},
		{"price_per_run_cents", 0.5, nil}, {"price_per_run_cents", nil, nil},
	}
	for _, tc := range cases {
		name := fmt.Sprintf("%s=%.40v", tc.field, tc.value)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			body := map[string]any{"name": "v", "system_prompt": "p", tc.field: tc.value}
			for k, v := range tc.extra {
				body[k] = v
			}
			r := e.as(e.Token, "POST", "/api/agent-endpoints", body)
			r.want(t, 400, "VALIDATION_ERROR")
			if !strings.Contains(r.errMessage(), tc.field) {
				t.Fatalf("create: message %q does not name %s", r.errMessage(), tc.field)
			}
			// PATCH: same validation (name and system_prompt are not resent).
			patch := map[string]any{tc.field: tc.value}
			for k, v := range tc.extra {
				patch[k] = v
			}
			r = e.as(e.Token, "PATCH", "/api/agent-endpoints/"+ep.ID(), patch)
			r.want(t, 400, "VALIDATION_ERROR")
			if !strings.Contains(r.errMessage(), tc.field) {
				t.Fatalf("patch: message %q does not name %s", r.errMessage(), tc.field)
			}
		})
	}
	t.Run("unknown field", func(t *testing.T) {
		t.Parallel()
		for _, body := range []map[string]any{
			{"name": "v", "system_prompt": "p", "model": "gpt-4o"},
			{"name": "v", "system_prompt": "p", "api_key": "aek_00000000000000000000000000000000"},
			{"name": "v", "system_prompt": "p", "id": "aep_000000000000000000"},
			{"name": "v", "system_prompt": "p", "owner_id": "usr_000000000000000000"},
		} {
			r := e.as(e.Token, "POST", "/api/agent-endpoints", body)
			r.want(t, 400, "VALIDATION_ERROR")
			r = e.as(e.Token, "PATCH", "/api/agent-endpoints/"+ep.ID(), body)
			r.want(t, 400, "VALIDATION_ERROR")
		}
	})
	t.Run("required", func(t *testing.T) {
		t.Parallel()
		r := e.as(e.Token, "POST", "/api/agent-endpoints", map[string]any{"system_prompt": "p"})
		r.want(t, 400, "VALIDATION_ERROR")
		if !strings.Contains(r.errMessage(), "name") {
			t.Fatalf("message %q", r.errMessage())
		}
		r = e.as(e.Token, "POST", "/api/agent-endpoints", map[string]any{"name": "v"})
		r.want(t, 400, "VALIDATION_ERROR")
		if !strings.Contains(r.errMessage(), "system_prompt") {
			t.Fatalf("message %q", r.errMessage())
		}
	})
	// The parent's cleanup runs once every parallel case above is done.
	t.Cleanup(func() {
		list := e.as(e.Token, "GET", "/api/agent-endpoints", nil)
		var l struct {
			Endpoints []map[string]any `json:"endpoints"`
		}
		list.json(t, &l)
		if len(l.Endpoints) != 1 {
			t.Errorf("refused creates left %d endpoints: %s", len(l.Endpoints), list.Body)
		}
		after, _ := e.getEndpointJSON(e.Token, ep.ID())
		if string(after.Body) != string(before.Body) {
			t.Errorf("refused PATCHes changed the endpoint:\n%s\n%s", before.Body, after.Body)
		}
	})
}

func TestEndpoint_Booleans(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	ep := e.endpoint(nil)
	for _, tc := range []struct {
		in   any
		want bool
	}{{1, true}, {0, false}, {true, true}, {false, false}} {
		for _, field := range []string{"enable_streaming", "async_mode"} {
			r := e.as(e.Token, "PATCH", "/api/agent-endpoints/"+ep.ID(), map[string]any{field: tc.in})
			r.want(t, 200, "")
			_, got := e.getEndpointJSON(e.Token, ep.ID())
			if got[field] != tc.want {
				t.Fatalf("%s=%v → %v, want %v", field, tc.in, got[field], tc.want)
			}
		}
	}
}

func TestEndpoint_Patch(t *testing.T) {
	t.Parallel()
	forKinds(t, func(t *testing.T, kind string) {
		e := newEnv(t, kind)
		ws := e.workspace(e.Token, "ws")
		ep := e.endpoint(map[string]any{"description": "first", "workspace_id": ws})
		_, before := e.getEndpointJSON(e.Token, ep.ID())

		// A partial update changes only what it names.
		r := e.as(e.Token, "PATCH", "/api/agent-endpoints/"+ep.ID(), map[string]any{"temperature": 1.5, "max_tokens": 200})
		r.want(t, 200, "")
		var p struct {
			Endpoint map[string]any `json:"endpoint"`
		}
		r.json(t, &p)
		for k, v := range before {
			switch k {
			case "temperature":
				if p.Endpoint[k] != 1.5 {
					t.Errorf("temperature %v", p.Endpoint[k])
				}
			case "max_tokens":
				if p.Endpoint[k] != 200.0 {
					t.Errorf("max_tokens %v", p.Endpoint[k])
				}
			case "updated_at":
			default:
				if fmt.Sprint(p.Endpoint[k]) != fmt.Sprint(v) {
					t.Errorf("%s changed: %v → %v", k, v, p.Endpoint[k])
				}
			}
		}
		// The PATCH answer is what GET answers afterwards.
		_, got := e.getEndpointJSON(e.Token, ep.ID())
		if fmt.Sprint(got) != fmt.Sprint(p.Endpoint) {
			t.Fatalf("GET after PATCH:\n%v\n%v", got, p.Endpoint)
		}
		// null clears nullable fields.
		r = e.as(e.Token, "PATCH", "/api/agent-endpoints/"+ep.ID(), map[string]any{"description": nil, "workspace_id": nil})
		r.want(t, 200, "")
		r.json(t, &p)
		if p.Endpoint["description"] != nil || p.Endpoint["workspace_id"] != nil {
			t.Fatalf("null did not clear: %s", r.Body)
		}
		// Cross-field rules apply to the merged endpoint.
		e.as(e.Token, "PATCH", "/api/agent-endpoints/"+ep.ID(), map[string]any{"llm_provider": "custom"}).want(t, 400, "VALIDATION_ERROR")
		e.as(e.Token, "PATCH", "/api/agent-endpoints/"+ep.ID(), map[string]any{"llm_provider": "custom", "llm_base_url": "http://127.0.0.1:1/v1"}).want(t, 200, "")
		e.as(e.Token, "PATCH", "/api/agent-endpoints/"+ep.ID(), map[string]any{"llm_base_url": nil}).want(t, 400, "VALIDATION_ERROR")
		e.as(e.Token, "PATCH", "/api/agent-endpoints/"+ep.ID(), map[string]any{"output_format": "json", "output_schema": map[string]any{"type": "object"}}).want(t, 200, "")
		r = e.as(e.Token, "PATCH", "/api/agent-endpoints/"+ep.ID(), map[string]any{"output_format": "text"})
		r.want(t, 400, "VALIDATION_ERROR")
		if !strings.Contains(r.errMessage(), "output_schema") {
			t.Fatalf("message %q", r.errMessage())
		}
		e.as(e.Token, "PATCH", "/api/agent-endpoints/"+ep.ID(), map[string]any{"output_format": "text", "output_schema": nil}).want(t, 200, "")
		// An empty PATCH is a no-op.
		e.as(e.Token, "PATCH", "/api/agent-endpoints/"+ep.ID(), map[string]any{}).want(t, 200, "")
		// Unknown ids.
		e.as(e.Token, "PATCH", "/api/agent-endpoints/aep_000000000000000000", map[string]any{"name": "x"}).want(t, 404, "NOT_FOUND")
		e.as(e.Token, "GET", "/api/agent-endpoints/nope", nil).want(t, 404, "NOT_FOUND")
	})
}

func TestEndpoint_Slugs(t *testing.T) {
	t.Parallel()
	forKinds(t, func(t *testing.T, kind string) {
		e := newEnv(t, kind)
		other, _ := e.register("other@example.com")
		create := func(token string, body map[string]any) response {
			t.Helper()
			if _, ok := body["system_prompt"]; !ok {
				body["system_prompt"] = "p"
			}
			return e.as(token, "POST", "/api/agent-endpoints", body)
		}
		slugOf := func(r response) string {
			t.Helper()
			r.want(t, 201, "")
			var c createdEndpoint
			r.json(t, &c)
			if c.RunURL != "/api/run/"+c.Slug() || c.Endpoint["run_url"] != c.RunURL {
				t.Fatalf("run_url %q for slug %q", c.RunURL, c.Slug())
			}
			return c.Slug()
		}
		for i, want := range []string{"my-summarizer", "my-summarizer-2", "my-summarizer-3"} {
			if got := slugOf(create(e.Token, map[string]any{"name": "  My Summarizer!  "})); got != want {
				t.Fatalf("derived slug #%d = %q, want %q", i+1, got, want)
			}
		}
		// Slugs are global: another account's name derives past them too.
		if got := slugOf(create(other, map[string]any{"name": "my summarizer"})); got != "my-summarizer-4" {
			t.Fatalf("other account derived %q", got)
		}
		if got := slugOf(create(e.Token, map[string]any{"name": "日本語"})); !regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,59}$`).MatchString(got) {
			t.Fatalf("slug from a non-ASCII name: %q", got)
		}
		if got := slugOf(create(e.Token, map[string]any{"name": strings.Repeat("abc ", 25)})); len(got) > 60 {
			t.Fatalf("slug from a long name is %d chars", len(got))
		}
		// Explicit: taken → 409, by any account; free → used as is.
		create(e.Token, map[string]any{"name": "x", "slug": "my-summarizer"}).want(t, 409, "SLUG_TAKEN")
		create(other, map[string]any{"name": "x", "slug": "my-summarizer-2"}).want(t, 409, "SLUG_TAKEN")
		if got := slugOf(create(e.Token, map[string]any{"name": "x", "slug": "custom-1"})); got != "custom-1" {
			t.Fatalf("explicit slug %q", got)
		}
		// PATCH slug: taken → 409, free → changes the run URL.
		r := create(e.Token, map[string]any{"name": "mover"})
		var mover createdEndpoint
		r.json(t, &mover)
		e.as(e.Token, "PATCH", "/api/agent-endpoints/"+mover.ID(), map[string]any{"slug": "custom-1"}).want(t, 409, "SLUG_TAKEN")
		r = e.as(e.Token, "PATCH", "/api/agent-endpoints/"+mover.ID(), map[string]any{"slug": "moved"})
		r.want(t, 200, "")
		var p struct {
			Endpoint map[string]any `json:"endpoint"`
		}
		r.json(t, &p)
		if p.Endpoint["slug"] != "moved" || p.Endpoint["run_url"] != "/api/run/moved" {
			t.Fatalf("patched %s", r.Body)
		}
		// PATCH to its own slug is fine.
		e.as(e.Token, "PATCH", "/api/agent-endpoints/"+mover.ID(), map[string]any{"slug": "moved"}).want(t, 200, "")
		// A deleted endpoint frees its slug.
		e.as(e.Token, "DELETE", "/api/agent-endpoints/"+mover.ID(), nil).want(t, 204, "")
		if got := slugOf(create(other, map[string]any{"name": "x", "slug": "moved"})); got != "moved" {
			t.Fatalf("freed slug %q", got)
		}
	})
}

func TestEndpoint_RegenerateKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	ep := e.endpoint(map[string]any{"llm_provider": "demo"})
	e.run(ep, map[string]any{"input": "hello"}).want(t, 200, "")
	r := e.as(e.Token, "POST", "/api/agent-endpoints/"+ep.ID()+"/regenerate-key", nil)
	r.want(t, 200, "")
	var out struct {
		APIKey string `json:"api_key"`
	}
	r.json(t, &out)
	if !apiKeyRe.MatchString(out.APIKey) || out.APIKey == ep.APIKey {
		t.Fatalf("new key %q (old %q)", out.APIKey, ep.APIKey)
	}
	// The old key is refused from that moment, by either header.
	e.run(ep, map[string]any{"input": "hello"}).want(t, 401, "UNAUTHORIZED")
	e.do("POST", "/api/run/"+ep.Slug(), map[string]any{"input": "hello"}, "X-API-Key", ep.APIKey).want(t, 401, "UNAUTHORIZED")
	fresh := ep
	fresh.APIKey = out.APIKey
	e.run(fresh, map[string]any{"input": "hello"}).want(t, 200, "")
	e.do("POST", "/api/run/"+ep.Slug(), map[string]any{"input": "hello"}, "X-API-Key", out.APIKey).want(t, 200, "")
	// The key is not in GET either.
	get := e.as(e.Token, "GET", "/api/agent-endpoints/"+ep.ID(), nil)
	noSecrets(t, get, out.APIKey, ep.APIKey)
	// A body is ignored, not an error; unknown id → 404.
	e.as(e.Token, "POST", "/api/agent-endpoints/aep_000000000000000000/regenerate-key", nil).want(t, 404, "NOT_FOUND")
}

func TestEndpoint_Delete(t *testing.T) {
	t.Parallel()
	forKinds(t, func(t *testing.T, kind string) {
		e := newEnv(t, kind)
		ep := e.endpoint(map[string]any{"llm_provider": "demo"})
		r := e.run(ep, map[string]any{"input": "hello"})
		r.want(t, 200, "")
		runID := runIDOf(t, r)
		e.waitRun(runID)

		del := e.as(e.Token, "DELETE", "/api/agent-endpoints/"+ep.ID(), nil)
		del.want(t, 204, "")
		if len(del.Body) != 0 {
			t.Fatalf("204 with a body: %q", del.Body)
		}
		// The key stops working at once.
		if r := e.run(ep, map[string]any{"input": "hello"}); r.Status != 404 && r.Status != 401 {
			t.Fatalf("run after delete: %d %s", r.Status, r.Body)
		}
		e.as(e.Token, "GET", "/api/agent-endpoints/"+ep.ID(), nil).want(t, 404, "NOT_FOUND")
		e.as(e.Token, "PATCH", "/api/agent-endpoints/"+ep.ID(), map[string]any{"name": "again"}).want(t, 404, "NOT_FOUND")
		e.as(e.Token, "DELETE", "/api/agent-endpoints/"+ep.ID(), nil).want(t, 404, "NOT_FOUND")
		e.as(e.Token, "POST", "/api/agent-endpoints/"+ep.ID()+"/regenerate-key", nil).want(t, 404, "NOT_FOUND")
		e.as(e.Token, "POST", "/api/agent-endpoints/"+ep.ID()+"/test", map[string]any{"input": "x"}).want(t, 404, "NOT_FOUND")
		list := e.as(e.Token, "GET", "/api/agent-endpoints", nil)
		if strings.Contains(string(list.Body), ep.ID()) {
			t.Fatalf("deleted endpoint listed: %s", list.Body)
		}
		// Its runs stay readable by the owner.
		runs := e.as(e.Token, "GET", "/api/agent-endpoints/"+ep.ID()+"/runs", nil)
		runs.want(t, 200, "")
		if !strings.Contains(string(runs.Body), runID) {
			t.Fatalf("runs after delete: %s", runs.Body)
		}
		one := e.as(e.Token, "GET", "/api/agent-endpoints/"+ep.ID()+"/runs/"+runID, nil)
		one.want(t, 200, "")
		e.as(e.Token, "GET", "/api/agent-endpoints/"+ep.ID()+"/stats", nil).want(t, 200, "")
	})
}

// isolationProbes are every owner-scoped route, for an endpoint, a run and a workspace.
func isolationProbes(epID, runID, wsID string) []struct {
	method, path string
	body         any
} {
	return []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/agent-endpoints/" + epID, nil},
		{"PATCH", "/api/agent-endpoints/" + epID, map[string]any{"name": "stolen"}},
		{"PATCH", "/api/agent-endpoints/" + epID, map[string]any{}},
		{"POST", "/api/agent-endpoints/" + epID + "/regenerate-key", nil},
		{"POST", "/api/agent-endpoints/" + epID + "/test", map[string]any{"input": "hi"}},
		{"GET", "/api/agent-endpoints/" + epID + "/runs", nil},
		{"GET", "/api/agent-endpoints/" + epID + "/runs/" + runID, nil},
		{"GET", "/api/agent-endpoints/" + epID + "/stats", nil},
		{"DELETE", "/api/agent-endpoints/" + epID, nil},
		{"GET", "/api/workspaces/" + wsID, nil},
		{"PATCH", "/api/workspaces/" + wsID, map[string]any{"name": "stolen"}},
		{"POST", "/api/workspaces/" + wsID + "/servers", map[string]any{"name": "s", "transport": "streamable_http", "url": "http://127.0.0.1:1/mcp"}},
		{"PATCH", "/api/workspaces/" + wsID + "/servers/mcs_000000000000000000", map[string]any{"enabled": false}},
		{"DELETE", "/api/workspaces/" + wsID + "/servers/mcs_000000000000000000", nil},
		{"GET", "/api/workspaces/" + wsID + "/tools", nil},
		{"DELETE", "/api/workspaces/" + wsID, nil},
	}
}

func TestEndpoint_OwnerIsolation(t *testing.T) {
	t.Parallel()
	forKinds(t, func(t *testing.T, kind string) {
		e := newEnv(t, kind)
		ws := e.workspace(e.Token, "mine")
		ep := e.endpoint(map[string]any{"llm_provider": "demo", "workspace_id": ws})
		r := e.run(ep, map[string]any{"input": "hello"})
		r.want(t, 200, "")
		runID := runIDOf(t, r)
		e.waitRun(runID)
		_, before := e.getEndpointJSON(e.Token, ep.ID())

		intruder, _ := e.register("intruder@example.com")
		for _, p := range isolationProbes(ep.ID(), runID, ws) {
			r := e.as(intruder, p.method, p.path, p.body)
			if r.Status != 404 || r.errCode() != "NOT_FOUND" {
				t.Errorf("%s %s as another user: %d %s, want 404 NOT_FOUND", p.method, p.path, r.Status, r.Body)
			}
			if strings.Contains(string(r.Body), "hello") || strings.Contains(string(r.Body), ep.Slug()) {
				t.Errorf("%s %s leaks data: %s", p.method, p.path, r.Body)
			}
		}
		// Not even the same answer differs for a resource that does not exist.
		ghost := e.as(intruder, "GET", "/api/agent-endpoints/aep_000000000000000000", nil)
		mine := e.as(intruder, "GET", "/api/agent-endpoints/"+ep.ID(), nil)
		if ghost.errMessage() != mine.errMessage() {
			t.Errorf("existence leak: %q vs %q", ghost.errMessage(), mine.errMessage())
		}
		// The intruder's own endpoint cannot reach the owner's run either.
		theirs := e.as(intruder, "POST", "/api/agent-endpoints", map[string]any{"name": "theirs", "system_prompt": "p"})
		theirs.want(t, 201, "")
		var tc createdEndpoint
		theirs.json(t, &tc)
		e.as(intruder, "GET", "/api/agent-endpoints/"+tc.ID()+"/runs/"+runID, nil).want(t, 404, "NOT_FOUND")
		// Nor point its endpoint at the owner's workspace.
		e.as(intruder, "PATCH", "/api/agent-endpoints/"+tc.ID(), map[string]any{"workspace_id": ws}).want(t, 400, "VALIDATION_ERROR")
		// Lists are the caller's own.
		for _, path := range []string{"/api/agent-endpoints", "/api/workspaces"} {
			r := e.as(intruder, "GET", path, nil)
			if strings.Contains(string(r.Body), ep.ID()) || strings.Contains(string(r.Body), ws) {
				t.Errorf("%s lists another account's resources: %s", path, r.Body)
			}
		}
		// And nothing the intruder tried changed anything: same endpoint, same key, same workspace.
		_, after := e.getEndpointJSON(e.Token, ep.ID())
		if fmt.Sprint(before) != fmt.Sprint(after) {
			t.Errorf("endpoint changed:\n%v\n%v", before, after)
		}
		e.run(ep, map[string]any{"input": "still mine"}).want(t, 200, "")
		e.as(e.Token, "GET", "/api/workspaces/"+ws, nil).want(t, 200, "")
	})
}

// seedRuns stores n finished runs for an endpoint directly, one millisecond apart, every
// third an error; it returns their ids newest first.
func (e *testEnv) seedRuns(endpointID string, n int) []string {
	e.tb.Helper()
	base := time.Now().Add(-time.Hour).UTC()
	runs := make([]*db.Run, 0, n)
	for i := range n {
		created := base.Add(time.Duration(i) * time.Millisecond)
		fin := created.Add(time.Millisecond)
		status := "success"
		if i%3 == 0 {
			status = "error"
		}
		runs = append(runs, &db.Run{ID: db.NewID("run_"), EndpointID: endpointID, OwnerID: e.User, Status: status,
			Input: fmt.Sprintf("input %d", i), Output: "out", CreatedAt: created, FinishedAt: &fin})
	}
	if err := e.Store.SaveRuns(context.Background(), runs); err != nil {
		e.tb.Fatal(err)
	}
	ids := make([]string, n)
	for i, r := range runs {
		ids[n-1-i] = r.ID
	}
	return ids
}

type runsPage struct {
	Runs []struct {
		ID         string `json:"id"`
		EndpointID string `json:"endpoint_id"`
		Status     string `json:"status"`
	} `json:"runs"`
	NextCursor *string `json:"next_cursor"`
}

func TestEndpoint_RunsPagination(t *testing.T) {
	t.Parallel()
	forKinds(t, func(t *testing.T, kind string) {
		e := newEnv(t, kind)
		ep := e.endpoint(nil)
		other := e.endpoint(map[string]any{"name": "other"})
		want := e.seedRuns(ep.ID(), 120)
		e.seedRuns(other.ID(), 5)
		base := "/api/agent-endpoints/" + ep.ID() + "/runs"

		page := func(query string) runsPage {
			t.Helper()
			r := e.as(e.Token, "GET", base+query, nil)
			r.want(t, 200, "")
			var p runsPage
			r.json(t, &p)
			return p
		}
		// Default limit 50, newest first, walks all 120 with no gap or duplicate.
		var got []string
		cursor := ""
		var sizes []int
		for i := 0; ; i++ {
			q := ""
			if cursor != "" {
				q = "?cursor=" + cursor
			}
			p := page(q)
			sizes = append(sizes, len(p.Runs))
			for _, r := range p.Runs {
				if r.EndpointID != ep.ID() {
					t.Fatalf("run of another endpoint listed: %+v", r)
				}
				got = append(got, r.ID)
			}
			if p.NextCursor == nil {
				break
			}
			cursor = *p.NextCursor
			if i > 5 {
				t.Fatal("pagination does not end")
			}
		}
		if fmt.Sprint(sizes) != "[50 50 20]" || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("pages %v; got %d ids, equal to want: %v", sizes, len(got), fmt.Sprint(got) == fmt.Sprint(want))
		}
		// limit bounds, and a last page that is exactly full ends with null.
		if p := page("?limit=1"); len(p.Runs) != 1 || p.Runs[0].ID != want[0] || p.NextCursor == nil {
			t.Fatalf("limit=1: %+v", p)
		}
		if p := page("?limit=200"); len(p.Runs) != 120 || p.NextCursor != nil {
			t.Fatalf("limit=200: %d runs, next %v", len(p.Runs), p.NextCursor)
		}
		if p := page("?limit=120"); len(p.Runs) != 120 || p.NextCursor != nil {
			t.Fatalf("limit=120: %d runs, next %v", len(p.Runs), p.NextCursor)
		}
		// Status filter, with pagination.
		p := page("?status=error&limit=30")
		if len(p.Runs) != 30 || p.NextCursor == nil {
			t.Fatalf("status=error page 1: %d runs", len(p.Runs))
		}
		p2 := page("?status=error&limit=30&cursor=" + *p.NextCursor)
		if len(p2.Runs) != 10 || p2.NextCursor != nil {
			t.Fatalf("status=error page 2: %d runs, next %v", len(p2.Runs), p2.NextCursor)
		}
		for _, r := range append(p.Runs, p2.Runs...) {
			if r.Status != "error" {
				t.Fatalf("status filter let %+v through", r)
			}
		}
		if p := page("?status=cancelled"); len(p.Runs) != 0 || p.NextCursor != nil {
			t.Fatalf("status=cancelled: %+v", p)
		}
		// Bad queries → 400.
		for _, q := range []string{"?limit=0", "?limit=201", "?limit=-1", "?limit=abc", "?limit=1.5", "?status=bogus",
			"?cursor=not-a-cursor", "?cursor=%21%21%21", "?cursor=MTIz", "?cursor=" + strings.Repeat("A", 100)} {
			r := e.as(e.Token, "GET", base+q, nil)
			r.want(t, 400, "VALIDATION_ERROR")
		}
		// The run detail.
		r := e.as(e.Token, "GET", base+"/"+want[0], nil)
		r.want(t, 200, "")
		var d struct {
			Run map[string]any `json:"run"`
		}
		r.json(t, &d)
		for _, k := range []string{"id", "endpoint_id", "status", "input", "output", "tool_calls", "error", "tokens_input",
			"tokens_output", "cost_cents", "latency_ms", "ttft_ms", "iterations", "charged_cents", "created_at", "finished_at"} {
			if _, ok := d.Run[k]; !ok {
				t.Errorf("run detail lacks %s: %s", k, r.Body)
			}
		}
		if tc, ok := d.Run["tool_calls"].([]any); !ok || len(tc) != 0 {
			t.Errorf("tool_calls %#v", d.Run["tool_calls"])
		}
		e.as(e.Token, "GET", base+"/run_000000000000000000", nil).want(t, 404, "NOT_FOUND")
		// A run of the owner's other endpoint is not found under this one.
		otherRuns := e.as(e.Token, "GET", "/api/agent-endpoints/"+other.ID()+"/runs", nil)
		var op runsPage
		otherRuns.json(t, &op)
		if len(op.Runs) != 5 {
			t.Fatalf("other endpoint runs: %s", otherRuns.Body)
		}
		e.as(e.Token, "GET", base+"/"+op.Runs[0].ID, nil).want(t, 404, "NOT_FOUND")
	})
}

func TestEndpoint_TestRoute(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	// auth_mode is ignored: a public endpoint is tested with the JWT just the same.
	ep := e.endpoint(map[string]any{"llm_provider": "demo", "auth_mode": "public"})
	path := "/api/agent-endpoints/" + ep.ID() + "/test"
	// Not with the endpoint key, not anonymous.
	e.do("POST", path, map[string]any{"input": "x"}, "Authorization", "Bearer "+ep.APIKey).want(t, 401, "UNAUTHORIZED")
	e.do("POST", path, map[string]any{"input": "x"}).want(t, 401, "UNAUTHORIZED")

	r := e.as(e.Token, "POST", path, map[string]any{"input": "hello test"})
	r.want(t, 200, "")
	var ans struct {
		RunID  string `json:"run_id"`
		Output string `json:"output"`
		Usage  struct {
			Iterations int `json:"iterations"`
		} `json:"usage"`
	}
	r.json(t, &ans)
	if ans.RunID == "" || ans.Output == "" || ans.Usage.Iterations != 1 {
		t.Fatalf("test answer %s", r.Body)
	}
	if r.Header.Get("X-RateLimit-Limit") != "10" {
		t.Fatalf("X-RateLimit-Limit %q", r.Header.Get("X-RateLimit-Limit"))
	}
	rec := e.waitRun(ans.RunID)
	if rec.Status != "test" || rec.Input != "hello test" || rec.Output != ans.Output {
		t.Fatalf("run record %+v", rec)
	}
	listed := e.as(e.Token, "GET", "/api/agent-endpoints/"+ep.ID()+"/runs?status=test", nil)
	if !strings.Contains(string(listed.Body), ans.RunID) {
		t.Fatalf("status=test list: %s", listed.Body)
	}
	// Streams too.
	s := e.as(e.Token, "POST", path+"?stream=true", map[string]any{"input": "hello"})
	s.want(t, 200, "")
	if !strings.HasPrefix(s.Header.Get("Content-Type"), "text/event-stream") || !strings.Contains(string(s.Body), "event: done") {
		t.Fatalf("stream %s %s", s.Header.Get("Content-Type"), s.Body)
	}
	// Empty input is the caller's mistake.
	e.as(e.Token, "POST", path, map[string]any{"input": ""}).want(t, 400, "VALIDATION_ERROR")
	// 10 per minute per endpoint: three requests are spent (a refused input counts: the limit
	// is checked first). The 4th to the 10th pass; then it refuses (at the 11th, or a little
	// later only if the machine took more than 6 s, the GCRA interval, to get there).
	for i := 4; i <= 10; i++ {
		e.as(e.Token, "POST", path, map[string]any{"input": "again"}).want(t, 200, "")
	}
	for i := 11; ; i++ {
		r = e.as(e.Token, "POST", path, map[string]any{"input": "again"})
		if r.Status != 200 || i == 20 {
			break
		}
	}
	r.want(t, 429, "RATE_LIMIT_EXCEEDED")
	if r.Header.Get("Retry-After") == "" || r.Header.Get("X-RateLimit-Remaining") != "0" ||
		!strings.HasPrefix(r.errMessage(), "Rate limit exceeded. Try again in ") {
		t.Fatalf("429 headers %v message %q", r.Header, r.errMessage())
	}
	// The run route has its own budget.
	e.run(ep, map[string]any{"input": "public run"}).want(t, 200, "")
}

func TestEndpoint_Stats(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	ep := e.endpoint(nil)
	e.seedRuns(ep.ID(), 6)
	r := e.as(e.Token, "GET", "/api/agent-endpoints/"+ep.ID()+"/stats?minutes=120&bucket=3600", nil)
	r.want(t, 200, "")
	var out struct {
		Buckets []struct {
			Runs   int `json:"runs"`
			Errors int `json:"errors"`
		} `json:"buckets"`
	}
	r.json(t, &out)
	runs, errs := 0, 0
	for _, b := range out.Buckets {
		runs, errs = runs+b.Runs, errs+b.Errors
	}
	if runs != 6 || errs != 2 {
		t.Fatalf("stats: %d runs %d errors: %s", runs, errs, r.Body)
	}
	for _, q := range []string{"?minutes=0", "?minutes=x", "?bucket=1", "?bucket=100000"} {
		e.as(e.Token, "GET", "/api/agent-endpoints/"+ep.ID()+"/stats"+q, nil).want(t, 400, "VALIDATION_ERROR")
	}
}
