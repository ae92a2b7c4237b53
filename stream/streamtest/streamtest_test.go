package streamtest

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/agentgate/agentgate/stream"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []Message
	}{
		{"empty", "", nil},
		{"retry and comments are not events", "retry: 3000\n\n: ping\n\n:\n\n", nil},
		{"events", "retry: 3000\n\nid: 1\nevent: token\ndata: {\"a\":1}\n\n: ping\n\nid: 2\nevent: done\ndata: {}\n\n",
			[]Message{{"1", "token", `{"a":1}`}, {"2", "done", "{}"}}},
		{"CRLF and multi-line data", "id: 1\r\nevent: x\r\ndata: a\r\ndata: b\r\n\r\n", []Message{{"1", "x", "a\nb"}}},
		{"byte order mark", "\ufeffid: 3\nevent: x\ndata: y\n\n", []Message{{"3", "x", "y"}}},
		{"incomplete last event dropped", "id: 1\nevent: x\ndata: y\n\nid: 2\nevent: x\ndata: z\n", []Message{{"1", "x", "y"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Parse(t, strings.NewReader(tt.in)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse = %#v, want %#v", got, tt.want)
			}
		})
	}
}

// written renders events with the real Writer, as the server does.
func written(tb testing.TB, events ...stream.Event) []byte {
	tb.Helper()
	var b bytes.Buffer
	w := stream.NewWriter(bufio.NewWriter(&b))
	if err := w.Retry(3000); err != nil {
		tb.Fatal(err)
	}
	for i, e := range events {
		e.Seq = int64(i + 1)
		if err := w.Event(e); err != nil {
			tb.Fatal(err)
		}
		if err := w.Ping(); err != nil {
			tb.Fatal(err)
		}
	}
	return b.Bytes()
}

func TestDecode(t *testing.T) {
	t.Parallel()
	token := func(id string) Message { return Message{id, "token", `{"type":"token","iteration":1,"delta":"x"}`} }
	done := func(id string) Message {
		return Message{id, "done", `{"type":"done","run_id":"run_0123456789abcdef01","output":"x","tool_calls":[],"usage":{}}`}
	}
	tests := []struct {
		name    string
		msgs    []Message
		wantErr string
	}{
		{"whole run", []Message{token("1"), token("2"), done("3")}, ""},
		{"resumed run", []Message{token("5"), done("6")}, ""},
		{"error end", []Message{{"1", "error", `{"type":"error","run_id":"r","code":"LLM_ERROR","message":"m"}`}}, ""},
		{"empty", nil, "empty stream"},
		{"gap", []Message{token("1"), token("3"), done("4")}, "follows"},
		{"duplicate", []Message{token("1"), token("1"), done("2")}, "follows"},
		{"bad id", []Message{token("x"), done("2")}, "not a sequence number"},
		{"zero id", []Message{done("0")}, "not a sequence number"},
		{"no terminal", []Message{token("1"), token("2")}, "last event"},
		{"terminal mid-stream", []Message{done("1"), token("2")}, "last event"},
		{"type mismatch", []Message{{"1", "done", strings.Replace(done("1").Data, `"type":"done"`, `"type":"token"`, 1)}}, "data type"},
		{"unknown event", []Message{{"1", "bogus", `{"type":"bogus"}`}}, "unknown event type"},
		{"bad json", []Message{{"1", "done", `{"type":"done",`}}, "decode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			events, err := decode(tt.msgs)
			if tt.wantErr == "" {
				if err != nil || len(events) != len(tt.msgs) {
					t.Fatalf("decode: %d events, %v", len(events), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("decode error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestDecodeWriterOutput(t *testing.T) {
	t.Parallel()
	in := []stream.Event{
		{Type: stream.TypeThinking, Thinking: &stream.Thinking{Status: stream.StatusStarting, Message: "Starting"}},
		{Type: stream.TypeToken, Token: &stream.Token{Iteration: 1, Delta: "line\nbreak"}},
		{Type: stream.TypeDone, Done: &stream.Answer{RunID: "run_0123456789abcdef01", Output: "line\nbreak"}},
	}
	got := Decode(t, Parse(t, bytes.NewReader(written(t, in...))))
	for i := range in {
		in[i].Seq = int64(i + 1)
	}
	if !reflect.DeepEqual(got, in) {
		t.Errorf("Decode = %+v, want %+v", got, in)
	}
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	in := []Message{
		{"1", "tool_result", `{"type":"tool_result","id":"c1","success":true,"latency_ms":231,"result":"run_aaaaaaaaaaaaaaaaaa"}`},
		{"2", "usage", `{"type":"usage","tokens_input":312,"cost_cents":0.08}`},
		{"3", "done", `{"type":"done","run_id":"run_0123456789abcdef01","tool_calls":[{"latencyMs":17}],` +
			`"usage":{"latency_ms":1456.5,"ttft_ms":-3,"ttft":2e3,"latency_ms_total":5},"other":"run_0123456789abcdef01 run_aaaaaaaaaaaaaaaaaa run_short"}`},
	}
	want := []Message{
		{"1", "tool_result", `{"type":"tool_result","id":"c1","success":true,"latency_ms":0,"result":"run_000000000000000001"}`},
		{"2", "usage", `{"type":"usage","tokens_input":312,"cost_cents":0.08}`},
		{"3", "done", `{"type":"done","run_id":"run_000000000000000002","tool_calls":[{"latencyMs":0}],` +
			`"usage":{"latency_ms":0,"ttft_ms":0,"ttft":0,"latency_ms_total":5},"other":"run_000000000000000002 run_000000000000000001 run_short"}`},
	}
	orig := append([]Message(nil), in...)
	got := Normalize(in)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Normalize =\n%#v\nwant\n%#v", got, want)
	}
	if !reflect.DeepEqual(in, orig) {
		t.Error("Normalize changed its input")
	}
}

func TestFormatRoundTrip(t *testing.T) {
	t.Parallel()
	out := written(t,
		stream.Event{Type: stream.TypeToken, Token: &stream.Token{Iteration: 1, Delta: "a"}},
		stream.Event{Type: stream.TypeDone, Done: &stream.Answer{RunID: "run_0123456789abcdef01", Output: "a"}},
	)
	msgs := Parse(t, bytes.NewReader(out))
	formatted := Format(msgs)
	// The Writer's output minus retry and pings is exactly the canonical transcript.
	want := strings.ReplaceAll(strings.TrimPrefix(string(out), "retry: 3000\n\n"), ": ping\n\n", "")
	if string(formatted) != want {
		t.Errorf("Format =\n%s\nwant\n%s", formatted, want)
	}
	if again := Parse(t, bytes.NewReader(formatted)); !reflect.DeepEqual(again, msgs) {
		t.Errorf("Format does not round-trip: %+v vs %+v", again, msgs)
	}
	multi := []Message{{"1", "x", "a\nb"}, {"", "", ""}}
	if got := string(Format(multi)); got != "id: 1\nevent: x\ndata: a\ndata: b\n\ndata: \n\n" {
		t.Errorf("Format(%+v) = %q", multi, got)
	}
}

func TestGolden(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "testdata", "sub", "x.golden")
	if err := golden(path, []byte("a\nb\n"), false); err == nil || !strings.Contains(err.Error(), "-update") {
		t.Fatalf("missing golden file: %v", err)
	}
	if err := golden(path, []byte("a\nb\n"), true); err != nil {
		t.Fatalf("update: %v", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "a\nb\n" {
		t.Fatalf("update wrote %q, %v", b, err)
	}
	if err := golden(path, []byte("a\nb\n"), false); err != nil {
		t.Fatalf("same content: %v", err)
	}
	tests := []struct{ got, line string }{
		{"a\nc\n", "line 2"},
		{"a\nb\nextra\n", "line 3"},
		{"a\n", "line 2"},
	}
	for _, tt := range tests {
		err := golden(path, []byte(tt.got), false)
		if err == nil || !strings.Contains(err.Error(), tt.line) {
			t.Errorf("golden(%q): %v, want a diff at %s", tt.got, err, tt.line)
		}
	}
	if Updating() {
		t.Log("running with -update")
	}
}

// TestGoldenFile exercises Golden itself on a file kept under testdata/.
func TestGoldenFile(t *testing.T) {
	t.Parallel()
	out := written(t,
		stream.Event{Type: stream.TypeThinking, Thinking: &stream.Thinking{Status: stream.StatusStarting, Message: "Starting"}},
		stream.Event{Type: stream.TypeToolResult, ToolResult: &stream.ToolResult{Iteration: 1, ID: "c1", Tool: "t", Success: true, LatencyMs: 4321, Result: "ok"}},
		stream.Event{Type: stream.TypeDone, Done: &stream.Answer{RunID: "run_fedcba9876543210ff", Output: "ok", Usage: stream.RunUsage{LatencyMs: 987}}},
	)
	Golden(t, "testdata/normalized.golden", Format(Normalize(Parse(t, bytes.NewReader(out)))))
}
