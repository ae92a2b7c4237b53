package stream_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	sse "github.com/tmaxmax/go-sse"

	"github.com/agentgate/agentgate/stream"
	"github.com/agentgate/agentgate/stream/streamtest"
)

// sampleRun returns a complete successful run with one tool call, in publishing order, with
// Seq set 1, 2, 3 ….
func sampleRun(runID string) []stream.Event {
	args := json.RawMessage(`{"city":"Paris","units":"metric"}`)
	events := []stream.Event{
		{Type: stream.TypeThinking, Thinking: &stream.Thinking{Status: stream.StatusStarting, Message: "Starting"}},
		{Type: stream.TypeThinking, Thinking: &stream.Thinking{Status: stream.StatusLoadingTools, Message: "Loading tools"}},
		{Type: stream.TypeThinking, Thinking: &stream.Thinking{Status: stream.StatusToolsLoaded, Message: "2 tools"}},
		{Type: stream.TypeThinking, Thinking: &stream.Thinking{Status: stream.StatusLLMCall, Message: "Calling the model", Iteration: 1}},
		{Type: stream.TypeToolCall, ToolCall: &stream.ToolCall{Iteration: 1, ID: "call_1", Tool: "weather__forecast", Arguments: args}},
		{Type: stream.TypeToolResult, ToolResult: &stream.ToolResult{Iteration: 1, ID: "call_1", Tool: "weather__forecast", Success: true, LatencyMs: 12, Result: `{"temp":21,"sky":"<clear> & dry"}`}},
		{Type: stream.TypeUsage, Usage: &stream.Usage{Iteration: 1, TokensInput: 120, TokensOutput: 9, CostCents: 0.0123}},
		{Type: stream.TypeThinking, Thinking: &stream.Thinking{Status: stream.StatusLLMCall, Message: "Calling the model", Iteration: 2}},
		{Type: stream.TypeToken, Token: &stream.Token{Iteration: 2, Delta: "It is "}},
		{Type: stream.TypeToken, Token: &stream.Token{Iteration: 2, Delta: "21 °C\nand "}},
		{Type: stream.TypeToken, Token: &stream.Token{Iteration: 2, Delta: "dry."}},
		{Type: stream.TypeUsage, Usage: &stream.Usage{Iteration: 2, TokensInput: 160, TokensOutput: 7, CostCents: 0.0161}},
		{Type: stream.TypeDone, Done: &stream.Answer{
			RunID:  runID,
			Output: "It is 21 °C\nand dry.",
			ToolCalls: []stream.ToolCallRecord{{
				Name: "weather__forecast", Arguments: args, Result: `{"temp":21,"sky":"<clear> & dry"}`, LatencyMs: 12, Success: true,
			}},
			Usage: stream.RunUsage{TokensInput: 280, TokensOutput: 16, CostCents: 0.0284, LatencyMs: 734, Iterations: 2},
		}},
	}
	for i := range events {
		events[i].Seq = int64(i + 1)
	}
	return events
}

// writeAll writes events through a Writer over a bufio.Writer and returns the bytes.
func writeAll(tb testing.TB, events []stream.Event) []byte {
	tb.Helper()
	var out bytes.Buffer
	w := stream.NewWriter(bufio.NewWriter(&out))
	if err := w.Retry(3000); err != nil {
		tb.Fatal(err)
	}
	for _, e := range events {
		if err := w.Event(e); err != nil {
			tb.Fatalf("Event(%d %s): %v", e.Seq, e.Type, err)
		}
	}
	return out.Bytes()
}

func TestWriterFrames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		write func(*stream.Writer) error
		want  string
	}{
		{"retry", func(w *stream.Writer) error { return w.Retry(3000) }, "retry: 3000\n\n"},
		{"retry zero", func(w *stream.Writer) error { return w.Retry(0) }, "retry: 0\n\n"},
		{"ping", (*stream.Writer).Ping, ": ping\n\n"},
		{"comment", func(w *stream.Writer) error { return w.Comment("hello") }, ": hello\n\n"},
		{"empty comment", func(w *stream.Writer) error { return w.Comment("") }, ":\n\n"},
		{"comment line breaks", func(w *stream.Writer) error { return w.Comment("a\nb\r\nc\rd\n") }, ": a\n: b\n: c\n: d\n:\n\n"},
		{"comment injection", func(w *stream.Writer) error { return w.Comment("x\n\nid: 9\nevent: done\ndata: {}") },
			": x\n:\n: id: 9\n: event: done\n: data: {}\n\n"},
		{"token", func(w *stream.Writer) error {
			return w.Event(stream.Event{Seq: 7, Type: stream.TypeToken, Token: &stream.Token{Iteration: 1, Delta: "Hi\n<b>"}})
		}, "id: 7\nevent: token\ndata: {\"type\":\"token\",\"iteration\":1,\"delta\":\"Hi\\n\\u003cb\\u003e\"}\n\n"},
		{"thinking without iteration", func(w *stream.Writer) error {
			return w.Event(stream.Event{Seq: 1, Type: stream.TypeThinking, Thinking: &stream.Thinking{Status: "starting", Message: "Starting"}})
		}, "id: 1\nevent: thinking\ndata: {\"type\":\"thinking\",\"status\":\"starting\",\"message\":\"Starting\"}\n\n"},
		{"error", func(w *stream.Writer) error {
			return w.Event(stream.Event{Seq: 12, Type: stream.TypeError, Error: &stream.Error{RunID: "run_0123456789abcdef01", Code: stream.CodeLLM, Message: "model failed"}})
		}, "id: 12\nevent: error\ndata: {\"type\":\"error\",\"run_id\":\"run_0123456789abcdef01\",\"code\":\"LLM_ERROR\",\"message\":\"model failed\"}\n\n"},
		{"tool call arguments compacted", func(w *stream.Writer) error {
			return w.Event(stream.Event{Seq: 3, Type: stream.TypeToolCall, ToolCall: &stream.ToolCall{Iteration: 1, ID: "c1", Tool: "t", Arguments: json.RawMessage("{\n  \"a\": 1\n}")}})
		}, "id: 3\nevent: tool_call\ndata: {\"type\":\"tool_call\",\"iteration\":1,\"id\":\"c1\",\"tool\":\"t\",\"arguments\":{\"a\":1}}\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			if err := tt.write(stream.NewWriter(bufio.NewWriter(&out))); err != nil {
				t.Fatal(err)
			}
			if got := out.String(); got != tt.want {
				t.Errorf("wrote\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestWriterRejectsBadInputWithoutWriting(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		write func(*stream.Writer) error
	}{
		{"negative retry", func(w *stream.Writer) error { return w.Retry(-1) }},
		{"unknown type", func(w *stream.Writer) error { return w.Event(stream.Event{Seq: 1, Type: "bogus"}) }},
		{"missing payload", func(w *stream.Writer) error { return w.Event(stream.Event{Seq: 1, Type: stream.TypeToken}) }},
		{"payload of another type", func(w *stream.Writer) error {
			return w.Event(stream.Event{Seq: 1, Type: stream.TypeDone, Token: &stream.Token{}})
		}},
		{"invalid raw arguments", func(w *stream.Writer) error {
			return w.Event(stream.Event{Seq: 1, Type: stream.TypeToolCall, ToolCall: &stream.ToolCall{Arguments: json.RawMessage(`{"a":`)}})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			w := stream.NewWriter(bufio.NewWriter(&out))
			if err := tt.write(w); err == nil {
				t.Fatal("no error")
			}
			if out.Len() != 0 {
				t.Fatalf("wrote %q", out.String())
			}
			// The Writer stays usable after a rejected event.
			if err := w.Ping(); err != nil || out.String() != ": ping\n\n" {
				t.Fatalf("after rejection: %v, %q", err, out.String())
			}
		})
	}
}

// TestWriterFlushesEveryFrame checks that each call hands its whole frame to the connection:
// a bufio.Writer much larger than the frames would otherwise keep them.
func TestWriterFlushesEveryFrame(t *testing.T) {
	t.Parallel()
	var conn bytes.Buffer
	w := stream.NewWriter(bufio.NewWriterSize(&conn, 1<<16))
	want := 0
	step := func(name string, err error, frame string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want += len(frame)
		if conn.Len() != want || !strings.HasSuffix(conn.String(), frame) {
			t.Fatalf("after %s the connection has %d bytes (%q), want %d ending in %q", name, conn.Len(), conn.String(), want, frame)
		}
	}
	step("retry", w.Retry(3000), "retry: 3000\n\n")
	for _, e := range sampleRun("run_0123456789abcdef01") {
		data, err := e.Data()
		if err != nil {
			t.Fatal(err)
		}
		step(string(e.Type), w.Event(e), fmt.Sprintf("id: %d\nevent: %s\ndata: %s\n\n", e.Seq, e.Type, data))
	}
	step("ping", w.Ping(), ": ping\n\n")
	step("comment", w.Comment("bye"), ": bye\n\n")
}

// TestWriterReportsDisconnect: the write/flush error is how the server learns the client left.
func TestWriterReportsDisconnect(t *testing.T) {
	t.Parallel()
	pr, pw := io.Pipe()
	if err := pr.Close(); err != nil {
		t.Fatal(err)
	}
	w := stream.NewWriter(bufio.NewWriter(pw))
	calls := map[string]func() error{
		"retry":   func() error { return w.Retry(3000) },
		"event":   func() error { return w.Event(sampleRun("run_0123456789abcdef01")[0]) },
		"ping":    w.Ping,
		"comment": func() error { return w.Comment("x") },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, io.ErrClosedPipe) {
			t.Errorf("%s: error %v, want io.ErrClosedPipe", name, err)
		}
	}
}

func TestWriterLargeEvent(t *testing.T) {
	t.Parallel()
	// Larger than go-sse's default event size and than the buffer a Writer keeps.
	big := strings.Repeat("0123456789\n", 20000)
	e := stream.Event{Seq: 1, Type: stream.TypeDone, Done: &stream.Answer{RunID: "run_0123456789abcdef01", Output: big}}
	out := writeAll(t, []stream.Event{e, {Seq: 2, Type: stream.TypeToken, Token: &stream.Token{Delta: "after"}}})
	msgs := streamtest.Parse(t, bytes.NewReader(out))
	if len(msgs) != 2 {
		t.Fatalf("parsed %d events, want 2", len(msgs))
	}
	got, err := stream.Parse(1, msgs[0].Event, []byte(msgs[0].Data))
	if err != nil || got.Done.Output != big {
		t.Fatalf("large done event did not round-trip: %v", err)
	}
}

func TestWriterAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts differ under the race detector")
	}
	// Not parallel: AllocsPerRun refuses to run in a parallel test.
	w := stream.NewWriter(bufio.NewWriter(io.Discard))
	e := stream.Event{Seq: 1, Type: stream.TypeToken, Token: &stream.Token{Iteration: 1, Delta: "hello, world"}}
	if err := w.Event(e); err != nil { // warm the reusable buffers
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(200, func() {
		e.Seq++
		if err := w.Event(e); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Errorf("Writer.Event allocates %.1f times per token event, want 0", allocs)
	}
}

// TestAppendDataSplitsLineBreaks covers the guard that Event never reaches with JSON data: a
// line break in data becomes several data lines, which a parser joins back with "\n".
func TestAppendDataSplitsLineBreaks(t *testing.T) {
	t.Parallel()
	tests := []struct{ data, wire, parsed string }{
		{"", "data: \n", ""},
		{"{}", "data: {}\n", "{}"},
		{"a\nb", "data: a\ndata: b\n", "a\nb"},
		{"a\r\nb\rc", "data: a\ndata: b\ndata: c\n", "a\nb\nc"},
		{"a\n\nb", "data: a\ndata: \ndata: b\n", "a\n\nb"},
		{"a\n", "data: a\ndata: \n", "a\n"},
		{"\r\n\r\n", "data: \ndata: \ndata: \n", "\n\n"},
	}
	for _, tt := range tests {
		wire := string(stream.AppendData(nil, []byte(tt.data)))
		if wire != tt.wire {
			t.Errorf("AppendData(%q) = %q, want %q", tt.data, wire, tt.wire)
		}
		msgs := streamtest.Parse(t, strings.NewReader("event: x\n"+wire+"\n"))
		if len(msgs) != 1 || msgs[0].Data != tt.parsed {
			t.Errorf("AppendData(%q) parses as %+v, want data %q", tt.data, msgs, tt.parsed)
		}
	}
}

// TestWriterGolden pins the wire bytes of a whole run.
func TestWriterGolden(t *testing.T) {
	t.Parallel()
	out := writeAll(t, sampleRun("run_0123456789abcdef01"))
	streamtest.Golden(t, "testdata/run.sse", out)

	// An independent parser reads it back into the same events.
	events := streamtest.Decode(t, streamtest.Parse(t, bytes.NewReader(out)))
	if want := sampleRun("run_0123456789abcdef01"); !reflect.DeepEqual(events, want) {
		t.Errorf("decoded events differ from the written ones:\n%+v\n%+v", events, want)
	}
}

// FuzzWriter writes arbitrary strings inside every kind of payload and checks that go-sse's
// parser gives back each event's id, type and data, and that data decodes to the same event.
func FuzzWriter(f *testing.F) {
	for _, s := range []string{
		"", "hello", "a\nb", "a\r\nb", "\r", "\n\n", "data: x\n\nid: 9", ": comment", "id: 1\r\nevent: done\r\n\r\n",
		"\x00", "\ufeffBOM", "\u2028\u2029", "\xff\xfe invalid", "</script>&", `"quoted" \ backslash`, strings.Repeat("x", 5000),
	} {
		f.Add(s, int64(1))
	}
	f.Fuzz(func(t *testing.T, s string, seq int64) {
		if seq < 0 {
			seq = -seq
		}
		if seq < 0 || seq > 1<<50 {
			seq = 1
		}
		args, _ := json.Marshal(s) // a JSON string: valid RawMessage
		payloads := []stream.Event{
			{Type: stream.TypeThinking, Thinking: &stream.Thinking{Status: s, Message: s, Iteration: len(s)}},
			{Type: stream.TypeToken, Token: &stream.Token{Delta: s}},
			{Type: stream.TypeToolCall, ToolCall: &stream.ToolCall{ID: s, Tool: s, Arguments: args}},
			{Type: stream.TypeToolResult, ToolResult: &stream.ToolResult{ID: s, Tool: s, Result: s, Success: true}},
			{Type: stream.TypeUsage, Usage: &stream.Usage{TokensInput: int64(len(s))}},
			{Type: stream.TypeError, Error: &stream.Error{RunID: s, Code: stream.CodeTool, Message: s}},
			{Type: stream.TypeDone, Done: &stream.Answer{RunID: s, Output: s, ToolCalls: []stream.ToolCallRecord{{Name: s, Arguments: args, Result: s}}}},
		}
		var out bytes.Buffer
		w := stream.NewWriter(bufio.NewWriter(&out))
		for i := range payloads {
			payloads[i].Seq = seq + int64(i)
			if err := w.Comment(s); err != nil {
				t.Fatal(err)
			}
			if err := w.Event(payloads[i]); err != nil {
				t.Fatalf("Event %s: %v", payloads[i].Type, err)
			}
			if err := w.Ping(); err != nil {
				t.Fatal(err)
			}
		}

		i := 0
		for ev, err := range sse.Read(bytes.NewReader(out.Bytes()), &sse.ReadConfig{MaxEventSize: 1 << 24}) {
			if err != nil {
				t.Fatalf("parse: %v\n%q", err, out.String())
			}
			if i >= len(payloads) {
				t.Fatalf("extra event %+v in %q", ev, out.String())
			}
			e := payloads[i]
			data, err := e.Data()
			if err != nil {
				t.Fatal(err)
			}
			if ev.LastEventID != strconv.FormatInt(e.Seq, 10) || ev.Type != string(e.Type) || ev.Data != string(data) {
				t.Fatalf("event %d read back as id %q type %q data %q; want %d %s %s", i, ev.LastEventID, ev.Type, ev.Data, e.Seq, e.Type, data)
			}
			got, err := stream.Parse(e.Seq, ev.Type, []byte(ev.Data))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if utf8.ValidString(s) && !reflect.DeepEqual(got, e) {
				t.Fatalf("event %d decodes to %+v, want %+v", i, got, e)
			}
			i++
		}
		if i != len(payloads) {
			t.Fatalf("read %d events, want %d", i, len(payloads))
		}
	})
}

func BenchmarkWriterEvent(b *testing.B) {
	for _, e := range []stream.Event{
		{Seq: 1, Type: stream.TypeToken, Token: &stream.Token{Iteration: 1, Delta: "hello, world"}},
		sampleRun("run_0123456789abcdef01")[12],
	} {
		b.Run(string(e.Type), func(b *testing.B) {
			w := stream.NewWriter(bufio.NewWriter(io.Discard))
			b.ReportAllocs()
			for b.Loop() {
				if err := w.Event(e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
