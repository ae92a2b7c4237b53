package stream_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/agentgate/agentgate/stream"
)

func TestAggregator(t *testing.T) {
	t.Parallel()
	run := sampleRun("run_0123456789abcdef01")
	tokens := func(deltas ...string) []stream.Event {
		var out []stream.Event
		for _, d := range deltas {
			out = append(out, stream.Event{Type: stream.TypeToken, Token: &stream.Token{Delta: d}})
		}
		return out
	}
	failed := &stream.Error{RunID: "run_0123456789abcdef01", Code: stream.CodeLLM, Message: "model failed"}
	tests := []struct {
		name     string
		events   []stream.Event
		done     bool
		answer   stream.Answer
		errCode  string
		errMsg   string
		output   string
		errRunID string
	}{
		{name: "success", events: run, done: true, answer: *run[len(run)-1].Done, output: "It is 21 °C\nand dry."},
		{name: "error", events: append(tokens("par", "tial"), stream.Event{Type: stream.TypeError, Error: failed}),
			done: true, errCode: stream.CodeLLM, errMsg: "model failed", errRunID: failed.RunID, output: "partial"},
		{name: "no terminal", events: tokens("a", "b"), errCode: stream.CodeInternal, output: "ab"},
		{name: "empty", errCode: stream.CodeInternal},
		{name: "events after terminal ignored",
			events: append(append(append([]stream.Event(nil), run...), tokens("late")...),
				stream.Event{Type: stream.TypeError, Error: failed}),
			done: true, answer: *run[len(run)-1].Done, output: "It is 21 °C\nand dry."},
		{name: "done without payload", events: append(tokens("x"), stream.Event{Type: stream.TypeDone}),
			done: true, errCode: stream.CodeInternal, output: "x"},
		{name: "error without payload", events: []stream.Event{{Type: stream.TypeError}}, done: true, errCode: stream.CodeInternal},
		{name: "error without code", events: []stream.Event{{Type: stream.TypeError, Error: &stream.Error{Message: "?"}}},
			done: true, errCode: stream.CodeInternal, errMsg: "?"},
		{name: "malformed progress ignored",
			events: []stream.Event{{Type: stream.TypeToken}, {Type: "bogus"}, {Type: stream.TypeUsage}, tokens("ok")[0],
				{Type: stream.TypeDone, Done: &stream.Answer{Output: "ok"}}},
			done: true, answer: stream.Answer{Output: "ok"}, output: "ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var a stream.Aggregator
			for _, e := range tt.events {
				a.Add(e)
			}
			if a.Done() != tt.done {
				t.Errorf("Done() = %v, want %v", a.Done(), tt.done)
			}
			if a.Output() != tt.output {
				t.Errorf("Output() = %q, want %q", a.Output(), tt.output)
			}
			answer, err := a.Result()
			if tt.errCode == "" {
				if err != nil {
					t.Fatalf("Result error %v", err)
				}
				if !reflect.DeepEqual(answer, tt.answer) {
					t.Errorf("Result answer %+v, want %+v", answer, tt.answer)
				}
				return
			}
			if err == nil {
				t.Fatalf("Result answer %+v, want error %s", answer, tt.errCode)
			}
			if err.Code != tt.errCode || (tt.errMsg != "" && err.Message != tt.errMsg) || err.RunID != tt.errRunID || err.Message == "" {
				t.Errorf("Result error %+v, want code %s message %q run %q", err, tt.errCode, tt.errMsg, tt.errRunID)
			}
			if !reflect.DeepEqual(answer, stream.Answer{}) {
				t.Errorf("failed run answered %+v", answer)
			}
		})
	}
}

// TestAggregatorResultIsACopy: a caller that decorates the error (the server adds the run id)
// must not change what a second Result call or the published event says.
func TestAggregatorResultIsACopy(t *testing.T) {
	t.Parallel()
	published := &stream.Error{Code: stream.CodeTool, Message: "boom"}
	var a stream.Aggregator
	a.Add(stream.Event{Type: stream.TypeError, Error: published})
	_, err := a.Result()
	err.RunID = "run_0123456789abcdef01"
	if _, again := a.Result(); again.RunID != "" || published.RunID != "" {
		t.Fatalf("Result shares its error: %+v, %+v", again, published)
	}
}

// FuzzAggregator folds arbitrary event sequences (types, missing payloads, events after the
// terminal one) and checks the invariants.
func FuzzAggregator(f *testing.F) {
	f.Add([]byte{1, 1, 5}, "hi")
	f.Add([]byte{1, 6, 1, 5}, "x")
	f.Add([]byte{12, 13, 7, 0, 2, 3, 4}, "")
	f.Add([]byte{}, "")
	types := append(append([]stream.Type(nil), stream.AllTypes...), "bogus")
	f.Fuzz(func(t *testing.T, ops []byte, text string) {
		var a stream.Aggregator
		var wantOut strings.Builder
		var first *stream.Event // the first terminal event
		for i, op := range ops {
			e := stream.Event{Seq: int64(i + 1), Type: types[int(op)%len(types)]}
			if op < 128 { // otherwise the payload is missing
				switch e.Type {
				case stream.TypeThinking:
					e.Thinking = &stream.Thinking{Message: text}
				case stream.TypeToken:
					e.Token = &stream.Token{Delta: text}
				case stream.TypeToolCall:
					e.ToolCall = &stream.ToolCall{Tool: text}
				case stream.TypeToolResult:
					e.ToolResult = &stream.ToolResult{Result: text}
				case stream.TypeUsage:
					e.Usage = &stream.Usage{TokensInput: int64(op)}
				case stream.TypeDone:
					e.Done = &stream.Answer{Output: text}
				case stream.TypeError:
					e.Error = &stream.Error{Code: text, Message: text}
				}
			}
			if first == nil {
				if e.Token != nil {
					wantOut.WriteString(e.Token.Delta)
				}
				if e.Type.Terminal() {
					first = &e
				}
			}
			a.Add(e)
		}
		if a.Done() != (first != nil) {
			t.Fatalf("Done() = %v with terminal %v", a.Done(), first)
		}
		if a.Output() != wantOut.String() {
			t.Fatalf("Output() = %q, want %q", a.Output(), wantOut.String())
		}
		answer, err := a.Result()
		switch {
		case first != nil && first.Done != nil:
			if err != nil || !reflect.DeepEqual(answer, *first.Done) {
				t.Fatalf("Result = %+v, %v; want the done payload", answer, err)
			}
		case err == nil || err.Code == "":
			t.Fatalf("Result = %+v, %v; want an error with a code", answer, err)
		}
	})
}
