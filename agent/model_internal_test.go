package agent

import (
	"fmt"
	"testing"
)

func delta(index int64, id, name, args string) toolCallDelta {
	return toolCallDelta{index: index, id: id, name: name, arguments: args}
}

func TestCallAssembler(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		deltas []toolCallDelta
		want   []ToolCall
	}{
		{
			name: "interleaved indexes, ordered by index",
			deltas: []toolCallDelta{
				delta(1, "b", "two", ""), delta(0, "a", "one", `{"x"`),
				delta(1, "", "", `{}`), delta(0, "", "", `:1}`),
			},
			want: []ToolCall{{ID: "a", Name: "one", Arguments: `{"x":1}`}, {ID: "b", Name: "two", Arguments: `{}`}},
		},
		{
			name: "name and id repeated in every chunk",
			deltas: []toolCallDelta{
				delta(0, "a", "one", `{"q":`), delta(0, "a", "one", `"v"}`),
			},
			want: []ToolCall{{ID: "a", Name: "one", Arguments: `{"q":"v"}`}},
		},
		{
			name: "every call at index 0 with its own id",
			deltas: []toolCallDelta{
				delta(0, "a", "one", `{}`), delta(0, "b", "two", `{"k":`), delta(0, "", "", `2}`),
			},
			want: []ToolCall{{ID: "a", Name: "one", Arguments: `{}`}, {ID: "b", Name: "two", Arguments: `{"k":2}`}},
		},
		{
			name:   "missing id is generated",
			deltas: []toolCallDelta{delta(0, "", "one", `{}`)},
			want:   []ToolCall{{ID: "call_1", Name: "one", Arguments: `{}`}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var a callAssembler
			for i := range tt.deltas {
				a.add(&tt.deltas[i])
			}
			if got := a.result(); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestIsReasoningModel(t *testing.T) {
	t.Parallel()
	for model, want := range map[string]bool{
		"o1": true, "o3-mini": true, "o4-mini-2025-04-16": true, "gpt-5": true, "gpt-5-mini": true,
		"openai/o3": true, "gpt-5-chat-latest": false, "gpt-4o": false, "o1x": false, "llama-3.3-70b-versatile": false,
	} {
		if got := isReasoningModel(model); got != want {
			t.Errorf("isReasoningModel(%q) = %v", model, got)
		}
	}
}
