package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/ssestream"
	"github.com/tidwall/gjson"
)

type sseEvent struct{ typ, data string }

// nextEvent is sseReader.next, filling the reader whenever it asks for input (a run does
// the same from agent.RunTo).
func nextEvent(s *sseReader) (typ, data []byte, err error) {
	for {
		typ, data, err = s.next()
		if err != errNeedInput {
			return typ, data, err
		}
		s.fill()
	}
}

// nextChunk is chunkStream.next, filling its reader whenever it asks for input.
func nextChunk(s *chunkStream, c *chunk) error {
	for {
		if err := s.next(c); err != errNeedInput {
			return err
		}
		s.sse.fill()
	}
}

// readEvents reads every event of r through an sseReader.
func readEvents(r io.Reader) ([]sseEvent, error) {
	var s sseReader
	s.init(r)
	var out []sseEvent
	for {
		typ, data, err := nextEvent(&s)
		if err != nil {
			return out, err
		}
		out = append(out, sseEvent{string(typ), string(data)})
	}
}

// piecesReader returns s n bytes at a time.
type piecesReader struct {
	s string
	n int
}

func (p *piecesReader) Read(b []byte) (int, error) {
	if p.s == "" {
		return 0, io.EOF
	}
	n := copy(b[:min(len(b), p.n)], p.s)
	p.s = p.s[n:]
	return n, nil
}

// failAfter returns its text, then err.
type failAfter struct {
	r   io.Reader
	err error
}

func (f *failAfter) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		err = f.err
	}
	return n, err
}

func TestSSEReader(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 3*sseBufferSize+17)
	tests := []struct {
		name    string
		body    string
		readErr error // returned after body instead of io.EOF
		want    []sseEvent
		wantErr error
	}{
		{
			name: "LF",
			body: "data: one\n\ndata: two\n\n",
			want: []sseEvent{{"", "one"}, {"", "two"}},
		},
		{
			name: "lines after the data line",
			body: "data: first chunk\n: a comment before the end of the event\nid: 7\n\ndata: second\n\n",
			want: []sseEvent{{"", "first chunk"}, {"", "second"}},
		},
		{
			name: "CRLF",
			body: "data: one\r\n\r\nevent: e\r\ndata: two\r\n\r\n",
			want: []sseEvent{{"", "one"}, {"e", "two"}},
		},
		{
			name: "CR",
			body: "data: one\r\rdata: two\r\r",
			want: []sseEvent{{"", "one"}, {"", "two"}},
		},
		{
			name: "mixed line ends",
			body: "data: a\r\ndata: b\rdata: c\n\r\n",
			want: []sseEvent{{"", "a\nb\nc"}},
		},
		{
			name: "no space after the colon, only one space removed",
			body: "data:tight\n\ndata:  two spaces\n\n",
			want: []sseEvent{{"", "tight"}, {"", " two spaces"}},
		},
		{
			name: "multi-line data",
			body: "data: {\"a\":\ndata: 1}\n\n",
			want: []sseEvent{{"", "{\"a\":\n1}"}},
		},
		{
			name: "empty data lines count",
			body: "data\n\ndata:\ndata:\n\n",
			want: []sseEvent{{"", ""}, {"", "\n"}},
		},
		{
			name: "comments, id, retry and unknown fields are ignored",
			body: ": keep-alive\n:\nid: 7\nretry: 10\nfoo: bar\ndata: x\n: between\n\n",
			want: []sseEvent{{"", "x"}},
		},
		{
			name: "blank lines without data dispatch nothing and reset the type",
			body: "\n\nevent: lost\n\ndata: x\n\n",
			want: []sseEvent{{"", "x"}},
		},
		{
			name: "the type does not outlive its event",
			body: "event: error\ndata: a\n\ndata: b\n\n",
			want: []sseEvent{{"error", "a"}, {"", "b"}},
		},
		{
			name: "a value may contain colons",
			body: "data: {\"k\":\"v:w\"}\n\n",
			want: []sseEvent{{"", `{"k":"v:w"}`}},
		},
		{
			name: "lines longer than the buffer",
			body: "data: " + long + "\n: " + long + "\ndata: " + long + "\n\n",
			want: []sseEvent{{"", long + "\n" + long}},
		},
		{
			name: "DONE is an ordinary event here",
			body: "data: [DONE]\n\n",
			want: []sseEvent{{"", "[DONE]"}},
		},
		{
			name: "an event without its blank line at the end is dropped",
			body: "data: one\n\ndata: two\n",
			want: []sseEvent{{"", "one"}},
		},
		{
			name: "a partial last line is dropped",
			body: "data: one\n\ndata: tw",
			want: []sseEvent{{"", "one"}},
		},
		{
			name:    "a read error comes after the whole events read before it",
			body:    "data: one\n\ndata: two\n\ndata: thr",
			readErr: io.ErrUnexpectedEOF,
			want:    []sseEvent{{"", "one"}, {"", "two"}},
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name: "empty body",
		},
	}
	readers := map[string]func(string) io.Reader{
		"whole":    func(s string) io.Reader { return strings.NewReader(s) },
		"one byte": func(s string) io.Reader { return iotest.OneByteReader(strings.NewReader(s)) },
		"half":     func(s string) io.Reader { return iotest.HalfReader(strings.NewReader(s)) },
		// Pieces that end inside the line after a data line: the reader must keep the data
		// it has not copied when it makes room for the rest of that line.
		"7 bytes":  func(s string) io.Reader { return &piecesReader{s: s, n: 7} },
		"13 bytes": func(s string) io.Reader { return &piecesReader{s: s, n: 13} },
	}
	for _, tt := range tests {
		for rname, reader := range readers {
			t.Run(tt.name+"/"+rname, func(t *testing.T) {
				t.Parallel()
				r := reader(tt.body)
				if tt.readErr != nil {
					r = &failAfter{r: r, err: tt.readErr}
				}
				wantErr := tt.wantErr
				if wantErr == nil {
					wantErr = io.EOF
				}
				got, err := readEvents(r)
				if !errors.Is(err, wantErr) {
					t.Errorf("err = %v, want %v", err, wantErr)
				}
				if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
					t.Errorf("events = %q\nwant     %q", got, tt.want)
				}
			})
		}
	}
}

// FuzzSSEReader checks sseReader against openai-go's ssestream decoder on bodies whose line
// ends are LF or CRLF (ssestream does not take a lone CR as a line end; sseReader follows
// the SSE specification there). ssestream keeps a newline after the data; sseReader does not.
func FuzzSSEReader(f *testing.F) {
	for _, s := range []string{
		"data: one\n\ndata: two\n\n",
		"event: e\r\ndata: x\r\ndata:y\r\n\r\n",
		": c\nid: 1\nretry: 5\ndata\n\n\n\nevent: lost\n\ndata: [DONE]\n\n",
		"data: a:b\n\ndata: partial",
		"data: " + strings.Repeat("z", 3000) + "\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if bytes.Contains(bytes.ReplaceAll(body, []byte("\r\n"), nil), []byte("\r")) {
			t.Skip("a lone CR")
		}
		dec := ssestream.NewDecoder(&http.Response{
			Header: http.Header{"Content-Type": {"text/event-stream"}},
			Body:   io.NopCloser(bytes.NewReader(body)),
		})
		var want []sseEvent
		for dec.Next() {
			ev := dec.Event()
			want = append(want, sseEvent{ev.Type, strings.TrimSuffix(string(ev.Data), "\n")})
		}
		if dec.Err() != nil {
			t.Skip(dec.Err())
		}
		got, err := readEvents(iotest.HalfReader(bytes.NewReader(body)))
		if err != io.EOF {
			t.Fatalf("err = %v", err)
		}
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
			t.Fatalf("events = %q\nssestream %q", got, want)
		}
	})
}

// TestSSEReaderLimits: a line or an event beyond the limit fails the stream instead of
// growing without bound.
func TestSSEReaderLimits(t *testing.T) {
	t.Parallel()
	const limit = 4 * sseBufferSize
	x := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name string
		body string
		ok   bool
	}{
		{"line at the limit", "data:" + x(limit-5) + "\n\n", true},
		{"line over the limit", "data:" + x(limit-4) + "\n\n", false},
		{"comment over the limit", ":" + x(limit) + "\n\n", false},
		{"unfinished line over the limit", "data:" + x(2*limit), false},
		{"data at the limit", "data:" + x(limit/2) + "\ndata:" + x(limit/2-1) + "\n\n", true},
		{"data over the limit", "data:" + x(limit/2) + "\ndata:" + x(limit/2) + "\n\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var s sseReader
			s.init(strings.NewReader(tt.body))
			s.limit = limit
			_, _, err := nextEvent(&s)
			if tt.ok && err != nil || !tt.ok && !errors.Is(err, errEventTooLarge) {
				t.Errorf("err = %v", err)
			}
		})
	}
}

func TestChunkStream(t *testing.T) {
	t.Parallel()
	content := `{"choices":[{"index":0,"delta":{"content":"hi"}}]}`
	tests := []struct {
		name     string
		body     string
		contents []string
		wantErr  string // "" means io.EOF
		errData  string // the streamEventError's data
	}{
		{name: "DONE ends", body: "data: " + content + "\n\ndata: [DONE]\n\ndata: " + content + "\n\n", contents: []string{"hi"}},
		{name: "DONE with a suffix ends", body: "data: [DONE] bye\n\n", contents: nil},
		{name: "DONE ends even as an error event", body: "event: error\ndata: [DONE]\n\n"},
		{name: "end of body", body: "data: " + content + "\n\n", contents: []string{"hi"}},
		{
			name:    "error member",
			body:    "data: " + content + "\n\ndata: {\"error\":{\"message\":\"overloaded\"}}\n\n",
			wantErr: "stream error", errData: `{"error":{"message":"overloaded"}}`, contents: []string{"hi"},
		},
		{
			name:    "null error member",
			body:    "data: {\"choices\":[],\"error\":null}\n\n",
			wantErr: "stream error", errData: `{"choices":[],"error":null}`,
		},
		{
			name:    "error event",
			body:    "event: error\ndata: {\"message\":\"boom\"}\n\n",
			wantErr: "stream error", errData: `{"message":"boom"}`,
		},
		{name: "invalid JSON", body: "data: {\"choices\":[\n\n", wantErr: "invalid"},
		{name: "not an object", body: "data: [1]\n\n", wantErr: "invalid"},
		{name: "null is an empty chunk", body: "data: null\n\ndata: " + content + "\n\n", contents: []string{"", "hi"}},
		{name: "thread events are checked and ignored", body: "event: thread.run\ndata: " + content + "\n\n"},
		{name: "invalid thread event", body: "event: thread.run\ndata: {\n\n", wantErr: "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var s chunkStream
			s.sse.init(strings.NewReader(tt.body))
			var c chunk
			var contents []string
			var err error
			for {
				if err = nextChunk(&s, &c); err != nil {
					break
				}
				text := ""
				for _, ch := range c.choices {
					text += ch.content
				}
				contents = append(contents, text)
			}
			if fmt.Sprint(contents) != fmt.Sprint(tt.contents) {
				t.Errorf("contents = %q, want %q", contents, tt.contents)
			}
			var evErr *streamEventError
			switch tt.wantErr {
			case "":
				if err != io.EOF {
					t.Errorf("err = %v, want EOF", err)
				}
			case "stream error":
				if !errors.As(err, &evErr) || string(evErr.data) != tt.errData {
					t.Errorf("err = %v, want a stream error with %s", err, tt.errData)
				}
			case "invalid":
				if err != errInvalidChunk {
					t.Errorf("err = %v, want invalid chunk", err)
				}
			}
		})
	}
}

// Realistic chunks as OpenAI sends them (include_usage on, obfuscation on).
const (
	chunkRole = `{"id":"chatcmpl-BZ3x9h2Kq7mYpL0aTn4cWvR8sEfGd","object":"chat.completion.chunk","created":1748000000,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_34a54ae93c","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"Zq4"}`

	chunkContent = `{"id":"chatcmpl-BZ3x9h2Kq7mYpL0aTn4cWvR8sEfGd","object":"chat.completion.chunk","created":1748000000,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_34a54ae93c","choices":[{"index":0,"delta":{"content":" weather"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"k3Jx9vQ"}`

	chunkToolHeader = `{"id":"chatcmpl-BZ3x9h2Kq7mYpL0aTn4cWvR8sEfGd","object":"chat.completion.chunk","created":1748000000,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_34a54ae93c","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_Jk2fP0aQx9LmT3vB8nR1sYdW","type":"function","function":{"name":"weather__get_forecast","arguments":""}}],"refusal":null},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"q"}`

	chunkToolArgs = `{"id":"chatcmpl-BZ3x9h2Kq7mYpL0aTn4cWvR8sEfGd","object":"chat.completion.chunk","created":1748000000,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_34a54ae93c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":\"Par"}}]},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"Xb2"}`

	chunkFinish = `{"id":"chatcmpl-BZ3x9h2Kq7mYpL0aTn4cWvR8sEfGd","object":"chat.completion.chunk","created":1748000000,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_34a54ae93c","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null,"obfuscation":"p0"}`

	chunkUsage = `{"id":"chatcmpl-BZ3x9h2Kq7mYpL0aTn4cWvR8sEfGd","object":"chat.completion.chunk","created":1748000000,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_34a54ae93c","choices":[],"usage":{"prompt_tokens":82,"completion_tokens":17,"total_tokens":99,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"obfuscation":"mW"}`
)

// seedChunks are the fuzz seeds: real provider chunks and the corners of the format.
var seedChunks = []string{
	chunkRole, chunkContent, chunkToolHeader, chunkToolArgs, chunkFinish, chunkUsage,
	// Groq
	`{"id":"chatcmpl-8a0f","object":"chat.completion.chunk","created":1748000000,"model":"llama-3.3-70b-versatile","system_fingerprint":"fp_3f3b593e33","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"x_groq":{"id":"req_01jv","usage":{"queue_time":0.05,"prompt_tokens":40,"prompt_time":0.002,"completion_tokens":9,"completion_time":0.03,"total_tokens":49,"total_time":0.03}},"usage":{"queue_time":0.05,"prompt_tokens":40,"prompt_time":0.002,"completion_tokens":9,"completion_time":0.03,"total_tokens":49,"total_time":0.03}}`,
	// Gemini: whole tool calls in one chunk, no index
	`{"choices":[{"delta":{"role":"assistant","tool_calls":[{"function":{"arguments":"{\"city\":\"Paris\"}","name":"weather"},"id":"0","type":"function"},{"function":{"arguments":"{}","name":"time"},"id":"1","type":"function"}]},"finish_reason":"tool_calls","index":0}],"created":1748000000,"model":"gemini-2.0-flash","object":"chat.completion.chunk","usage":{"completion_tokens":12,"prompt_tokens":30,"total_tokens":42}}`,
	// Anthropic's compatibility layer
	`{"id":"msg_01","object":"chat.completion.chunk","created":1748000000,"model":"claude-sonnet-4","choices":[{"index":0,"delta":{"role":"assistant","content":"Hello"},"finish_reason":null}]}`,
	// escapes, unicode, surrogates
	`{"choices":[{"index":0,"delta":{"content":"line\nnext \"quoted\" \\ \/ \b\f\r\t \u00e9\u4e16\ud83d\ude00 é世😀"}}]}`,
	`{"choices":[{"index":0,"delta":{"content":"\ud800 lone, \udc00\ud800 reversed, \ud83d\u0041 broken pair, \ud83d"}}]}`,
	`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"c\u0031","function":{"name":"n\u00e4me","arguments":"{\"k\":\"\\u00e9\"}"}}]}}]}`,
	// nulls everywhere
	`{"choices":[{"index":0,"delta":{"content":null,"tool_calls":null},"finish_reason":null}],"usage":null}`,
	`{"choices":null,"usage":null,"id":null}`,
	`{"choices":[null,{"index":null,"delta":null,"finish_reason":null}]}`,
	`{"choices":[{"index":0,"delta":{"tool_calls":[null,{"index":null,"id":null,"type":null,"function":null}]}}]}`,
	`null`,
	` {} `,
	// order, unknown fields, duplicates, escaped keys
	`{"usage":{"completion_tokens":3,"prompt_tokens":5},"extra":{"nested":[1,{"a":[true,false,null]}]},"choices":[{"finish_reason":"length","delta":{"content":"z","role":"assistant"},"index":0}]}`,
	`{"choices":[{"index":0,"delta":{"content":"first"}}],"choices":[{"index":0,"delta":{"content":"second"}}]}`,
	`{"choices":[{"index":0,"delta":{"content":"a","content":"b"},"delta":{"content":"c"}}]}`,
	`{"ch\u006fices":[{"index":0,"delta":{"c\u006fntent":"escaped keys"}}]}`,
	`{"Choices":[{"index":0,"delta":{"content":"case matters"}}]}`,
	// loose types as openai-go reads them
	`{"choices":[{"index":"0","delta":{"content":5,"tool_calls":[{"index":1.9,"id":12,"type":true,"function":{"name":false,"arguments":{"a":[1, 2]}}}]},"finish_reason":1.50}]}`,
	`{"choices":[{"index":true,"delta":{"content":-12.0e-1}},{"index":1e2,"delta":{"content":[1,"x"]}},{"index":"1e1"},{"index":"-3"},{"index":{}}]}`,
	`{"choices":[{"index":0}, 5],"usage":{"prompt_tokens":"12","completion_tokens":1e400}}`,
	`{"choices":{"index":0},"usage":[1]}`,
	`{"choices":"x","usage":5}`,
	`{"choices":[{"index":0,"delta":"text"}],"usage":"none"}`,
	`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0},"x"]}}]}`,
	`{"choices":[{"index":12345678901234567890,"delta":{"content":123456789012345678901234567890}}],"usage":{"prompt_tokens":-9007199254740993,"completion_tokens":9007199254740993}}`,
	// errors
	`{"error":{"message":"Rate limit reached","type":"rate_limit_error","code":"429"}}`,
	`{"choices":[],"error":null}`,
	`{"choices":[{"index":0,"delta":{"error":"nested is fine"}}]}`,
	`{"\u0065rror":{"message":"escaped key"}}`, `{"Error":1,"errors":[],"error ":2}`, `{"usage":null, "error" : "late"}`,
	// invalid
	`{"choices":[}`, `{"choices":[{"index":0,}]}`, `{"a":01}`, `{"a":"\x"}`, "{\"a\":\"\t\"}", `{"a":1}x`, `[1]`, `"s"`, `12`, ``, `{"a":tru}`,
	"{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"invalid utf-8: \xff\xfe\"}}]}",
}

func TestDecodeChunk(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		data string
		want chunk
	}{
		{
			name: "content",
			data: chunkContent,
			want: chunk{choices: []choiceDelta{{content: " weather"}}},
		},
		{
			name: "tool header",
			data: chunkToolHeader,
			want: chunk{choices: []choiceDelta{{toolCalls: []toolCallDelta{{id: "call_Jk2fP0aQx9LmT3vB8nR1sYdW", typ: "function", name: "weather__get_forecast"}}}}},
		},
		{
			name: "tool arguments",
			data: chunkToolArgs,
			want: chunk{choices: []choiceDelta{{toolCalls: []toolCallDelta{{arguments: `{"city":"Par`}}}}},
		},
		{
			name: "usage",
			data: chunkUsage,
			want: chunk{usageValid: true, usage: tokenUsage{82, 17}},
		},
		{
			name: "escapes",
			data: `{"choices":[{"index":0,"delta":{"content":"a\nb \"q\" \u00e9\ud83d\ude00 \ud800x"}}]}`,
			want: chunk{choices: []choiceDelta{{content: "a\nb \"q\" é😀 \ufffdx"}}},
		},
		{
			name: "first duplicate wins, escaped keys match",
			data: `{"choices":[{"index":0,"delta":{"c\u006fntent":"a","content":"b"}}],"choices":[]}`,
			want: chunk{choices: []choiceDelta{{content: "a"}}},
		},
		{
			name: "loose types",
			data: `{"choices":[{"index":"2","delta":{"content":1.50},"finish_reason":{"x": 1}}],"usage":{"prompt_tokens":true,"completion_tokens":7.9}}`,
			want: chunk{choices: []choiceDelta{{index: 2, content: "1.5", finishReason: `{"x": 1}`}}, usageValid: true, usage: tokenUsage{1, 7}},
		},
		{
			name: "an element of another type drops the array",
			data: `{"choices":[{"index":0,"delta":{"content":"a"}},1]}`,
			want: chunk{},
		},
		{
			name: "usage of another type is not valid",
			data: `{"usage":[]}`,
			want: chunk{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var d chunkDecoder
			var got chunk
			// Decode a busy chunk first: nothing of it may show in the next one.
			if err := d.decode([]byte(seedChunks[7]), &got); err != nil {
				t.Fatal(err)
			}
			if err := d.decode([]byte(tt.data), &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(normalize(got), normalize(tt.want)) {
				t.Errorf("got  %+v\nwant %+v", normalize(got), normalize(tt.want))
			}
		})
	}
}

// normalize makes chunks comparable: no empty slices, no token counts without usage.
func normalize(c chunk) chunk {
	out := chunk{usageValid: c.usageValid}
	if c.usageValid {
		out.usage = c.usage
	}
	for _, ch := range c.choices {
		n := ch
		n.toolCalls = nil
		if len(ch.toolCalls) > 0 {
			n.toolCalls = append([]toolCallDelta(nil), ch.toolCalls...)
		}
		out.choices = append(out.choices, n)
	}
	return out
}

// clone copies c deeply.
func clone(c chunk) chunk {
	out := c
	out.choices = nil
	for _, ch := range c.choices {
		ch.toolCalls = append([]toolCallDelta(nil), ch.toolCalls...)
		out.choices = append(out.choices, ch)
	}
	return out
}

// fromOpenAI is the part of openai-go's chunk that Complete used.
func fromOpenAI(c *openai.ChatCompletionChunk) chunk {
	out := chunk{usageValid: c.JSON.Usage.Valid()}
	if out.usageValid {
		out.usage = tokenUsage{c.Usage.PromptTokens, c.Usage.CompletionTokens}
	}
	for _, ch := range c.Choices {
		cd := choiceDelta{index: ch.Index, content: ch.Delta.Content, finishReason: ch.FinishReason}
		for _, tc := range ch.Delta.ToolCalls {
			cd.toolCalls = append(cd.toolCalls, toolCallDelta{tc.Index, tc.ID, tc.Type, tc.Function.Name, tc.Function.Arguments})
		}
		out.choices = append(out.choices, cd)
	}
	return out
}

// FuzzDecodeChunk checks chunkDecoder against what Complete read through openai-go: the
// ssestream check for an "error" member (gjson) and json.Unmarshal into
// openai.ChatCompletionChunk. Whenever openai-go accepts a chunk, the decoder accepts it
// and reads the same fields; whenever it rejects one, so does the decoder.
func FuzzDecodeChunk(f *testing.F) {
	for _, s := range seedChunks {
		f.Add([]byte(s))
	}
	var dirty chunk
	var d0 chunkDecoder
	if err := d0.decode([]byte(seedChunks[7]), &dirty); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// Fresh and reused state must decode alike.
		var fresh chunk
		var d chunkDecoder
		err := d.decode(data, &fresh)
		reused := clone(dirty)
		if err2 := d0.decode(data, &reused); err2 != err {
			t.Fatalf("reused decoder: %v, fresh: %v", err2, err)
		}
		if err == nil && !reflect.DeepEqual(normalize(reused), normalize(fresh)) {
			t.Fatalf("reused state leaked: %+v vs %+v", normalize(reused), normalize(fresh))
		}

		hasError := gjson.GetBytes(data, "error").Exists()
		valid := json.Valid(data)
		var ref openai.ChatCompletionChunk
		refErr := json.Unmarshal(data, &ref)
		switch {
		case err == errHasError:
			if !hasError {
				t.Fatalf("decoder saw an error member gjson does not see")
			}
		case hasError && valid:
			t.Fatalf("error member missed: err = %v", err)
		case hasError:
			// ssestream reports the error member; the decoder may report the invalid JSON
			// it meets first.
			if err != errInvalidChunk {
				t.Fatalf("invalid JSON with an error member accepted")
			}
		case refErr != nil:
			if err != errInvalidChunk {
				t.Fatalf("openai-go rejects (%v), decoder: %v", refErr, err)
			}
		case err != nil:
			t.Fatalf("openai-go accepts, decoder: %v", err)
		default:
			if got, want := normalize(fresh), normalize(fromOpenAI(&ref)); !reflect.DeepEqual(got, want) {
				t.Fatalf("decoder  %+v\nopenai-go %+v", got, want)
			}
		}
	})
}

// TestDecodeChunkDepth: the nesting limit is encoding/json's.
func TestDecodeChunkDepth(t *testing.T) {
	t.Parallel()
	for _, depth := range []int{maxDepth - 1, maxDepth, maxDepth + 1} {
		// The root object holds depth-1 nested arrays.
		data := `{"x":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + `}`
		var c chunk
		var d chunkDecoder
		err := d.decode([]byte(data), &c)
		var ref openai.ChatCompletionChunk
		refErr := json.Unmarshal([]byte(data), &ref)
		if (err == nil) != (refErr == nil) {
			t.Errorf("depth %d: decoder %v, encoding/json %v", depth, err, refErr)
		}
	}
}
