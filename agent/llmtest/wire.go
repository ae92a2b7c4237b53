package llmtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// created is the fixed "created" timestamp of every answer, so transcripts are stable.
const created = 1700000000

type wireRequest struct {
	Model               string          `json:"model"`
	Messages            []wireMessage   `json:"messages"`
	Tools               []wireTool      `json:"tools"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	Temperature         *float64        `json:"temperature"`
	ResponseFormat      *wireRespFormat `json:"response_format"`
	Stream              bool            `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

type wireMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	ToolCalls  []wireToolCall  `json:"tool_calls"`
	ToolCallID string          `json:"tool_call_id"`
}

type wireToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type wireTool struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
	} `json:"function"`
}

type wireRespFormat struct {
	Type       string `json:"type"`
	JSONSchema *struct {
		Name   string          `json:"name"`
		Strict *bool           `json:"strict"`
		Schema json.RawMessage `json:"schema"`
	} `json:"json_schema"`
}

func decodeRequest(body []byte) (Request, error) {
	var wr wireRequest
	if err := json.Unmarshal(body, &wr); err != nil {
		return Request{}, err
	}
	req := Request{
		Model:         wr.Model,
		MaxTokens:     wr.MaxTokens,
		MaxCompletion: wr.MaxCompletionTokens,
		Temperature:   wr.Temperature,
		Stream:        wr.Stream,
		IncludeUsage:  wr.StreamOptions != nil && wr.StreamOptions.IncludeUsage,
		Body:          body,
	}
	for _, m := range wr.Messages {
		content, err := decodeContent(m.Content)
		if err != nil {
			return Request{}, fmt.Errorf("message content: %w", err)
		}
		msg := Message{Role: m.Role, Content: content, ToolCallID: m.ToolCallID}
		for _, tc := range m.ToolCalls {
			msg.ToolCalls = append(msg.ToolCalls, ToolCall{ID: tc.ID, Name: tc.Function.Name, Arguments: tc.Function.Arguments})
		}
		req.Messages = append(req.Messages, msg)
	}
	for _, t := range wr.Tools {
		req.Tools = append(req.Tools, Tool{Type: t.Type, Name: t.Function.Name, Description: t.Function.Description, Parameters: t.Function.Parameters})
	}
	if rf := wr.ResponseFormat; rf != nil {
		req.ResponseFormat = &ResponseFormat{Type: rf.Type}
		if rf.JSONSchema != nil {
			req.ResponseFormat.Name = rf.JSONSchema.Name
			req.ResponseFormat.Strict = rf.JSONSchema.Strict
			req.ResponseFormat.JSONSchema = rf.JSONSchema.Schema
		}
	}
	return req, nil
}

// decodeContent accepts a string, null, or an array of content parts (text parts joined).
func decodeContent(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", err
	}
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

// writeError answers an OpenAI error document.
func writeError(w http.ResponseWriter, status int, message string, retryAfter time.Duration) {
	if message == "" {
		message = http.StatusText(status)
	}
	typ := "invalid_request_error"
	switch {
	case status == http.StatusTooManyRequests:
		typ = "rate_limit_error"
	case status == http.StatusUnauthorized:
		typ = "authentication_error"
	case status >= 500:
		typ = "server_error"
	}
	if retryAfter > 0 {
		w.Header().Set("Retry-After-Ms", strconv.FormatInt(retryAfter.Milliseconds(), 10))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(errorJSON(status, typ, message))
}

func errorJSON(status int, typ, message string) []byte {
	b := []byte(`{"error":{"message":`)
	b = appendString(b, message)
	b = append(b, `,"type":`...)
	b = appendString(b, typ)
	b = append(b, `,"param":null,"code":`...)
	b = appendString(b, strconv.Itoa(status))
	return append(b, "}}"...)
}

// answer writes one reply.
type answer struct {
	s     *Server
	w     http.ResponseWriter
	ctx   context.Context
	req   *Request
	reply Reply

	rc      *http.ResponseController
	written int // data chunks written
	prefix  []byte
	suffix  []byte
	out     []byte // reused chunk buffer (the writer copies it)
}

func (a *answer) run() {
	if a.reply.Delay > 0 && !a.wait(a.reply.Delay) {
		return
	}
	if a.reply.Status != 0 && a.reply.Status != http.StatusOK && a.reply.ErrorAfter == 0 {
		writeError(a.w, a.reply.Status, a.reply.Text, a.reply.RetryAfter)
		a.flush()
		a.s.markStarted(a.req)
		return
	}
	if a.req.Stream {
		a.stream()
		return
	}
	a.complete()
}

// wait pauses for d; false when the request ended first (then an abort is recorded).
func (a *answer) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-a.ctx.Done():
		a.gone()
		return false
	}
}

// gone records an abort when the client, not the server's Close, ended the request.
func (a *answer) gone() {
	if a.s.base.Err() == nil {
		a.s.markAborted(a.req)
	}
}

func (a *answer) flush() {
	if a.rc == nil {
		a.rc = http.NewResponseController(a.w)
	}
	_ = a.rc.Flush()
}

// content returns the content deltas of the reply.
func (a *answer) content() []string {
	if len(a.reply.Chunks) > 0 {
		return a.reply.Chunks
	}
	return SplitWords(a.reply.Text)
}

func (a *answer) finishReason() string {
	switch {
	case a.reply.FinishReason != "":
		return a.reply.FinishReason
	case len(a.reply.ToolCalls) > 0:
		return "tool_calls"
	}
	return "stop"
}

func (a *answer) usage(completion int) Usage {
	if a.reply.Usage != nil {
		return *a.reply.Usage
	}
	return Usage{Prompt: promptTokens(a.req.Messages), Completion: completion}
}

func promptTokens(msgs []Message) int {
	n := 0
	for _, m := range msgs {
		n += 1 + len(strings.Fields(m.Content))
		for _, tc := range m.ToolCalls {
			n += len(strings.Fields(tc.Arguments))
		}
	}
	return n
}

func callID(tc ToolCall, i int) string {
	if tc.ID != "" {
		return tc.ID
	}
	return "call_" + strconv.Itoa(i+1)
}

// stream writes the reply as chat.completion.chunk SSE events.
func (a *answer) stream() {
	h := a.w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	a.w.WriteHeader(http.StatusOK)

	a.prefix = append(a.prefix, `data: {"id":"chatcmpl-llmtest-`...)
	a.prefix = strconv.AppendInt(a.prefix, int64(a.req.Seq), 10)
	a.prefix = append(a.prefix, `","object":"chat.completion.chunk","created":`...)
	a.prefix = strconv.AppendInt(a.prefix, created, 10)
	a.prefix = append(a.prefix, `,"model":`...)
	a.prefix = appendString(a.prefix, a.req.Model)
	a.prefix = append(a.prefix, `,"system_fingerprint":"fp_llmtest","choices":[`...)
	if a.req.IncludeUsage {
		a.suffix = []byte("],\"usage\":null}\n\n")
	} else {
		a.suffix = []byte("]}\n\n")
	}

	content := a.content()
	calls := a.reply.ToolCalls
	completion := 0

	// The first chunk carries the role; when there is no text it also opens the first call,
	// as OpenAI does.
	mergeCall := len(content) == 0 && len(calls) > 0
	delta := make([]byte, 0, 256)
	if mergeCall {
		delta = append(delta, `{"role":"assistant","content":null,"tool_calls":[`...)
		delta = appendCallHeader(delta, 0, callID(calls[0], 0), calls[0].Name)
		delta = append(delta, `],"refusal":null}`...)
	} else {
		delta = append(delta, `{"role":"assistant","content":"","refusal":null}`...)
	}
	if !a.choice(delta, "") {
		return
	}
	for _, c := range content {
		delta = append(delta[:0], `{"content":`...)
		delta = appendString(delta, c)
		delta = append(delta, '}')
		if !a.choice(delta, "") {
			return
		}
		completion++
	}
	for i, tc := range calls {
		if i > 0 || !mergeCall {
			delta = append(delta[:0], `{"tool_calls":[`...)
			delta = appendCallHeader(delta, i, callID(tc, i), tc.Name)
			delta = append(delta, "]}"...)
			if !a.choice(delta, "") {
				return
			}
		}
		for _, piece := range SplitArguments(tc.Arguments) {
			delta = append(delta[:0], `{"tool_calls":[{"index":`...)
			delta = strconv.AppendInt(delta, int64(i), 10)
			delta = append(delta, `,"function":{"arguments":`...)
			delta = appendString(delta, piece)
			delta = append(delta, "}}]}"...)
			if !a.choice(delta, "") {
				return
			}
			completion++
		}
	}
	if a.reply.Hang {
		<-a.ctx.Done()
		a.gone()
		return
	}
	if !a.choice([]byte("{}"), a.finishReason()) {
		return
	}
	if a.req.IncludeUsage {
		u := a.usage(completion)
		b := append(make([]byte, 0, len(a.prefix)+128), a.prefix...)
		b = append(b, `],"usage":{"prompt_tokens":`...)
		b = strconv.AppendInt(b, int64(u.Prompt), 10)
		b = append(b, `,"completion_tokens":`...)
		b = strconv.AppendInt(b, int64(u.Completion), 10)
		b = append(b, `,"total_tokens":`...)
		b = strconv.AppendInt(b, int64(u.Prompt+u.Completion), 10)
		b = append(b, "}}\n\n"...)
		if !a.chunk(b) {
			return
		}
	}
	if a.broken() {
		return
	}
	if _, err := a.w.Write([]byte("data: [DONE]\n\n")); err != nil {
		a.gone()
		return
	}
	a.flush()
}

func appendCallHeader(b []byte, index int, id, name string) []byte {
	b = append(b, `{"index":`...)
	b = strconv.AppendInt(b, int64(index), 10)
	b = append(b, `,"id":`...)
	b = appendString(b, id)
	b = append(b, `,"type":"function","function":{"name":`...)
	b = appendString(b, name)
	return append(b, `,"arguments":""}}`...)
}

// choice writes one chunk with a single choice carrying delta.
func (a *answer) choice(delta []byte, finish string) bool {
	b := append(a.out[:0], a.prefix...)
	b = append(b, `{"index":0,"delta":`...)
	b = append(b, delta...)
	b = append(b, `,"logprobs":null,"finish_reason":`...)
	if finish == "" {
		b = append(b, "null"...)
	} else {
		b = appendString(b, finish)
	}
	b = append(b, '}')
	b = append(b, a.suffix...)
	a.out = b
	return a.chunk(b)
}

// broken ends the stream when ErrorAfter chunks have been written; it reports whether it did.
func (a *answer) broken() bool {
	if a.reply.ErrorAfter <= 0 || a.written < a.reply.ErrorAfter {
		return false
	}
	if a.reply.Status != 0 && a.reply.Status != http.StatusOK {
		// Text was the streamed content, so the message is the status text.
		msg := http.StatusText(a.reply.Status)
		b := append([]byte("data: "), errorJSON(a.reply.Status, "server_error", msg)...)
		_, _ = a.w.Write(append(b, "\n\n"...))
		a.flush()
		return true
	}
	a.drop()
	return true
}

// drop closes the connection without ending the response properly.
func (a *answer) drop() {
	a.flush()
	conn, _, err := a.rc.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // the documented way to abort a response
	}
	_ = conn.Close()
}

// chunk writes one data chunk (pacing, breaking and detecting a gone client); false stops.
func (a *answer) chunk(b []byte) bool {
	if a.broken() {
		return false
	}
	if a.written > 0 && a.reply.Pace > 0 && !a.wait(a.reply.Pace) {
		return false
	}
	if a.ctx.Err() != nil {
		a.gone()
		return false
	}
	if _, err := a.w.Write(b); err != nil {
		a.gone()
		return false
	}
	a.flush()
	a.written++
	if a.written == 1 {
		a.s.markStarted(a.req)
	}
	return true
}

// complete writes the reply as one chat.completion document.
func (a *answer) complete() {
	content := a.content()
	text := strings.Join(content, "")
	completion := len(content)
	type fn struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	}
	type call struct {
		ID       string `json:"id"`
		Type     string `json:"type"`
		Function fn     `json:"function"`
	}
	var calls []call
	for i, tc := range a.reply.ToolCalls {
		calls = append(calls, call{ID: callID(tc, i), Type: "function", Function: fn{tc.Name, tc.Arguments}})
		completion += len(SplitArguments(tc.Arguments))
	}
	var contentField *string
	if text != "" || len(calls) == 0 {
		contentField = &text
	}
	u := a.usage(completion)
	doc := map[string]any{
		"id":                 "chatcmpl-llmtest-" + strconv.Itoa(a.req.Seq),
		"object":             "chat.completion",
		"created":            created,
		"model":              a.req.Model,
		"system_fingerprint": "fp_llmtest",
		"choices": []map[string]any{{
			"index": 0,
			"message": map[string]any{
				"role": "assistant", "content": contentField, "refusal": nil,
				"tool_calls": calls,
			},
			"logprobs":      nil,
			"finish_reason": a.finishReason(),
		}},
		"usage": map[string]int{
			"prompt_tokens": u.Prompt, "completion_tokens": u.Completion, "total_tokens": u.Prompt + u.Completion,
		},
	}
	if len(calls) == 0 {
		delete(doc["choices"].([]map[string]any)[0]["message"].(map[string]any), "tool_calls")
	}
	body, err := json.Marshal(doc)
	if err != nil {
		writeError(a.w, http.StatusInternalServerError, err.Error(), 0)
		return
	}
	a.w.Header().Set("Content-Type", "application/json")
	if a.reply.Hang {
		a.w.WriteHeader(http.StatusOK)
		a.flush()
		a.s.markStarted(a.req)
		<-a.ctx.Done()
		a.gone()
		return
	}
	if a.reply.ErrorAfter > 0 {
		a.w.WriteHeader(http.StatusOK)
		_, _ = a.w.Write(body[:len(body)/2])
		a.s.markStarted(a.req)
		a.drop()
		return
	}
	_, _ = a.w.Write(body)
	a.flush()
	a.s.markStarted(a.req)
}

// SplitWords splits s into word deltas: every piece but the first starts with the
// whitespace before its word, so the pieces concatenate back to s.
func SplitWords(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	start := 0
	for i := 1; i < len(s); i++ {
		if isSpace(s[i]) && !isSpace(s[i-1]) {
			out = append(out, s[start:i])
			start = i
		}
	}
	return append(out, s[start:])
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

// argPiece is the size of the pieces tool-call arguments are streamed in.
const argPiece = 8

// SplitArguments splits tool-call arguments into pieces of about 8 bytes, at rune
// boundaries, as they are streamed.
func SplitArguments(s string) []string {
	var out []string
	for len(s) > 0 {
		n := min(argPiece, len(s))
		for n < len(s) && !utf8.RuneStart(s[n]) {
			n++
		}
		out = append(out, s[:n])
		s = s[n:]
	}
	return out
}

// appendString appends s as a JSON string (invalid UTF-8 becomes U+FFFD, as encoding/json).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
