package agent

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// NewDemoModel returns the built-in offline model (SPEC §8). It needs no key and no network:
// it answers `You said: "<input>" (<n> words).` for the last user message, streamed word by
// word with pace between words. When tools are offered and that message holds lines
// `/tool <name> <json-arguments>`, the first call requests those tools (name matched exactly
// or by the part after "__"); the call after the tool results answers with the results
// quoted. With a JSON format it answers {"input": …, "words": n, "tool_results": […]}.
// Usage is deterministic: input = words in all messages + 1 per message, output = deltas.
func NewDemoModel(pace time.Duration) Model { return &demoModel{pace: pace} }

type demoModel struct{ pace time.Duration }

var _ Model = (*demoModel)(nil)

type demoResult struct {
	Tool   string `json:"tool"`
	Result string `json:"result"`
}

// Complete answers req. See NewDemoModel.
func (d *demoModel) Complete(ctx context.Context, req Request, onDelta func(delta string)) (Response, error) {
	if ctx.Err() != nil {
		return Response{}, context.Cause(ctx)
	}
	last := -1
	for i := len(req.Messages) - 1; i >= 0; i-- {
		if req.Messages[i].Role == RoleUser {
			last = i
			break
		}
	}
	var input string
	if last >= 0 {
		input = req.Messages[last].Content
	}
	text, commands := splitToolLines(input)

	// Tool results (and calls already made) since the last user message.
	names := map[string]string{}
	var results []demoResult
	called := false
	priorCalls := 0
	for i, msg := range req.Messages {
		priorCalls += len(msg.ToolCalls)
		if i <= last {
			continue
		}
		for _, tc := range msg.ToolCalls {
			names[tc.ID] = tc.Name
			called = true
		}
		if msg.Role == RoleTool {
			results = append(results, demoResult{Tool: names[msg.ToolCallID], Result: msg.Content})
		}
	}

	inTokens := demoInputTokens(req.Messages)
	var missing []string
	if len(req.Tools) > 0 && !called && len(results) == 0 && len(commands) > 0 {
		var calls []ToolCall
		var out int64
		for _, c := range commands {
			name, ok := matchTool(c.name, req.Tools)
			if !ok {
				missing = append(missing, c.name)
				continue
			}
			calls = append(calls, ToolCall{
				ID:        "call_demo_" + strconv.Itoa(priorCalls+len(calls)+1),
				Name:      name,
				Arguments: c.args,
			})
			out += 1 + int64(len(strings.Fields(c.args)))
		}
		if len(calls) > 0 {
			return Response{ToolCalls: calls, FinishReason: "tool_calls", TokensInput: inTokens, TokensOutput: out}, nil
		}
	}

	words := len(strings.Fields(text))
	var answer string
	var deltas []string
	if req.Format == FormatJSONObject || req.Format == FormatJSONSchema {
		body, _ := json.Marshal(struct {
			Input       string       `json:"input"`
			Words       int          `json:"words"`
			ToolResults []demoResult `json:"tool_results,omitempty"`
			Missing     []string     `json:"unavailable_tools,omitempty"`
		}{text, words, results, missing})
		answer = string(body)
		deltas = splitPieces(answer, 16)
	} else {
		var b strings.Builder
		b.WriteString(`You said: "`)
		b.WriteString(text)
		b.WriteString(`" (`)
		b.WriteString(strconv.Itoa(words))
		if words == 1 {
			b.WriteString(" word).")
		} else {
			b.WriteString(" words).")
		}
		for _, r := range results {
			b.WriteString("\nTool ")
			b.WriteString(r.Tool)
			b.WriteString(" returned: ")
			b.WriteString(r.Result)
		}
		for _, name := range missing {
			b.WriteString("\nTool ")
			b.WriteString(name)
			b.WriteString(" is not available.")
		}
		answer = b.String()
		deltas = splitWords(answer)
	}

	resp := Response{FinishReason: "stop", TokensInput: inTokens}
	var sent strings.Builder
	var timer *time.Timer
	for i, delta := range deltas {
		if i > 0 && d.pace > 0 {
			if timer == nil {
				timer = time.NewTimer(d.pace)
				defer timer.Stop()
			} else {
				timer.Reset(d.pace)
			}
			select {
			case <-timer.C:
			case <-ctx.Done():
				resp.Content = sent.String()
				return resp, context.Cause(ctx)
			}
		} else if ctx.Err() != nil {
			resp.Content = sent.String()
			return resp, context.Cause(ctx)
		}
		sent.WriteString(delta)
		resp.TokensOutput++
		if onDelta != nil {
			onDelta(delta)
		}
	}
	resp.Content = sent.String()
	return resp, nil
}

type toolCommand struct{ name, args string }

// splitToolLines separates `/tool <name> <json>` lines from the rest of the input.
func splitToolLines(input string) (text string, cmds []toolCommand) {
	var keep []string
	for line := range strings.Lines(input) {
		trimmed := strings.TrimSpace(line)
		rest, ok := strings.CutPrefix(trimmed, "/tool ")
		if !ok {
			keep = append(keep, line)
			continue
		}
		rest = strings.TrimSpace(rest)
		name, args, _ := strings.Cut(rest, " ")
		args = strings.TrimSpace(args)
		if args == "" {
			args = "{}"
		}
		if name != "" {
			cmds = append(cmds, toolCommand{name: name, args: args})
		}
	}
	return strings.TrimSpace(strings.Join(keep, "")), cmds
}

// matchTool finds an offered tool by its exact name or by the part after "__".
func matchTool(name string, tools []ToolSpec) (string, bool) {
	for _, t := range tools {
		if t.Name == name {
			return t.Name, true
		}
	}
	for _, t := range tools {
		if _, short, ok := strings.Cut(t.Name, "__"); ok && short == name {
			return t.Name, true
		}
	}
	return "", false
}

func demoInputTokens(msgs []Message) int64 {
	var n int64
	for _, m := range msgs {
		n += 1 + int64(len(strings.Fields(m.Content)))
		for _, tc := range m.ToolCalls {
			n += int64(len(strings.Fields(tc.Arguments)))
		}
	}
	return n
}

// splitWords splits s into deltas that each start with the whitespace before their word.
func splitWords(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	start := 0
	for i := 1; i < len(s); i++ {
		if isBlank(s[i]) && !isBlank(s[i-1]) {
			out = append(out, s[start:i])
			start = i
		}
	}
	return append(out, s[start:])
}

func isBlank(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

// splitPieces splits s into pieces of about n bytes at rune boundaries.
func splitPieces(s string, n int) []string {
	var out []string
	for len(s) > 0 {
		k := min(n, len(s))
		for k < len(s) && !utf8.RuneStart(s[k]) {
			k++
		}
		out = append(out, s[:k])
		s = s[k:]
	}
	return out
}
