package llmtest_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/ssestream"
	"go.uber.org/goleak"

	"github.com/agentgate/agentgate/agent/llmtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newClient returns an openai-go client for s with no retries; its idle connections are
// closed when the test ends.
func newClient(tb testing.TB, s *llmtest.Server, opts ...option.RequestOption) openai.Client {
	tb.Helper()
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	tb.Cleanup(hc.CloseIdleConnections)
	base := []option.RequestOption{
		option.WithBaseURL(s.URL()), option.WithAPIKey("sk-test"),
		option.WithHTTPClient(hc), option.WithMaxRetries(0),
	}
	return openai.NewClient(append(base, opts...)...)
}

func streamParams(user string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:         "gpt-test",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage(user)},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	}
}

func TestStreamWithOpenAIClient(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		reply      llmtest.Reply
		wantDeltas []string
		wantCalls  []llmtest.ToolCall
		wantFinish string
		wantUsage  [2]int64
	}{
		{
			name:       "text by words",
			reply:      llmtest.Reply{Text: "Hello there, big world"},
			wantDeltas: []string{"Hello", " there,", " big", " world"},
			wantFinish: "stop",
			wantUsage:  [2]int64{3, 4}, // "say it" + 1 message; 4 chunks
		},
		{
			name:       "explicit chunks and usage",
			reply:      llmtest.Reply{Chunks: []string{"a", "b c", "\n"}, Usage: &llmtest.Usage{Prompt: 11, Completion: 7}, FinishReason: "length"},
			wantDeltas: []string{"a", "b c", "\n"},
			wantFinish: "length",
			wantUsage:  [2]int64{11, 7},
		},
		{
			name: "two tool calls with split arguments",
			reply: llmtest.Reply{ToolCalls: []llmtest.ToolCall{
				{ID: "call_a", Name: "srv__weather", Arguments: `{"city":"Paris","unit":"celsius"}`},
				{Name: "srv__time", Arguments: `{"tz":"Europe/Paris — été"}`},
			}},
			wantCalls: []llmtest.ToolCall{
				{ID: "call_a", Name: "srv__weather", Arguments: `{"city":"Paris","unit":"celsius"}`},
				{ID: "call_2", Name: "srv__time", Arguments: `{"tz":"Europe/Paris — été"}`},
			},
			wantFinish: "tool_calls",
			wantUsage:  [2]int64{3, 5 + 4},
		},
		{
			name: "text then a tool call",
			reply: llmtest.Reply{Text: "Let me check.", ToolCalls: []llmtest.ToolCall{
				{ID: "c1", Name: "lookup", Arguments: `{}`},
			}},
			wantDeltas: []string{"Let", " me", " check."},
			wantCalls:  []llmtest.ToolCall{{ID: "c1", Name: "lookup", Arguments: `{}`}},
			wantFinish: "tool_calls",
			wantUsage:  [2]int64{3, 4},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := llmtest.New(t)
			s.Script(tt.reply)
			client := newClient(t, s)
			stream := client.Chat.Completions.NewStreaming(context.Background(), streamParams("say it"))
			defer stream.Close()
			var acc openai.ChatCompletionAccumulator
			var deltas []string
			var usage openai.CompletionUsage
			for stream.Next() {
				chunk := stream.Current()
				acc.AddChunk(chunk)
				for _, c := range chunk.Choices {
					if c.Delta.Content != "" {
						deltas = append(deltas, c.Delta.Content)
					}
				}
				if chunk.JSON.Usage.Valid() {
					usage = chunk.Usage
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatalf("stream: %v", err)
			}
			if fmt.Sprint(deltas) != fmt.Sprint(tt.wantDeltas) {
				t.Errorf("deltas = %q, want %q", deltas, tt.wantDeltas)
			}
			if len(acc.Choices) != 1 {
				t.Fatalf("choices = %d", len(acc.Choices))
			}
			msg := acc.Choices[0].Message
			if msg.Content != strings.Join(tt.wantDeltas, "") {
				t.Errorf("content = %q", msg.Content)
			}
			var calls []llmtest.ToolCall
			for _, tc := range msg.ToolCalls {
				calls = append(calls, llmtest.ToolCall{ID: tc.ID, Name: tc.Function.Name, Arguments: tc.Function.Arguments})
			}
			if fmt.Sprint(calls) != fmt.Sprint(tt.wantCalls) {
				t.Errorf("tool calls = %+v, want %+v", calls, tt.wantCalls)
			}
			if got := acc.Choices[0].FinishReason; got != tt.wantFinish {
				t.Errorf("finish = %q, want %q", got, tt.wantFinish)
			}
			if usage.PromptTokens != tt.wantUsage[0] || usage.CompletionTokens != tt.wantUsage[1] ||
				usage.TotalTokens != tt.wantUsage[0]+tt.wantUsage[1] {
				t.Errorf("usage = %+v, want %v", usage, tt.wantUsage)
			}
		})
	}
}

// rawStream posts body and returns the data lines of the SSE answer, as sent.
func rawStream(tb testing.TB, s *llmtest.Server, body string) (http.Header, []string) {
	tb.Helper()
	res, err := http.Post(s.URL()+"/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		tb.Fatalf("status %d", res.StatusCode)
	}
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatal(err)
	}
	var lines []string
	for _, ev := range strings.Split(string(raw), "\n\n") {
		if ev == "" {
			continue
		}
		if !strings.HasPrefix(ev, "data: ") || strings.Contains(ev, "\n") {
			tb.Fatalf("malformed event %q", ev)
		}
		lines = append(lines, strings.TrimPrefix(ev, "data: "))
	}
	if !strings.HasSuffix(string(raw), "\n\n") {
		tb.Fatalf("stream does not end with a blank line: %q", raw)
	}
	return res.Header, lines
}

func TestRawWireText(t *testing.T) {
	t.Parallel()
	s := llmtest.New(t)
	s.Script(llmtest.Reply{Text: `Hi "you"`})
	h, lines := rawStream(t, s, `{"model":"m1","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x y"}]}`)
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("content type %q", ct)
	}
	const pre = `{"id":"chatcmpl-llmtest-1","object":"chat.completion.chunk","created":1700000000,"model":"m1","system_fingerprint":"fp_llmtest","choices":[`
	want := []string{
		pre + `{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}`,
		pre + `{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}],"usage":null}`,
		pre + `{"index":0,"delta":{"content":" \"you\""},"logprobs":null,"finish_reason":null}],"usage":null}`,
		pre + `{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}`,
		pre + `],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`,
		`[DONE]`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("wire:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	for _, l := range lines[:len(lines)-1] {
		if !json.Valid([]byte(l)) {
			t.Errorf("invalid JSON %s", l)
		}
	}
}

func TestRawWireToolCalls(t *testing.T) {
	t.Parallel()
	s := llmtest.New(t)
	s.Script(llmtest.Reply{ToolCalls: []llmtest.ToolCall{
		{ID: "call_1", Name: "a__one", Arguments: `{"q":"first question"}`},
		{ID: "call_2", Name: "b__two", Arguments: `{"n":12345678901}`},
	}})
	// Without include_usage: no usage member and no usage chunk.
	_, lines := rawStream(t, s, `{"model":"m","stream":true,"messages":[{"role":"user","content":"go"}]}`)
	type call struct {
		Index    *int    `json:"index"`
		ID       *string `json:"id"`
		Type     *string `json:"type"`
		Function struct {
			Name      *string `json:"name"`
			Arguments *string `json:"arguments"`
		} `json:"function"`
	}
	type chunk struct {
		Choices []struct {
			Delta struct {
				Role      *string `json:"role"`
				Content   *string `json:"content"`
				ToolCalls []call  `json:"tool_calls"`
			} `json:"delta"`
			FinishReason *string `json:"finish_reason"`
		} `json:"choices"`
		Usage *json.RawMessage `json:"usage"`
	}
	if lines[len(lines)-1] != "[DONE]" {
		t.Fatalf("last line %q", lines[len(lines)-1])
	}
	var chunks []chunk
	for _, l := range lines[:len(lines)-1] {
		if strings.Contains(l, `"usage"`) {
			t.Errorf("usage without include_usage: %s", l)
		}
		var c chunk
		if err := json.Unmarshal([]byte(l), &c); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		if len(c.Choices) != 1 {
			t.Fatalf("chunk without one choice: %s", l)
		}
		chunks = append(chunks, c)
	}
	first := chunks[0].Choices[0].Delta
	if first.Role == nil || *first.Role != "assistant" || first.Content != nil || len(first.ToolCalls) != 1 {
		t.Errorf("first chunk: %s", lines[0])
	}
	args := map[int]string{}
	pieces := map[int]int{}
	seen := map[int]bool{}
	for i, c := range chunks[:len(chunks)-1] {
		d := c.Choices[0].Delta
		if i > 0 && d.Role != nil {
			t.Errorf("role repeated in chunk %d", i)
		}
		if c.Choices[0].FinishReason != nil {
			t.Errorf("finish_reason before the last chunk: %s", lines[i])
		}
		for _, tc := range d.ToolCalls {
			if tc.Index == nil {
				t.Fatalf("tool call without index: %s", lines[i])
			}
			idx := *tc.Index
			header := tc.ID != nil
			if header != (tc.Function.Name != nil) || header != (tc.Type != nil) {
				t.Errorf("id, type and name must come together: %s", lines[i])
			}
			if header {
				if seen[idx] {
					t.Errorf("call %d: id/name repeated", idx)
				}
				seen[idx] = true
				if *tc.Type != "function" {
					t.Errorf("type %q", *tc.Type)
				}
			} else if !seen[idx] {
				t.Errorf("call %d: arguments before id/name", idx)
			}
			if tc.Function.Arguments != nil {
				args[idx] += *tc.Function.Arguments
				if *tc.Function.Arguments != "" {
					pieces[idx]++
				}
			}
		}
	}
	if args[0] != `{"q":"first question"}` || args[1] != `{"n":12345678901}` {
		t.Errorf("arguments = %v", args)
	}
	if pieces[0] < 2 || pieces[1] < 2 {
		t.Errorf("arguments not split: %v", pieces)
	}
	last := chunks[len(chunks)-1].Choices[0]
	if last.FinishReason == nil || *last.FinishReason != "tool_calls" {
		t.Errorf("last chunk: %s", lines[len(lines)-2])
	}
}

func TestNonStreaming(t *testing.T) {
	t.Parallel()
	s := llmtest.New(t)
	s.Script(
		llmtest.Reply{Text: "plain answer"},
		llmtest.Reply{ToolCalls: []llmtest.ToolCall{{ID: "c9", Name: "t", Arguments: `{"a":1}`}}},
	)
	client := newClient(t, s)
	params := openai.ChatCompletionNewParams{Model: "m", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("one two")}}
	res, err := client.Chat.Completions.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if res.Choices[0].Message.Content != "plain answer" || res.Choices[0].FinishReason != "stop" ||
		res.Usage.PromptTokens != 3 || res.Usage.CompletionTokens != 2 || res.Object != "chat.completion" {
		t.Errorf("answer = %+v", res)
	}
	res, err = client.Chat.Completions.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	tcs := res.Choices[0].Message.ToolCalls
	if len(tcs) != 1 || tcs[0].ID != "c9" || tcs[0].Function.Arguments != `{"a":1}` || res.Choices[0].FinishReason != "tool_calls" {
		t.Errorf("tool answer = %+v", res.Choices[0])
	}
	if r := s.Requests(); len(r) != 2 || r[0].Stream {
		t.Errorf("requests = %+v", r)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		reply   llmtest.Reply
		opts    []llmtest.Option
		check   func(t *testing.T, err error)
		partial string // text received before the error
	}{
		{
			name:  "status",
			reply: llmtest.Reply{Status: 429, Text: "slow down"},
			check: func(t *testing.T, err error) {
				var apiErr *openai.Error
				if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Message != "slow down" || apiErr.Type != "rate_limit_error" {
					t.Errorf("err = %#v", err)
				}
			},
		},
		{
			name:  "wrong key",
			opts:  []llmtest.Option{llmtest.WithAPIKey("right")},
			reply: llmtest.Reply{Text: "never"},
			check: func(t *testing.T, err error) {
				var apiErr *openai.Error
				if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 {
					t.Errorf("err = %#v", err)
				}
			},
		},
		{
			name:    "dropped connection",
			reply:   llmtest.Reply{Text: "one two three four", ErrorAfter: 3},
			partial: "one two",
			check: func(t *testing.T, err error) {
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("err = %v, want unexpected EOF", err)
				}
			},
		},
		{
			name:    "in-band error",
			reply:   llmtest.Reply{Text: "one two three", ErrorAfter: 2, Status: 500},
			partial: "one",
			check: func(t *testing.T, err error) {
				var sErr *ssestream.StreamError
				if !errors.As(err, &sErr) || !strings.Contains(string(sErr.Event.Data), "Internal Server Error") {
					t.Errorf("err = %v", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := llmtest.New(t, tt.opts...)
			s.Script(tt.reply)
			client := newClient(t, s)
			stream := client.Chat.Completions.NewStreaming(context.Background(), streamParams("q"))
			defer stream.Close()
			var got strings.Builder
			for stream.Next() {
				for _, c := range stream.Current().Choices {
					got.WriteString(c.Delta.Content)
				}
			}
			tt.check(t, stream.Err())
			if got.String() != tt.partial {
				t.Errorf("partial = %q, want %q", got.String(), tt.partial)
			}
		})
	}
}

func TestAbortDetected(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		reply llmtest.Reply
	}{
		{"hang after text", llmtest.Reply{Text: "partial", Hang: true}},
		{"hang before text", llmtest.Reply{Hang: true}},
		{"slow pace", llmtest.Reply{Text: strings.Repeat("w ", 1000), Pace: time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := llmtest.New(t)
			s.Script(tt.reply)
			client := newClient(t, s)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			stream := client.Chat.Completions.NewStreaming(ctx, streamParams("q"))
			defer stream.Close()
			wait, stop := context.WithTimeout(context.Background(), 10*time.Second)
			defer stop()
			if _, err := s.WaitStarted(wait); err != nil {
				t.Fatal("never started")
			}
			cancel()
			for stream.Next() {
			}
			r, err := s.WaitAborted(wait)
			if err != nil {
				t.Fatal("abort not detected")
			}
			if !r.Aborted || r.Seq != 1 {
				t.Errorf("aborted request = %+v", r)
			}
			if reqs := s.Requests(); !reqs[0].Aborted {
				t.Error("Requests() does not show the abort")
			}
		})
	}
}

func TestDelayAbort(t *testing.T) {
	t.Parallel()
	s := llmtest.New(t)
	arrived := make(chan struct{})
	s.Handle(func(llmtest.Request) llmtest.Reply {
		close(arrived) // called before the delay starts
		return llmtest.Reply{Text: "late", Delay: time.Hour}
	})
	client := newClient(t, s)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		stream := client.Chat.Completions.NewStreaming(ctx, streamParams("q"))
		for stream.Next() {
		}
		errc <- stream.Err()
		_ = stream.Close()
	}()
	wait, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	select {
	case <-arrived:
	case <-wait.Done():
		t.Fatal("request never arrived")
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
	if _, err := s.WaitAborted(wait); err != nil {
		t.Fatal("abort during delay not detected")
	}
}

func TestRecordsRequest(t *testing.T) {
	t.Parallel()
	s := llmtest.New(t)
	client := newClient(t, s)
	params := openai.ChatCompletionNewParams{
		Model: "gpt-x",
		Messages: []openai.ChatCompletionMessageParamUnion{
			openai.SystemMessage("be brief"),
			openai.UserMessage("weather?"),
			{OfAssistant: &openai.ChatCompletionAssistantMessageParam{ToolCalls: []openai.ChatCompletionMessageToolCallUnionParam{{
				OfFunction: &openai.ChatCompletionMessageFunctionToolCallParam{ID: "c1", Function: openai.ChatCompletionMessageFunctionToolCallFunctionParam{Name: "w", Arguments: `{"c":"P"}`}},
			}}}},
			openai.ToolMessage("sunny", "c1"),
		},
		Tools: []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{
			Name: "w", Description: openai.String("weather"), Parameters: openai.FunctionParameters{"type": "object"},
		})},
		MaxTokens:      openai.Int(77),
		Temperature:    openai.Float(0.3),
		ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONObject: &openai.ResponseFormatJSONObjectParam{}},
		StreamOptions:  openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	}
	stream := client.Chat.Completions.NewStreaming(context.Background(), params)
	for stream.Next() {
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	reqs := s.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	want := []llmtest.Message{
		{Role: "system", Content: "be brief"},
		{Role: "user", Content: "weather?"},
		{Role: "assistant", ToolCalls: []llmtest.ToolCall{{ID: "c1", Name: "w", Arguments: `{"c":"P"}`}}},
		{Role: "tool", Content: "sunny", ToolCallID: "c1"},
	}
	if fmt.Sprint(r.Messages) != fmt.Sprint(want) {
		t.Errorf("messages = %+v", r.Messages)
	}
	if r.Model != "gpt-x" || r.MaxTokens == nil || *r.MaxTokens != 77 || r.Temperature == nil || *r.Temperature != 0.3 ||
		!r.Stream || !r.IncludeUsage || r.Authorization != "Bearer sk-test" ||
		r.ResponseFormat == nil || r.ResponseFormat.Type != "json_object" || r.Aborted || r.Seq != 1 {
		t.Errorf("request = %+v", r)
	}
	if len(r.Tools) != 1 || r.Tools[0].Name != "w" || r.Tools[0].Type != "function" || r.Tools[0].Description != "weather" ||
		string(r.Tools[0].Parameters) != `{"type":"object"}` {
		t.Errorf("tools = %+v", r.Tools)
	}
}

func TestHandleAndDefault(t *testing.T) {
	t.Parallel()
	s := llmtest.New(t)
	client := newClient(t, s)
	ask := func(q string) string {
		res, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
			Model: "m", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(q)},
		})
		if err != nil {
			t.Error(err)
			return ""
		}
		return res.Choices[0].Message.Content
	}
	if got := ask("echo me"); got != "echo me" {
		t.Errorf("default = %q", got)
	}
	s.Handle(func(r llmtest.Request) llmtest.Reply { return llmtest.Reply{Text: "re: " + r.LastUser()} })
	s.Script(llmtest.Reply{Text: "scripted"})
	if got := ask("a"); got != "scripted" {
		t.Errorf("script first: %q", got)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			q := fmt.Sprintf("q%d", i)
			if got := ask(q); got != "re: "+q {
				t.Errorf("handler: %q for %q", got, q)
			}
		})
	}
	wg.Wait()
	if n := len(s.Requests()); n != 22 {
		t.Errorf("%d requests recorded", n)
	}
}

func TestModels(t *testing.T) {
	t.Parallel()
	s := llmtest.New(t, llmtest.WithModel("bench-model"))
	client := newClient(t, s)
	page, err := client.Models.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 1 || page.Data[0].ID != "bench-model" {
		t.Errorf("models = %+v", page.Data)
	}
}

func TestStartAndCloseWithOpenStream(t *testing.T) {
	t.Parallel()
	s, err := llmtest.Start("127.0.0.1:0", func(llmtest.Request) llmtest.Reply {
		return llmtest.Reply{Text: "x", Hang: true}
	}, llmtest.WithoutRecording())
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.Post(s.URL()+"/chat/completions", "application/json",
		strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	line, err := bufio.NewReader(res.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "data: ") {
		t.Fatalf("first line %q, %v", line, err)
	}
	s.Close() // must not wait for the client
	s.Close() // idempotent
	if _, err := io.ReadAll(res.Body); err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Logf("body after close: %v", err)
	}
	if n := len(s.Requests()); n != 0 {
		t.Errorf("WithoutRecording kept %d requests", n)
	}
}

func TestSplitHelpers(t *testing.T) {
	t.Parallel()
	words := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"one", []string{"one"}},
		{" lead  two\nthree ", []string{" lead", "  two", "\nthree", " "}},
	}
	for _, tt := range words {
		got := llmtest.SplitWords(tt.in)
		if fmt.Sprint(got) != fmt.Sprint(tt.want) || strings.Join(got, "") != tt.in {
			t.Errorf("SplitWords(%q) = %q", tt.in, got)
		}
	}
	for _, in := range []string{"", "{}", `{"k":"ééééééé"}`, strings.Repeat("x", 17)} {
		got := llmtest.SplitArguments(in)
		if strings.Join(got, "") != in {
			t.Errorf("SplitArguments(%q) = %q", in, got)
		}
		for _, p := range got {
			if !utf8.ValidString(p) {
				t.Errorf("piece %q splits a rune", p)
			}
		}
	}
}

// BenchmarkStream measures the server side of one streamed 200-word answer with usage,
// read by a plain HTTP client.
func BenchmarkStream(b *testing.B) {
	text := strings.TrimSpace(strings.Repeat("token ", 200))
	s := llmtest.New(b, llmtest.WithoutRecording())
	s.Handle(func(llmtest.Request) llmtest.Reply { return llmtest.Reply{Text: text} })
	hc := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	b.Cleanup(hc.CloseIdleConnections)
	const body = `{"model":"m","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"go"}]}`
	b.ReportAllocs()
	for b.Loop() {
		res, err := hc.Post(s.URL()+"/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if err != nil || n == 0 {
			b.Fatal(err)
		}
	}
}
