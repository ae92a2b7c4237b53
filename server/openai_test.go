package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/agentgate/agentgate/agent/llmtest"
	"github.com/agentgate/agentgate/stream"
)

// oaiClient is the official Go SDK pointed at the gateway's facade with key.
func (e *testEnv) oaiClient(key string) openai.Client {
	e.tb.Helper()
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	e.tb.Cleanup(hc.CloseIdleConnections)
	return openai.NewClient(option.WithBaseURL(e.URL+"/v1/"), option.WithAPIKey(key),
		option.WithMaxRetries(0), option.WithHTTPClient(hc))
}

func chatParams(model string, msgs ...openai.ChatCompletionMessageParamUnion) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{Model: model, Messages: msgs}
}

// sdkError returns err as the SDK's API error, failing the test otherwise.
func sdkError(tb testing.TB, err error) *openai.Error {
	tb.Helper()
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		tb.Fatalf("error %v (%T), want *openai.Error", err, err)
	}
	return apiErr
}

func TestOpenAI_Completion(t *testing.T) {
	t.Parallel()
	forKinds(t, func(t *testing.T, kind string) {
		e := newEnv(t, kind)
		ep := e.endpoint(map[string]any{"name": "facade"})
		e.LLM.Script(llmtest.Reply{Text: "Paris is the capital of France.", Usage: &llmtest.Usage{Prompt: 31, Completion: 7}})
		client := e.oaiClient(ep.APIKey)
		res, err := client.Chat.Completions.New(context.Background(), chatParams(ep.Slug(),
			openai.SystemMessage("ignored: the endpoint has its own"),
			openai.UserMessage("first question"),
			openai.AssistantMessage("first answer"),
			openai.UserMessage("What is the capital of France?")))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Choices) != 1 || res.Choices[0].Message.Content != "Paris is the capital of France." ||
			res.Choices[0].FinishReason != "stop" || res.Choices[0].Message.Role != "assistant" {
			t.Fatalf("choices %+v", res.Choices)
		}
		if res.Object != "chat.completion" || res.Model != ep.Slug() || !strings.HasPrefix(res.ID, "run_") || res.Created == 0 {
			t.Fatalf("completion %s", res.RawJSON())
		}
		if res.Usage.PromptTokens != 31 || res.Usage.CompletionTokens != 7 || res.Usage.TotalTokens != 38 {
			t.Fatalf("usage %+v", res.Usage)
		}
		// The last user message is the run input; the endpoint's own prompt is used.
		req := e.LLM.Requests()[0]
		if req.LastUser() != "What is the capital of France?" || len(req.Messages) != 2 || req.Messages[0].Content != "You are a concise summarizer." {
			t.Fatalf("upstream messages %+v", req.Messages)
		}
		// Logged like any run, under the id the caller got.
		rec := e.waitRun(res.ID)
		if rec.Status != "success" || rec.Input != "What is the capital of France?" || rec.Output != "Paris is the capital of France." ||
			rec.TokensInput != 31 || rec.EndpointID != ep.ID() {
			t.Fatalf("record %+v", rec)
		}
	})
}

func TestOpenAI_Stream(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	ep := e.endpoint(map[string]any{"name": "facade"})
	const answer = "The quick brown fox jumps over the lazy dog."
	e.LLM.Script(llmtest.Reply{Text: answer, Usage: &llmtest.Usage{Prompt: 12, Completion: 9}})
	client := e.oaiClient(ep.APIKey)
	params := chatParams(ep.Slug(), openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{
		openai.TextContentPart("Tell me"), openai.TextContentPart("about the fox."),
	}))
	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	s := client.Chat.Completions.NewStreaming(context.Background(), params)
	var (
		acc     openai.ChatCompletionAccumulator
		deltas  []string
		usageAt = -1
		chunks  int
	)
	for s.Next() {
		chunk := s.Current()
		acc.AddChunk(chunk)
		if chunk.Object != "chat.completion.chunk" || chunk.Model != ep.Slug() || !strings.HasPrefix(chunk.ID, "run_") {
			t.Fatalf("chunk %s", chunk.RawJSON())
		}
		if chunk.JSON.Usage.Valid() && chunk.Usage.TotalTokens > 0 {
			if len(chunk.Choices) != 0 {
				t.Fatalf("usage chunk has choices: %s", chunk.RawJSON())
			}
			usageAt = chunks
		}
		for _, ch := range chunk.Choices {
			if ch.Delta.Content != "" {
				deltas = append(deltas, ch.Delta.Content)
			}
		}
		chunks++
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(deltas, "") != answer || len(deltas) < 3 {
		t.Fatalf("deltas %q, want %q streamed in pieces", deltas, answer)
	}
	if len(acc.Choices) != 1 || acc.Choices[0].Message.Content != answer || acc.Choices[0].FinishReason != "stop" {
		t.Fatalf("accumulated %+v", acc.Choices)
	}
	if usageAt != chunks-1 || acc.Usage.PromptTokens != 12 || acc.Usage.CompletionTokens != 9 || acc.Usage.TotalTokens != 21 {
		t.Fatalf("usage chunk at %d of %d, usage %+v", usageAt, chunks, acc.Usage)
	}
	if got := e.LLM.Requests()[0].LastUser(); got != "Tell me\nabout the fox." {
		t.Fatalf("text parts gave input %q", got)
	}
	if rec := e.waitRun(acc.ID); rec.Status != "success" || rec.Output != answer {
		t.Fatalf("record %+v", rec)
	}
}

// rawChat posts a chat request by hand and returns the response (caller closes the body).
func (e *testEnv) rawChat(ctx context.Context, key, body string, headers ...string) *http.Response {
	e.tb.Helper()
	req, err := http.NewRequestWithContext(ctx, "POST", e.URL+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		e.tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := e.HTTP.Do(req)
	if err != nil {
		e.tb.Fatal(err)
	}
	return res
}

// TestOpenAI_StreamWire checks the chunk stream byte by byte: no Accept: text/event-stream
// needed, the role chunk first, content deltas, the finish chunk, no usage chunk unless asked,
// then data: [DONE].
func TestOpenAI_StreamWire(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	ep := e.endpoint(map[string]any{"name": "wire"})
	e.LLM.Script(llmtest.Reply{Chunks: []string{"Hel", "lo"}})
	res := e.rawChat(context.Background(), ep.APIKey, `{"model":"`+ep.Slug()+`","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
		"Accept", "application/json")
	defer res.Body.Close()
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") || !strings.HasPrefix(res.Header.Get("X-Run-Id"), "run_") {
		t.Fatalf("status %d headers %v", res.StatusCode, res.Header)
	}
	var data []string
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			data = append(data, d)
		} else if line != "" && !strings.HasPrefix(line, ":") {
			t.Fatalf("unexpected line %q", line)
		}
	}
	if len(data) != 5 || data[4] != "[DONE]" {
		t.Fatalf("data lines %q", data)
	}
	type chunk struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Choices []struct {
			Index int `json:"index"`
			Delta struct {
				Role    *string `json:"role"`
				Content *string `json:"content"`
			} `json:"delta"`
			FinishReason *string `json:"finish_reason"`
		} `json:"choices"`
		Usage json.RawMessage `json:"usage"`
	}
	var cs []chunk
	for _, d := range data[:4] {
		var c chunk
		if err := json.Unmarshal([]byte(d), &c); err != nil || c.Object != "chat.completion.chunk" || c.ID != res.Header.Get("X-Run-Id") ||
			len(c.Choices) != 1 || c.Usage != nil {
			t.Fatalf("chunk %s (%v)", d, err)
		}
		cs = append(cs, c)
	}
	first := cs[0].Choices[0]
	if first.Delta.Role == nil || *first.Delta.Role != "assistant" || first.FinishReason != nil {
		t.Fatalf("first chunk %s", data[0])
	}
	if *cs[1].Choices[0].Delta.Content != "Hel" || *cs[2].Choices[0].Delta.Content != "lo" || cs[2].Choices[0].FinishReason != nil {
		t.Fatalf("content chunks %q", data[1:3])
	}
	if fin := cs[3].Choices[0]; fin.FinishReason == nil || *fin.FinishReason != "stop" || fin.Delta.Content != nil {
		t.Fatalf("finish chunk %s", data[3])
	}
}

// TestOpenAI_JSONEndpoint: a json endpoint answers its validated JSON, fences stripped, whole
// (a corrective retry must not leak the rejected attempt into the stream).
func TestOpenAI_JSONEndpoint(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	ep := e.jsonEndpoint("facade-json")
	client := e.oaiClient(ep.APIKey)
	const want = `{"city":"Paris","country":"France"}`

	e.LLM.Script(llmtest.Reply{Text: "```json\n{\"city\": \"Paris\", \"country\": \"France\"}\n```"})
	res, err := client.Chat.Completions.New(context.Background(), chatParams(ep.Slug(), openai.UserMessage("Paris?")))
	if err != nil || res.Choices[0].Message.Content != want {
		t.Fatalf("completion %v %v", res, err)
	}

	e.LLM.Script(llmtest.Reply{Text: `{"city": "Paris"}`}, llmtest.Reply{Text: `{"city": "Paris", "country": "France"}`})
	s := client.Chat.Completions.NewStreaming(context.Background(), chatParams(ep.Slug(), openai.UserMessage("Paris?")))
	var acc openai.ChatCompletionAccumulator
	for s.Next() {
		acc.AddChunk(s.Current())
	}
	if err := s.Err(); err != nil || acc.Choices[0].Message.Content != want {
		t.Fatalf("streamed %+v %v", acc.Choices, err)
	}

	// Two invalid answers: VALIDATION_ERROR as OpenAI's 400, before any chunk.
	e.LLM.Script(llmtest.Reply{Text: "Paris."}, llmtest.Reply{Text: "Paris!"})
	s = client.Chat.Completions.NewStreaming(context.Background(), chatParams(ep.Slug(), openai.UserMessage("Paris?")))
	for s.Next() {
		t.Fatalf("chunk after a failed run: %s", s.Current().RawJSON())
	}
	if apiErr := sdkError(t, s.Err()); apiErr.StatusCode != 400 || apiErr.Code != "validation_error" || apiErr.Type != "invalid_request_error" {
		t.Fatalf("error %+v", apiErr)
	}
}

func TestOpenAI_Errors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	ep := e.endpoint(map[string]any{"name": "guarded"})
	limited := e.endpoint(map[string]any{"name": "limited", "rate_limit_per_minute": 1})
	public := e.endpoint(map[string]any{"name": "open", "auth_mode": "public"})
	ctx := context.Background()
	user := openai.UserMessage("hi")

	tests := []struct {
		name   string
		key    string
		params openai.ChatCompletionNewParams
		script []llmtest.Reply
		stream bool
		status int    // 0: success
		typ    string // error type
		code   string
		param  string
	}{
		{name: "bad key", key: "aek_00000000000000000000000000000000", params: chatParams(ep.Slug(), user), status: 401, typ: "invalid_request_error", code: "invalid_api_key"},
		{name: "bad key streaming", key: "aek_00000000000000000000000000000000", params: chatParams(ep.Slug(), user), stream: true, status: 401, typ: "invalid_request_error", code: "invalid_api_key"},
		{name: "another endpoint's key", key: public.APIKey, params: chatParams(ep.Slug(), user), status: 401, typ: "invalid_request_error", code: "invalid_api_key"},
		{name: "unknown model", key: ep.APIKey, params: chatParams("gpt-4o", user), status: 404, typ: "invalid_request_error", code: "model_not_found", param: "model"},
		{name: "no user message", key: ep.APIKey, params: chatParams(ep.Slug(), openai.SystemMessage("s")), status: 400, typ: "invalid_request_error", code: "validation_error", param: "messages"},
		{name: "empty user message", key: ep.APIKey, params: chatParams(ep.Slug(), openai.UserMessage(" ")), status: 400, typ: "invalid_request_error", code: "validation_error", param: "messages"},
		{name: "two choices", key: ep.APIKey, params: func() openai.ChatCompletionNewParams {
			p := chatParams(ep.Slug(), user)
			p.N = openai.Int(2)
			return p
		}(), status: 400, typ: "invalid_request_error", param: "n", code: "validation_error"},
		{name: "public needs no key", key: "", params: chatParams(public.Slug(), user), script: []llmtest.Reply{{Text: "ok"}}},
		{name: "upstream failure", key: ep.APIKey, params: chatParams(ep.Slug(), user), script: []llmtest.Reply{{Status: 400, Text: "bad model"}}, status: 502, typ: "server_error", code: "llm_error"},
		{name: "upstream failure streaming", key: ep.APIKey, params: chatParams(ep.Slug(), user), stream: true, script: []llmtest.Reply{{Status: 400, Text: "bad model"}}, status: 502, typ: "server_error", code: "llm_error"},
		{name: "rate limit: first passes", key: limited.APIKey, params: chatParams(limited.Slug(), user), script: []llmtest.Reply{{Text: "ok"}}},
		{name: "rate limit: second refused", key: limited.APIKey, params: chatParams(limited.Slug(), user), status: 429, typ: "requests", code: "rate_limit_exceeded"},
	}
	for _, tt := range tests { // in order: the scripted replies and the rate limit are shared
		e.LLM.Script(tt.script...)
		client := e.oaiClient(tt.key)
		var err error
		var content string
		if tt.stream {
			s := client.Chat.Completions.NewStreaming(ctx, tt.params)
			var acc openai.ChatCompletionAccumulator
			for s.Next() {
				acc.AddChunk(s.Current())
			}
			err = s.Err()
			if len(acc.Choices) > 0 {
				content = acc.Choices[0].Message.Content
			}
		} else {
			var res *openai.ChatCompletion
			res, err = client.Chat.Completions.New(ctx, tt.params)
			if err == nil {
				content = res.Choices[0].Message.Content
			}
		}
		if tt.status == 0 {
			if err != nil || content == "" {
				t.Fatalf("%s: %q %v", tt.name, content, err)
			}
			continue
		}
		apiErr := sdkError(t, err)
		if apiErr.StatusCode != tt.status || apiErr.Type != tt.typ || apiErr.Code != tt.code || apiErr.Param != tt.param || apiErr.Message == "" {
			t.Fatalf("%s: got %d %s", tt.name, apiErr.StatusCode, apiErr.RawJSON())
		}
	}

	// The error document has exactly OpenAI's four fields, with JSON nulls where unset.
	for _, tt := range []struct{ path, method, body, key string }{
		{"/v1/chat/completions", "POST", `{"model":`, ep.APIKey},
		{"/v1/chat/completions", "POST", `{"model":"` + ep.Slug() + `","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`, ep.APIKey},
		{"/v1/chat/completions", "POST", `{"model":"` + ep.Slug() + `","messages":[{"role":"user","content":"hi"}]}`, ""},
		{"/v1/nowhere", "GET", "", ep.APIKey},
	} {
		var body any
		if tt.body != "" {
			body = tt.body
		}
		r := e.do(tt.method, tt.path, body, "Authorization", "Bearer "+tt.key)
		var env map[string]map[string]any
		if err := json.Unmarshal(r.Body, &env); err != nil || len(env) != 1 || len(env["error"]) != 4 {
			t.Fatalf("%s %s: %d %s", tt.method, tt.path, r.Status, r.Body)
		}
		for _, f := range []string{"message", "type", "param", "code"} {
			if _, ok := env["error"][f]; !ok {
				t.Fatalf("%s: no %s in %s", tt.path, f, r.Body)
			}
		}
		if r.Status < 400 {
			t.Fatalf("%s: status %d", tt.path, r.Status)
		}
	}
}

// TestOpenAI_StreamBreaksAfterTokens: an upstream failure after content has streamed arrives
// in-band (OpenAI's error object on a data line), which the SDK raises.
func TestOpenAI_StreamBreaksAfterTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	ep := e.endpoint(map[string]any{"name": "breaks"})
	e.LLM.Script(llmtest.Reply{Chunks: []string{"Half", " an", " answer"}, ErrorAfter: 3, Status: 500})
	client := e.oaiClient(ep.APIKey)
	s := client.Chat.Completions.NewStreaming(context.Background(), chatParams(ep.Slug(), openai.UserMessage("hi")))
	var got strings.Builder
	for s.Next() {
		for _, ch := range s.Current().Choices {
			got.WriteString(ch.Delta.Content)
		}
	}
	err := s.Err()
	if err == nil || !strings.Contains(err.Error(), "llm_error") || got.String() == "" {
		t.Fatalf("content %q err %v", got.String(), err)
	}
}

// TestOpenAI_DisconnectCancels: a streaming facade client that goes away cancels the run,
// like the native stream.
func TestOpenAI_DisconnectCancels(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	ep := e.endpoint(map[string]any{"name": "hangs"})
	e.LLM.Script(llmtest.Reply{Chunks: []string{"Partial", " answer"}, Hang: true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := e.rawChat(ctx, ep.APIKey, `{"model":"`+ep.Slug()+`","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	runID := res.Header.Get("X-Run-Id")
	br := bufio.NewReader(res.Body)
	var seen strings.Builder
	for !strings.Contains(seen.String(), `" answer"`) {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v (so far %q)", err, seen.String())
		}
		seen.WriteString(line)
	}
	cancel()
	res.Body.Close()
	if _, err := e.LLM.WaitAborted(ctxTimeout(t, 5*time.Second)); err != nil {
		t.Fatalf("upstream not aborted: %v", err)
	}
	rec := e.waitRun(runID)
	if rec.Status != "cancelled" || rec.Output != "Partial answer" || rec.ErrorCode != stream.CodeUnavailable {
		t.Fatalf("record %+v", rec)
	}
}

func TestOpenAI_Models(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	ep := e.endpoint(map[string]any{"name": "listed"})
	other := e.endpoint(map[string]any{"name": "other"})
	ctx := context.Background()

	client := e.oaiClient(ep.APIKey)
	page, err := client.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 1 || page.Data[0].ID != ep.Slug() || page.Data[0].Object != "model" || page.Data[0].OwnedBy != "agentgate" || page.Data[0].Created == 0 {
		t.Fatalf("models %s", page.RawJSON())
	}
	m, err := client.Models.Get(ctx, ep.Slug())
	if err != nil || m.ID != ep.Slug() {
		t.Fatalf("get model %v %v", m, err)
	}
	for _, tt := range []struct {
		name, key string
		get       string
		status    int
	}{
		{"no key", "", "", 401},
		{"wrong key", "aek_00000000000000000000000000000000", "", 401},
		{"a JWT is not a key", e.Token, "", 401},
		{"another endpoint's model", ep.APIKey, other.Slug(), 401},
		{"unknown model", ep.APIKey, "nope", 404},
	} {
		var err error
		c := e.oaiClient(tt.key)
		if tt.get != "" {
			_, err = c.Models.Get(ctx, tt.get)
		} else {
			_, err = c.Models.List(ctx)
		}
		if apiErr := sdkError(t, err); apiErr.StatusCode != tt.status {
			t.Fatalf("%s: %d %s", tt.name, apiErr.StatusCode, apiErr.RawJSON())
		}
	}
	// A regenerated key lists the endpoint; the old one no longer does.
	r := e.as(e.Token, "POST", "/api/agent-endpoints/"+ep.ID()+"/regenerate-key", nil)
	var k struct {
		APIKey string `json:"api_key"`
	}
	r.json(t, &k)
	if _, err := client.Models.List(ctx); sdkError(t, err).StatusCode != 401 {
		t.Fatal("old key still lists the endpoint")
	}
	renewed := e.oaiClient(k.APIKey)
	if page, err := renewed.Models.List(ctx); err != nil || page.Data[0].ID != ep.Slug() {
		t.Fatalf("new key: %v %v", page, err)
	}
}
