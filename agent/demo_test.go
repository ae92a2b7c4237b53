package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/agentgate/agentgate/agent"
)

func TestDemoModel(t *testing.T) {
	t.Parallel()
	tools := []agent.ToolSpec{{Name: "clock__now"}, {Name: "weather__forecast"}, {Name: "echo"}}
	user := func(s string) agent.Message { return agent.Message{Role: agent.RoleUser, Content: s} }
	sys := agent.Message{Role: agent.RoleSystem, Content: "You are helpful."}
	tests := []struct {
		name      string
		req       agent.Request
		want      string
		wantDelta []string
		wantCalls []agent.ToolCall
		usage     [2]int64
	}{
		{
			name:      "echo with word count",
			req:       agent.Request{Messages: []agent.Message{sys, user("hello big world")}},
			want:      `You said: "hello big world" (3 words).`,
			wantDelta: []string{"You", " said:", ` "hello`, " big", ` world"`, " (3", " words)."},
			usage:     [2]int64{4 + 4, 7},
		},
		{
			name:  "one word",
			req:   agent.Request{Messages: []agent.Message{user("hi")}},
			want:  `You said: "hi" (1 word).`,
			usage: [2]int64{2, 5},
		},
		{
			name: "tool line calls the tool by its short name",
			req: agent.Request{Tools: tools, Messages: []agent.Message{sys,
				user("what time is it?\n/tool now {\"tz\": \"UTC\"}")}},
			wantCalls: []agent.ToolCall{{ID: "call_demo_1", Name: "clock__now", Arguments: `{"tz": "UTC"}`}},
			usage:     [2]int64{4 + 9, 3},
		},
		{
			name: "several tool lines, exact name, default arguments",
			req: agent.Request{Tools: tools, Messages: []agent.Message{
				user("/tool weather__forecast {\"city\":\"Oslo\"}\n/tool echo")}},
			wantCalls: []agent.ToolCall{
				{ID: "call_demo_1", Name: "weather__forecast", Arguments: `{"city":"Oslo"}`},
				{ID: "call_demo_2", Name: "echo", Arguments: `{}`},
			},
			usage: [2]int64{6, 4},
		},
		{
			name: "after the tool result the answer quotes it",
			req: agent.Request{Tools: tools, Messages: []agent.Message{
				user("time?\n/tool now {}"),
				{Role: agent.RoleAssistant, ToolCalls: []agent.ToolCall{{ID: "call_demo_1", Name: "clock__now", Arguments: "{}"}}},
				{Role: agent.RoleTool, ToolCallID: "call_demo_1", Content: "12:00 UTC"},
			}},
			want:  "You said: \"time?\" (1 word).\nTool clock__now returned: 12:00 UTC",
			usage: [2]int64{5 + 2 + 3, 10},
		},
		{
			name: "unknown tool is reported, not called",
			req:  agent.Request{Tools: tools, Messages: []agent.Message{user("x\n/tool nope {}")}},
			want: "You said: \"x\" (1 word).\nTool nope is not available.",
		},
		{
			name: "no tools offered: tool lines are ignored",
			req:  agent.Request{Messages: []agent.Message{user("x\n/tool now {}")}},
			want: `You said: "x" (1 word).`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := agent.NewDemoModel(0)
			var deltas []string
			resp, err := m.Complete(context.Background(), tt.req, func(d string) { deltas = append(deltas, d) })
			if err != nil {
				t.Fatal(err)
			}
			if resp.Content != tt.want || strings.Join(deltas, "") != tt.want {
				t.Errorf("content %q (deltas %q), want %q", resp.Content, deltas, tt.want)
			}
			if tt.wantDelta != nil && fmt.Sprint(deltas) != fmt.Sprint(tt.wantDelta) {
				t.Errorf("deltas = %q, want %q", deltas, tt.wantDelta)
			}
			if fmt.Sprint(resp.ToolCalls) != fmt.Sprint(tt.wantCalls) {
				t.Errorf("calls = %+v, want %+v", resp.ToolCalls, tt.wantCalls)
			}
			wantFinish := "stop"
			if len(tt.wantCalls) > 0 {
				wantFinish = "tool_calls"
			}
			if resp.FinishReason != wantFinish {
				t.Errorf("finish = %q", resp.FinishReason)
			}
			if tt.usage != [2]int64{} && (resp.TokensInput != tt.usage[0] || resp.TokensOutput != tt.usage[1]) {
				t.Errorf("usage = %d/%d, want %v", resp.TokensInput, resp.TokensOutput, tt.usage)
			}
			again, _ := m.Complete(context.Background(), tt.req, nil)
			if fmt.Sprint(again) != fmt.Sprint(resp) {
				t.Errorf("not deterministic: %+v vs %+v", again, resp)
			}
		})
	}
}

func TestDemoJSON(t *testing.T) {
	t.Parallel()
	for _, format := range []agent.ResponseFormat{agent.FormatJSONObject, agent.FormatJSONSchema} {
		t.Run(fmt.Sprint(format), func(t *testing.T) {
			t.Parallel()
			req := agent.Request{Format: format, Messages: []agent.Message{
				{Role: agent.RoleUser, Content: `say "json" please, with a long enough input`},
				{Role: agent.RoleAssistant, ToolCalls: []agent.ToolCall{{ID: "a", Name: "t"}}},
				{Role: agent.RoleTool, ToolCallID: "a", Content: "res"},
			}}
			var deltas []string
			resp, err := agent.NewDemoModel(0).Complete(context.Background(), req, func(d string) { deltas = append(deltas, d) })
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Input       string `json:"input"`
				Words       int    `json:"words"`
				ToolResults []struct {
					Tool, Result string
				} `json:"tool_results"`
			}
			if err := json.Unmarshal([]byte(resp.Content), &got); err != nil {
				t.Fatalf("not JSON: %q", resp.Content)
			}
			if got.Input != req.Messages[0].Content || got.Words != 8 || len(got.ToolResults) != 1 || got.ToolResults[0].Result != "res" {
				t.Errorf("answer = %+v", got)
			}
			if len(deltas) < 2 || strings.Join(deltas, "") != resp.Content {
				t.Errorf("deltas = %q", deltas)
			}
		})
	}
}

func TestDemoPaceAndCancel(t *testing.T) {
	t.Parallel()
	m := agent.NewDemoModel(time.Hour) // only the first word can arrive
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("stop")
	var deltas []string
	resp, err := m.Complete(ctx, agent.Request{Messages: []agent.Message{{Role: agent.RoleUser, Content: "a b c"}}},
		func(d string) {
			deltas = append(deltas, d)
			cancel(cause) // the caller goes away after the first word
		})
	if !errors.Is(err, cause) {
		t.Fatalf("err = %v, want the cause", err)
	}
	if len(deltas) != 1 || resp.Content != "You" || resp.TokensOutput != 1 {
		t.Errorf("deltas %q, resp %+v", deltas, resp)
	}
	if _, err := m.Complete(ctx, agent.Request{}, nil); !errors.Is(err, cause) {
		t.Errorf("done ctx: err = %v", err)
	}
}

func TestModelsDemo(t *testing.T) {
	t.Parallel()
	m, err := agent.NewModels(nil, agent.ModelOptions{}).For("demo", "", "")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := m.Complete(context.Background(), agent.Request{Messages: []agent.Message{{Role: agent.RoleUser, Content: "hey"}}}, nil)
	if err != nil || resp.Content != `You said: "hey" (1 word).` {
		t.Errorf("resp %+v, err %v", resp, err)
	}
}
