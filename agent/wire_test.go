package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/agentgate/agentgate/agent"
)

// bodyTracker counts the response bodies its transport hands out and those closed.
type bodyTracker struct {
	base http.RoundTripper

	mu             sync.Mutex
	opened, closed int
}

func (b *bodyTracker) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := b.base.RoundTrip(r)
	if resp != nil && resp.Body != nil {
		b.mu.Lock()
		b.opened++
		b.mu.Unlock()
		resp.Body = &trackedBody{ReadCloser: resp.Body, t: b}
	}
	return resp, err
}

func (b *bodyTracker) open() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.opened - b.closed
}

type trackedBody struct {
	io.ReadCloser
	t    *bodyTracker
	once sync.Once
}

func (b *trackedBody) Close() error {
	b.once.Do(func() {
		b.t.mu.Lock()
		b.t.closed++
		b.t.mu.Unlock()
	})
	return b.ReadCloser.Close()
}

// chunkJSON is one chat.completion.chunk with a content delta and a finish reason (JSON
// null when empty).
func chunkJSON(content, finish string) string {
	f := "null"
	if finish != "" {
		f = `"` + finish + `"`
	}
	return `{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":` +
		jsonString(content) + `},"finish_reason":` + f + `}]}`
}

// jsonString quotes s as JSON, with the non-ASCII runes (all in the BMP here) as \u escapes.
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	var out strings.Builder
	for _, r := range string(b) {
		if r > 0x7f {
			fmt.Fprintf(&out, `\u%04x`, r)
			continue
		}
		out.WriteRune(r)
	}
	return out.String()
}

// TestCompleteWire serves raw SSE bodies: line ends, keep-alives, long lines, the error
// cases; every response body is closed whatever happens.
func TestCompleteWire(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("Grüße, wörld \"quoted\"\n", 120) // ~2.8 KB, > the 1 KiB read buffer
	usage := `{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}}`
	tests := []struct {
		name     string
		status   int
		ctype    string
		body     string
		content  string
		finish   string
		tokens   [2]int64 // when wantErr is ""
		wantErr  string
		noDeltas bool
	}{
		{
			name:    "LF",
			body:    "data: " + chunkJSON("a", "") + "\n\ndata: " + chunkJSON("b", "stop") + "\n\ndata: " + usage + "\n\ndata: [DONE]\n\n",
			content: "ab", finish: "stop", tokens: [2]int64{7, 3},
		},
		{
			name:    "CRLF with keep-alive comments",
			body:    ": OPENROUTER PROCESSING\r\n\r\ndata: " + chunkJSON("a", "") + "\r\n\r\n: ping\r\n\r\ndata: " + chunkJSON("b", "stop") + "\r\n\r\ndata: [DONE]\r\n\r\n",
			content: "ab", finish: "stop", tokens: [2]int64{10, 2},
		},
		{
			name:    "CR",
			body:    "data: " + chunkJSON("a", "") + "\r\rdata: " + chunkJSON("b", "length") + "\r\r",
			content: "ab", finish: "length", tokens: [2]int64{10, 2},
		},
		{
			name:    "a delta longer than the read buffer",
			body:    "data: " + chunkJSON(long, "") + "\n\ndata: " + chunkJSON("", "stop") + "\n\n",
			content: long, finish: "stop", tokens: [2]int64{10, 1},
		},
		{
			name:    "finish without DONE",
			body:    "data: " + chunkJSON("a", "stop") + "\n\n",
			content: "a", finish: "stop", tokens: [2]int64{10, 1},
		},
		{
			name:    "an event without its blank line is lost",
			body:    "data: " + chunkJSON("a", "") + "\n\ndata: " + chunkJSON("b", "stop") + "\n",
			content: "a", wantErr: "upstream stream ended before the answer was complete",
		},
		{
			name:    "error event",
			body:    "data: " + chunkJSON("a", "") + "\n\nevent: error\ndata: {\"error\":{\"message\":\"model overloaded, key sk-test\"}}\n\n",
			content: "a", wantErr: "upstream stream failed: model overloaded, key [redacted]",
		},
		{
			name:    "error event with a top-level message",
			body:    "event: error\ndata: {\"type\":\"error\",\"message\":\"boom\"}\n\n",
			wantErr: "upstream stream failed: boom", noDeltas: true,
		},
		{
			name:    "error member",
			body:    "data: " + chunkJSON("a", "") + "\n\ndata: {\"error\":{\"code\":502}}\n\n",
			content: "a", wantErr: "upstream stream failed: error event",
		},
		{
			name:    "invalid chunk",
			body:    "data: " + chunkJSON("a", "") + "\n\ndata: {\"choices\":[{\"index\":0,\n\n",
			content: "a", wantErr: "upstream sent an invalid stream chunk",
		},
		{
			name:    "not a chunk",
			body:    "data: [\"x\"]\n\n",
			wantErr: "upstream sent an invalid stream chunk", noDeltas: true,
		},
		{
			name:    "a JSON document instead of a stream",
			ctype:   "application/json",
			body:    `{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}`,
			wantErr: "upstream stream ended before the answer was complete", noDeltas: true,
		},
		{
			name:    "error status",
			status:  http.StatusBadRequest,
			ctype:   "application/json",
			body:    `{"error":{"message":"bad request for sk-test"}}`,
			wantErr: "upstream answered 400: bad request for [redacted]", noDeltas: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				ctype := tt.ctype
				if ctype == "" {
					ctype = "text/event-stream"
				}
				w.Header().Set("Content-Type", ctype)
				if tt.status != 0 {
					w.WriteHeader(tt.status)
				}
				_, _ = io.WriteString(w, tt.body)
			}))
			t.Cleanup(srv.Close)
			hc := agent.NewHTTPClient()
			t.Cleanup(hc.CloseIdleConnections)
			tracker := &bodyTracker{base: hc.Transport}
			hc.Transport = tracker
			m, err := agent.NewModels(agent.DefaultProviders(), agent.ModelOptions{HTTPClient: hc}).For("custom", srv.URL+"/v1", "sk-test")
			if err != nil {
				t.Fatal(err)
			}
			var deltas strings.Builder
			resp, err := m.Complete(context.Background(), userRequest("ask"), func(d string) { deltas.WriteString(d) })
			if n := tracker.open(); n != 0 {
				t.Errorf("%d response bodies left open", n)
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Complete: %v", err)
				}
				if resp.TokensInput != tt.tokens[0] || resp.TokensOutput != tt.tokens[1] {
					t.Errorf("tokens = %d/%d, want %v", resp.TokensInput, resp.TokensOutput, tt.tokens)
				}
			} else if se := llmErr(t, err); se.Message != tt.wantErr {
				t.Errorf("message %q, want %q", se.Message, tt.wantErr)
			}
			if resp.Content != tt.content || deltas.String() != tt.content {
				t.Errorf("content = %q, deltas %q, want %q", resp.Content, deltas.String(), tt.content)
			}
			if resp.FinishReason != tt.finish {
				t.Errorf("finish = %q, want %q", resp.FinishReason, tt.finish)
			}
			if tt.noDeltas && resp.TokensOutput != 0 {
				t.Errorf("tokens output = %d", resp.TokensOutput)
			}
		})
	}
}
