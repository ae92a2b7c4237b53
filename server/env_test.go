package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/agentgate/agentgate/agent"
	"github.com/agentgate/agentgate/agent/llmtest"
	"github.com/agentgate/agentgate/db"
	"github.com/agentgate/agentgate/db/dbtest"
)

// testEnv is one gateway on a real listener (127.0.0.1:0) over a real database, with the
// scripted LLM standing in for OpenAI.
type testEnv struct {
	tb    testing.TB
	kind  string
	Store *db.Store
	Srv   *Server
	URL   string
	LLM   *llmtest.Server
	Token string // JWT of the default user
	User  string // id of the default user
	// HTTP is this gateway's own client: its pooled connections never reach another test's
	// gateway that was given the same port after this one closed.
	HTTP *http.Client
}

// envOption changes the server config before start.
type envOption func(*Config)

// newEnv starts a gateway on the given database kind ("sqlite" or "postgres").
func newEnv(tb testing.TB, kind string, opts ...envOption) *testEnv {
	tb.Helper()
	store := dbtest.Open(tb, kind)
	return startEnv(tb, kind, store, opts...)
}

func startEnv(tb testing.TB, kind string, store *db.Store, opts ...envOption) *testEnv {
	tb.Helper()
	llm := llmtest.New(tb)
	cfg := DefaultConfig()
	cfg.JWTSecret = []byte("test-secret-test-secret-test-secret")
	cfg.AllowPrivateEgress = true
	cfg.DemoPace = 0
	cfg.ModelOptions.DemoPace = 0
	cfg.Providers = agent.DefaultProviders()
	p := cfg.Providers["openai"]
	p.BaseURL, p.APIKey = llm.URL(), "sk-test"
	cfg.Providers["openai"] = p
	cfg.DrainTimeout = 5 * time.Second
	for _, o := range opts {
		o(&cfg)
	}
	srv, url, client := serveTest(tb, cfg, store)
	e := &testEnv{tb: tb, kind: kind, Store: store, Srv: srv, URL: url, LLM: llm, HTTP: client}
	e.Token, e.User = e.register("owner@example.com")
	return e
}

// serveTest starts a gateway with cfg over store on 127.0.0.1:0, shut down when the test
// ends, and returns it with its base URL and an HTTP client of its own. The tests of the
// package share one process, so a closed gateway's port is soon another's: a client shared
// by all of them (http.DefaultClient) pools connections by host:port, and one to a gateway
// still draining would carry a later test's request there (a valid key refused: the slug
// belongs to another database's endpoint).
func serveTest(tb testing.TB, cfg Config, store *db.Store) (*Server, string, *http.Client) {
	tb.Helper()
	client := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	tb.Cleanup(client.CloseIdleConnections) // after the gateway's Shutdown below
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("AGENTGATE_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	srv, err := New(cfg, store, log)
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ln) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-served
		// Nothing may outlive the gateway: a connection it kept serving would answer a later
		// test's requests once that test's listener gets the same port.
		if socks := openServerSockets(ln.Addr().(*net.TCPAddr).Port); len(socks) > 0 {
			tb.Errorf("connections still open on the gateway's side after Shutdown: %v", socks)
		}
	})
	return srv, "http://" + ln.Addr().String(), client
}

// forKinds runs fn once per available database kind, as parallel subtests.
func forKinds(t *testing.T, fn func(t *testing.T, kind string)) {
	t.Helper()
	for _, kind := range dbtest.Kinds(t) {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			fn(t, kind)
		})
	}
}

// response is a finished HTTP exchange.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) json(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		tb.Fatalf("decode %s: %v", r.Body, err)
	}
}

// errCode returns the code of an error envelope ("" if the body is not one).
func (r response) errCode() string {
	var env struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &env)
	return env.Error.Code
}

func (r response) errMessage() string {
	var env struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(r.Body, &env)
	return env.Error.Message
}

// do sends a request; body may be nil, a string/[]byte (sent as is) or a value (JSON).
// headers alternate name, value.
func (e *testEnv) do(method, path string, body any, headers ...string) response {
	e.tb.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.tb.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.URL+path, rd)
	if err != nil {
		e.tb.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := e.HTTP.Do(req)
	if err != nil {
		e.tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		e.tb.Fatalf("%s %s: read: %v", method, path, err)
	}
	return response{Status: res.StatusCode, Header: res.Header, Body: raw}
}

// as sends a request with a JWT.
func (e *testEnv) as(token, method, path string, body any, headers ...string) response {
	e.tb.Helper()
	return e.do(method, path, body, append([]string{"Authorization", "Bearer " + token}, headers...)...)
}

// register creates a user and returns its token and id.
func (e *testEnv) register(email string) (token, id string) {
	e.tb.Helper()
	r := e.do("POST", "/api/auth/register", map[string]string{"email": email, "password": "correct horse"})
	if r.Status != 201 {
		e.tb.Fatalf("register: %d %s", r.Status, r.Body)
	}
	var out struct {
		Token string `json:"token"`
		User  struct {
			ID string `json:"id"`
		} `json:"user"`
	}
	r.json(e.tb, &out)
	return out.Token, out.User.ID
}

// createdEndpoint is the answer to POST /api/agent-endpoints.
type createdEndpoint struct {
	Endpoint map[string]any `json:"endpoint"`
	APIKey   string         `json:"api_key"`
	RunURL   string         `json:"run_url"`
}

func (c createdEndpoint) ID() string   { return c.Endpoint["id"].(string) }
func (c createdEndpoint) Slug() string { return c.Endpoint["slug"].(string) }

// endpoint creates an endpoint for the default user; fields override the basic body.
func (e *testEnv) endpoint(fields map[string]any) createdEndpoint {
	e.tb.Helper()
	body := map[string]any{"name": "summarizer", "system_prompt": "You are a concise summarizer."}
	for k, v := range fields {
		body[k] = v
	}
	r := e.as(e.Token, "POST", "/api/agent-endpoints", body)
	if r.Status != 201 {
		e.tb.Fatalf("create endpoint: %d %s", r.Status, r.Body)
	}
	var out createdEndpoint
	r.json(e.tb, &out)
	return out
}

// run posts input to an endpoint with its key.
func (e *testEnv) run(ep createdEndpoint, body any, headers ...string) response {
	e.tb.Helper()
	return e.do("POST", "/api/run/"+ep.Slug(), body, append([]string{"Authorization", "Bearer " + ep.APIKey}, headers...)...)
}

// openStream starts a streaming run and returns the live response (caller closes Body).
func (e *testEnv) openStream(ctx context.Context, ep createdEndpoint, body string) *http.Response {
	e.tb.Helper()
	req, err := http.NewRequestWithContext(ctx, "POST", e.URL+"/api/run/"+ep.Slug(), strings.NewReader(body))
	if err != nil {
		e.tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+ep.APIKey)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Content-Type", "application/json")
	res, err := e.HTTP.Do(req)
	if err != nil {
		e.tb.Fatal(err)
	}
	return res
}
