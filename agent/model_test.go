package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/agentgate/agentgate/agent"
	"github.com/agentgate/agentgate/agent/llmtest"
	"github.com/agentgate/agentgate/stream"
)

// mustModel returns a model talking to s with key "sk-test"; retries are fast because
// scripted errors carry Retry-After-Ms.
func mustModel(tb testing.TB, s *llmtest.Server) agent.Model {
	tb.Helper()
	hc := agent.NewHTTPClient()
	tb.Cleanup(hc.CloseIdleConnections)
	ms := agent.NewModels(agent.DefaultProviders(), agent.ModelOptions{HTTPClient: hc})
	m, err := ms.For(agent.ProviderCustom, s.URL(), "sk-test")
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func userRequest(text string) agent.Request {
	return agent.Request{
		Model:       "gpt-4o-mini",
		Messages:    []agent.Message{{Role: agent.RoleSystem, Content: "sys"}, {Role: agent.RoleUser, Content: text}},
		MaxTokens:   256,
		Temperature: 0.3,
	}
}

func llmErr(tb testing.TB, err error) *stream.Error {
	tb.Helper()
	var se *stream.Error
	if !errors.As(err, &se) || se.Code != stream.CodeLLM {
		tb.Fatalf("err = %v, want LLM_ERROR", err)
	}
	return se
}

func TestCompleteStreams(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		replies   []llmtest.Reply
		wantText  []string
		wantCalls []agent.ToolCall
		finish    string
		usage     [2]int64
		requests  int
		wantErr   string // substring of the LLM_ERROR message
	}{
		{
			name:     "text deltas in order",
			replies:  []llmtest.Reply{{Chunks: []string{"Hel", "lo", ", ", "wor", "ld"}, Usage: &llmtest.Usage{Prompt: 12, Completion: 5}}},
			wantText: []string{"Hel", "lo", ", ", "wor", "ld"},
			finish:   "stop", usage: [2]int64{12, 5}, requests: 1,
		},
		{
			name: "two parallel tool calls with split arguments",
			replies: []llmtest.Reply{{ToolCalls: []llmtest.ToolCall{
				{ID: "call_w", Name: "srv__weather", Arguments: `{"city":"Paris","days":[1,2,3]}`},
				{ID: "call_t", Name: "srv__time", Arguments: `{"zone":"Europe/Zürich"}`},
			}, Usage: &llmtest.Usage{Prompt: 40, Completion: 9}}},
			wantCalls: []agent.ToolCall{
				{ID: "call_w", Name: "srv__weather", Arguments: `{"city":"Paris","days":[1,2,3]}`},
				{ID: "call_t", Name: "srv__time", Arguments: `{"zone":"Europe/Zürich"}`},
			},
			finish: "tool_calls", usage: [2]int64{40, 9}, requests: 1,
		},
		{
			name:     "length finish",
			replies:  []llmtest.Reply{{Text: "cut short", FinishReason: "length", Usage: &llmtest.Usage{Prompt: 1, Completion: 2}}},
			wantText: []string{"cut", " short"},
			finish:   "length", usage: [2]int64{1, 2}, requests: 1,
		},
		{
			name: "429 retried then success",
			replies: []llmtest.Reply{
				{Status: 429, Text: "rate limited", RetryAfter: time.Millisecond},
				{Text: "fine now", Usage: &llmtest.Usage{Prompt: 3, Completion: 2}},
			},
			wantText: []string{"fine", " now"}, finish: "stop", usage: [2]int64{3, 2}, requests: 2,
		},
		{
			name: "500 retried then success",
			replies: []llmtest.Reply{
				{Status: 500, RetryAfter: time.Millisecond},
				{Text: "ok", Usage: &llmtest.Usage{Prompt: 3, Completion: 1}},
			},
			wantText: []string{"ok"}, finish: "stop", usage: [2]int64{3, 1}, requests: 2,
		},
		{
			name: "429 until retries run out",
			replies: []llmtest.Reply{
				{Status: 429, Text: "slow down", RetryAfter: time.Millisecond},
				{Status: 429, Text: "slow down", RetryAfter: time.Millisecond},
				{Status: 429, Text: "slow down", RetryAfter: time.Millisecond},
				{Text: "never reached"},
			},
			wantErr: "upstream answered 429: slow down", requests: 3,
		},
		{
			name:    "400 not retried",
			replies: []llmtest.Reply{{Status: 400, Text: "bad model"}, {Text: "never reached"}},
			wantErr: "upstream answered 400: bad model", requests: 1,
		},
		{
			name:    "key redacted from upstream message",
			replies: []llmtest.Reply{{Status: 401, Text: "Incorrect API key provided: sk-test."}},
			wantErr: "upstream answered 401: Incorrect API key provided: [redacted].", requests: 1,
		},
		{
			name: "stream broken after tokens is not retried",
			replies: []llmtest.Reply{
				{Text: "one two three four", ErrorAfter: 3},
				{Text: "must not be used"},
			},
			wantText: []string{"one", " two"},
			wantErr:  "upstream stream broke", requests: 1,
			usage: [2]int64{10, 2}, // estimated: ("sys"+"ask" = 6 chars + 3)/4 = 2, + 4 per message; 2 deltas
		},
		{
			name: "500 mid-stream is not retried",
			replies: []llmtest.Reply{
				{Text: "alpha beta gamma", ErrorAfter: 2, Status: 500},
				{Text: "must not be used"},
			},
			wantText: []string{"alpha"},
			wantErr:  "upstream stream failed: Internal Server Error", requests: 1,
			usage: [2]int64{10, 1}, // estimated as above; 1 delta
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := llmtest.New(t)
			s.Script(tt.replies...)
			m := mustModel(t, s)
			var deltas []string
			resp, err := m.Complete(context.Background(), userRequest("ask"), func(d string) { deltas = append(deltas, d) })
			if tt.wantErr != "" {
				if se := llmErr(t, err); !strings.Contains(se.Message, tt.wantErr) {
					t.Errorf("message %q, want %q", se.Message, tt.wantErr)
				}
				if strings.Contains(err.Error(), "sk-test") {
					t.Errorf("key leaked: %v", err)
				}
			} else if err != nil {
				t.Fatalf("Complete: %v", err)
			}
			if fmt.Sprint(deltas) != fmt.Sprint(tt.wantText) {
				t.Errorf("deltas = %q, want %q", deltas, tt.wantText)
			}
			if resp.Content != strings.Join(tt.wantText, "") {
				t.Errorf("content = %q", resp.Content)
			}
			if fmt.Sprint(resp.ToolCalls) != fmt.Sprint(tt.wantCalls) {
				t.Errorf("calls = %+v, want %+v", resp.ToolCalls, tt.wantCalls)
			}
			if resp.FinishReason != tt.finish {
				t.Errorf("finish = %q, want %q", resp.FinishReason, tt.finish)
			}
			if resp.TokensInput != tt.usage[0] || resp.TokensOutput != tt.usage[1] {
				t.Errorf("usage = %d/%d, want %v", resp.TokensInput, resp.TokensOutput, tt.usage)
			}
			if n := len(s.Requests()); n != tt.requests {
				t.Errorf("%d requests, want %d", n, tt.requests)
			}
		})
	}
}

func TestCompleteRequestMapping(t *testing.T) {
	t.Parallel()
	schema := json.RawMessage(`{"type":"object","properties":{"answer":{"type":"string"}}}`)
	base := agent.Request{
		Model: "gpt-4o-mini",
		Messages: []agent.Message{
			{Role: agent.RoleSystem, Content: "sys"},
			{Role: agent.RoleUser, Content: "hi"},
			{Role: agent.RoleAssistant, ToolCalls: []agent.ToolCall{{ID: "c1", Name: "s__t", Arguments: `{"x":1}`}}},
			{Role: agent.RoleTool, Content: "result", ToolCallID: "c1"},
		},
		Tools: []agent.ToolSpec{
			{Name: "s__t", Description: "a tool", Parameters: json.RawMessage(`{"type":"object","properties":{"x":{"type":"integer"}},"required":["x"]}`)},
			{Name: "s__bare"},
		},
		MaxTokens:   300,
		Temperature: 0.7,
	}
	tests := []struct {
		name  string
		edit  func(*agent.Request)
		check func(t *testing.T, r llmtest.Request)
	}{
		{
			name: "messages, tools, limits",
			check: func(t *testing.T, r llmtest.Request) {
				want := []llmtest.Message{
					{Role: "system", Content: "sys"},
					{Role: "user", Content: "hi"},
					{Role: "assistant", ToolCalls: []llmtest.ToolCall{{ID: "c1", Name: "s__t", Arguments: `{"x":1}`}}},
					{Role: "tool", Content: "result", ToolCallID: "c1"},
				}
				if fmt.Sprint(r.Messages) != fmt.Sprint(want) {
					t.Errorf("messages = %+v", r.Messages)
				}
				if len(r.Tools) != 2 || r.Tools[0].Description != "a tool" || r.Tools[0].Type != "function" {
					t.Fatalf("tools = %+v", r.Tools)
				}
				var p0, p1 map[string]any
				_ = json.Unmarshal(r.Tools[0].Parameters, &p0)
				_ = json.Unmarshal(r.Tools[1].Parameters, &p1)
				if fmt.Sprint(p0["required"]) != "[x]" {
					t.Errorf("params = %s", r.Tools[0].Parameters)
				}
				if p1["type"] != "object" || p1["properties"] == nil {
					t.Errorf("empty schema sent as %s", r.Tools[1].Parameters)
				}
				if r.MaxTokens == nil || *r.MaxTokens != 300 || r.MaxCompletion != nil {
					t.Errorf("max_tokens = %v / %v", r.MaxTokens, r.MaxCompletion)
				}
				if r.Temperature == nil || *r.Temperature != 0.7 {
					t.Errorf("temperature = %v", r.Temperature)
				}
				if !r.Stream || !r.IncludeUsage || r.ResponseFormat != nil || r.Model != "gpt-4o-mini" {
					t.Errorf("request = %+v", r)
				}
				if r.Authorization != "Bearer sk-test" {
					t.Errorf("authorization = %q", r.Authorization)
				}
				for name := range r.Header {
					if strings.HasPrefix(name, "X-Stainless-") {
						t.Errorf("the SDK's telemetry header %s reached the provider", name)
					}
				}
				if r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Accept") == "" {
					t.Errorf("headers %v", r.Header)
				}
			},
		},
		{
			name: "json object format",
			edit: func(r *agent.Request) { r.Format = agent.FormatJSONObject },
			check: func(t *testing.T, r llmtest.Request) {
				if r.ResponseFormat == nil || r.ResponseFormat.Type != "json_object" {
					t.Errorf("response_format = %+v", r.ResponseFormat)
				}
			},
		},
		{
			name: "json schema format",
			edit: func(r *agent.Request) { r.Format, r.Schema = agent.FormatJSONSchema, schema },
			check: func(t *testing.T, r llmtest.Request) {
				rf := r.ResponseFormat
				if rf == nil || rf.Type != "json_schema" || rf.Name != "output" || rf.Strict == nil || *rf.Strict {
					t.Fatalf("response_format = %+v", rf)
				}
				var got, want any
				_ = json.Unmarshal(rf.JSONSchema, &got)
				_ = json.Unmarshal(schema, &want)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("schema = %s", rf.JSONSchema)
				}
			},
		},
		{
			name: "reasoning model",
			edit: func(r *agent.Request) { r.Model = "o3-mini-2025-01-31" },
			check: func(t *testing.T, r llmtest.Request) {
				if r.MaxTokens != nil || r.MaxCompletion == nil || *r.MaxCompletion != 300 || r.Temperature != nil {
					t.Errorf("max_tokens=%v max_completion_tokens=%v temperature=%v", r.MaxTokens, r.MaxCompletion, r.Temperature)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := llmtest.New(t)
			req := base
			if tt.edit != nil {
				tt.edit(&req)
			}
			if _, err := mustModel(t, s).Complete(context.Background(), req, nil); err != nil {
				t.Fatal(err)
			}
			reqs := s.Requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests", len(reqs))
			}
			tt.check(t, reqs[0])
		})
	}
}

func TestCompleteCancel(t *testing.T) {
	t.Parallel()
	cause := errors.New("caller went away")
	tests := []struct {
		name    string
		reply   llmtest.Reply
		ctx     func() (context.Context, context.CancelCauseFunc)
		wantErr error
	}{
		{
			name:  "cancel after first token",
			reply: llmtest.Reply{Text: "first", Hang: true},
			ctx: func() (context.Context, context.CancelCauseFunc) {
				return context.WithCancelCause(context.Background())
			},
			wantErr: cause,
		},
		{
			name:  "cancel while waiting for headers",
			reply: llmtest.Reply{Text: "late", Delay: time.Hour},
			ctx: func() (context.Context, context.CancelCauseFunc) {
				return context.WithCancelCause(context.Background())
			},
			wantErr: cause,
		},
		{
			name:  "deadline",
			reply: llmtest.Reply{Text: "slow", Hang: true},
			ctx: func() (context.Context, context.CancelCauseFunc) {
				ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
				return ctx, func(error) { cancel() }
			},
			wantErr: context.DeadlineExceeded,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := llmtest.New(t)
			arrived := make(chan struct{})
			s.Handle(func(llmtest.Request) llmtest.Reply { close(arrived); return tt.reply })
			m := mustModel(t, s)
			ctx, cancel := tt.ctx()
			defer cancel(nil)
			wait, stop := context.WithTimeout(context.Background(), 10*time.Second)
			defer stop()
			go func() {
				// Cancel once the request is at the upstream (for the deadline case this
				// only makes the test end sooner if the timer is slow).
				select {
				case <-arrived:
					if tt.wantErr == cause {
						if tt.reply.Hang {
							_, _ = s.WaitStarted(wait)
						}
						cancel(cause)
					}
				case <-wait.Done():
				}
			}()
			var got []string
			resp, err := m.Complete(ctx, userRequest("q"), func(d string) { got = append(got, d) })
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			var se *stream.Error
			if errors.As(err, &se) {
				t.Errorf("cancellation wrapped as %v", se)
			}
			if tt.reply.Hang && resp.Content != strings.Join(got, "") {
				t.Errorf("content %q vs deltas %q", resp.Content, got)
			}
			select {
			case <-arrived:
			default:
				// The deadline passed before the request reached the upstream (a loaded
				// machine): there is no upstream request to abort.
				if tt.wantErr == context.DeadlineExceeded {
					return
				}
			}
			if r, err := s.WaitAborted(wait); err != nil || !r.Aborted {
				t.Fatalf("upstream did not see the abort: %v", err)
			}
		})
	}
}

func TestModelsFor(t *testing.T) {
	t.Parallel()
	providers := agent.ProvidersFromEnv(func(k string) string {
		return map[string]string{
			"OPENAI_API_KEY":  "sk-operator",
			"GROQ_BASE_URL":   "http://127.0.0.1:1/groq",
			"CUSTOM_BASE_URL": "",
		}[k]
	})
	ms := agent.NewModels(providers, agent.ModelOptions{})
	tests := []struct {
		name, provider, baseURL, key string
		code, msg                    string
	}{
		{name: "operator key", provider: "openai"},
		{name: "endpoint key", provider: "anthropic", key: "sk-endpoint"},
		{name: "custom without key", provider: "custom", baseURL: "http://127.0.0.1:9/v1"},
		{name: "demo", provider: "demo"},
		{name: "unknown", provider: "mistral", code: stream.CodeValidation, msg: `unknown llm_provider "mistral"`},
		{name: "missing key", provider: "anthropic", code: stream.CodeLLM,
			msg: "provider anthropic has no API key: set ANTHROPIC_API_KEY or the endpoint's llm_api_key"},
		{name: "missing key with env base URL", provider: "groq", code: stream.CodeLLM,
			msg: "provider groq has no API key: set GROQ_API_KEY or the endpoint's llm_api_key"},
		{name: "custom without URL", provider: "custom", code: stream.CodeLLM,
			msg: "provider custom has no base URL: set CUSTOM_BASE_URL or the endpoint's llm_base_url"},
		{name: "bad URL", provider: "openai", baseURL: "ftp://x", code: stream.CodeLLM,
			msg: "provider openai has an invalid base URL (want http:// or https://)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := ms.For(tt.provider, tt.baseURL, tt.key)
			if tt.code == "" {
				if err != nil || m == nil {
					t.Fatalf("For: %v", err)
				}
				again, _ := ms.For(tt.provider, tt.baseURL, tt.key)
				if again != m {
					t.Error("same provider, URL and key did not reuse the model")
				}
				return
			}
			var se *stream.Error
			if !errors.As(err, &se) || se.Code != tt.code || se.Message != tt.msg {
				t.Fatalf("err = %v, want %s: %s", err, tt.code, tt.msg)
			}
		})
	}
	if p := providers["groq"]; p.BaseURL != "http://127.0.0.1:1/groq" || p.APIKey != "" {
		t.Errorf("groq = %+v", p)
	}
	if p := providers["openai"]; p.BaseURL != "https://api.openai.com/v1" || p.APIKey != "sk-operator" || p.BaseURLEnv() != "OPENAI_BASE_URL" {
		t.Errorf("openai = %+v", p)
	}
}

func TestModelsEndpointOverrides(t *testing.T) {
	t.Parallel()
	s := llmtest.New(t, llmtest.WithAPIKey("sk-endpoint"))
	providers := agent.DefaultProviders()
	p := providers["openai"]
	p.APIKey, p.BaseURL = "sk-operator", "http://127.0.0.1:1/v1" // nothing listens there
	providers["openai"] = p
	hc := agent.NewHTTPClient()
	t.Cleanup(hc.CloseIdleConnections)
	ms := agent.NewModels(providers, agent.ModelOptions{HTTPClient: hc, MaxRetries: -1})
	m, err := ms.For("openai", s.URL(), "sk-endpoint")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := m.Complete(context.Background(), userRequest("hello"), nil)
	if err != nil || resp.Content != "hello" {
		t.Fatalf("resp = %+v, err = %v", resp, err)
	}
	// The operator's URL is used when the endpoint has none; nothing listens there and
	// with retries off there is exactly one attempt.
	m, err = ms.For("openai", "", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Complete(context.Background(), userRequest("hello"), nil)
	if se := llmErr(t, err); !strings.HasPrefix(se.Message, "upstream unreachable") {
		t.Errorf("message = %q", se.Message)
	}
}

// TestNoAmbientOpenAIKey checks that the process's OPENAI_* variables never reach another
// provider: openai-go's NewClient would read them.
func TestNoAmbientOpenAIKey(t *testing.T) {
	t.Setenv("OPENAI_API_KEY", "sk-ambient")
	t.Setenv("OPENAI_ORG_ID", "org-ambient")
	s := llmtest.New(t)
	hc := agent.NewHTTPClient()
	t.Cleanup(hc.CloseIdleConnections)
	m, err := agent.NewModels(agent.DefaultProviders(), agent.ModelOptions{HTTPClient: hc}).For("custom", s.URL(), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Complete(context.Background(), userRequest("x"), nil); err != nil {
		t.Fatal(err)
	}
	if r := s.Requests()[0]; r.Authorization != "" {
		t.Errorf("custom provider without key sent Authorization %q", r.Authorization)
	}
}

func TestCompleteConcurrent(t *testing.T) {
	t.Parallel()
	s := llmtest.New(t)
	s.Handle(func(r llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Text: "answer to " + r.LastUser()}
	})
	m := mustModel(t, s)
	const n = 32
	errc := make(chan error, n)
	for i := range n {
		go func() {
			q := fmt.Sprintf("q%d", i)
			resp, err := m.Complete(context.Background(), userRequest(q), nil)
			if err == nil && resp.Content != "answer to "+q {
				err = fmt.Errorf("got %q for %q", resp.Content, q)
			}
			errc <- err
		}()
	}
	for range n {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
	if got := len(s.Requests()); got != n {
		t.Errorf("%d requests", got)
	}
}

// TestCompleteWithoutFinishReason: a stream that ends cleanly but never said why it
// finished is an incomplete answer, not a success.
func TestCompleteWithoutFinishReason(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, `data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"half"},"finish_reason":null}]}`+"\n\n")
		_, _ = io.WriteString(w, "data: [DONE]\n\n")
	}))
	t.Cleanup(srv.Close)
	hc := agent.NewHTTPClient()
	t.Cleanup(hc.CloseIdleConnections)
	m, err := agent.NewModels(agent.DefaultProviders(), agent.ModelOptions{HTTPClient: hc}).For("custom", srv.URL+"/v1", "")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := m.Complete(context.Background(), userRequest("q"), nil)
	if se := llmErr(t, err); !strings.Contains(se.Message, "ended before the answer was complete") {
		t.Errorf("message %q", se.Message)
	}
	if resp.Content != "half" || resp.TokensOutput != 1 {
		t.Errorf("partial = %+v", resp)
	}
}

// BenchmarkComplete measures one streamed 200-word answer through openai-go and the
// scripted server (both in this process).
func BenchmarkComplete(b *testing.B) {
	text := strings.TrimSpace(strings.Repeat("token ", 200))
	s := llmtest.New(b, llmtest.WithoutRecording())
	s.Handle(func(llmtest.Request) llmtest.Reply { return llmtest.Reply{Text: text} })
	m := mustModel(b, s)
	req := userRequest("go")
	b.ReportAllocs()
	for b.Loop() {
		resp, err := m.Complete(context.Background(), req, func(string) {})
		if err != nil || resp.TokensOutput != 200 {
			b.Fatal(resp, err)
		}
	}
}

// TestRunWaitsInRunTo: while the model streams, a run's goroutine waits for the upstream's
// next bytes directly in RunTo, not below the loop, the model call and the decoder, so its
// stack can shrink to 4 KiB (thousands of runs wait like this at once; see RunTo).
func TestRunWaitsInRunTo(t *testing.T) {
	s := llmtest.New(t)
	s.Script(llmtest.Reply{Text: "first", Hang: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	token := make(chan struct{}, 1)
	done := make(chan agent.Outcome, 1)
	go func() {
		done <- agent.Run(ctx, &agent.Spec{RunID: "r1", Model: mustModel(t, s), ModelName: "m", Input: "hi", MaxToolCalls: 1},
			func(ev stream.Event) {
				if ev.Type == stream.TypeToken {
					select {
					case token <- struct{}{}:
					default:
					}
				}
			})
	}()
	<-token // the stream has begun and the upstream now holds it

	// The run's goroutine, innermost frame first: find it by RunTo and check what is below.
	var stack string
	buf := make([]byte, 1<<20)
	// The goroutine may not be back in Read yet: look again until it is (bounded).
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "agent.RunTo(") && strings.Contains(g, "Read(") {
				stack = g
			}
		}
		if stack != "" {
			break
		}
		runtime.Gosched()
	}
	if stack == "" {
		t.Fatal("no goroutine reading the upstream from RunTo")
	}
	var ours []string
	for line := range strings.SplitSeq(stack, "\n") {
		if strings.HasPrefix(line, "github.com/agentgate/agentgate/agent.") {
			ours = append(ours, line[len("github.com/agentgate/agentgate/agent."):strings.LastIndexByte(line, '(')])
		}
	}
	if want := []string{"(*sseReader).fill", "(*modelStream).wait", "RunTo", "Run"}; fmt.Sprint(ours) != fmt.Sprint(want) {
		t.Errorf("agent frames of the waiting run = %v, want %v\n%s", ours, want, stack)
	}
	cancel()
	if o := <-done; o.Status != agent.StatusCancelled {
		t.Errorf("status %q after cancel, want cancelled", o.Status)
	}
}

// panicTransport panics on every request, like a bug below the SDK would.
type panicTransport struct{}

func (panicTransport) RoundTrip(*http.Request) (*http.Response, error) { panic("transport bug") }

// TestRunSendPanic: a panic while the request is sent (on a goroutine of its own) goes on in
// the goroutine that called Run, where the server recovers it, instead of ending the process.
func TestRunSendPanic(t *testing.T) {
	ms := agent.NewModels(agent.DefaultProviders(), agent.ModelOptions{HTTPClient: &http.Client{Transport: panicTransport{}}})
	m, err := ms.For(agent.ProviderCustom, "http://127.0.0.1:1/v1", "")
	if err != nil {
		t.Fatal(err)
	}
	var got any
	func() {
		defer func() { got = recover() }()
		agent.Run(context.Background(), &agent.Spec{RunID: "r1", Model: m, ModelName: "m", Input: "hi", MaxToolCalls: 1}, func(stream.Event) {})
	}()
	if s := fmt.Sprint(got); !strings.Contains(s, "transport bug") || !strings.Contains(s, "sending the model request") {
		t.Fatalf("recovered %q, want the transport's panic", s)
	}
}
