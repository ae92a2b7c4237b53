package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/agentgate/agentgate/agent"
	"github.com/agentgate/agentgate/agent/llmtest"
	"github.com/agentgate/agentgate/stream"
)

const (
	formatPrompt = "You extract facts."
	formatInput  = "Paris is the capital of France."
	citySchema   = `{"type":"object","properties":{"city":{"type":"string"},"country":{"type":"string"}},"required":["city","country"],"additionalProperties":false}`
)

// formatRun is one agent.Run against the scripted LLM.
type formatRun struct {
	out    agent.Outcome
	events []stream.Event
	reqs   []llmtest.Request
}

// mustFormat builds a Format or fails the test.
func mustFormat(tb testing.TB, kind, schema string) *agent.Format {
	tb.Helper()
	var raw json.RawMessage
	if schema != "" {
		raw = json.RawMessage(schema)
	}
	f, err := agent.NewFormat(kind, raw)
	if err != nil {
		tb.Fatalf("NewFormat(%q, %s): %v", kind, schema, err)
	}
	return f
}

// runFormat runs the loop with format against a fresh scripted LLM answering replies in order,
// through a real OpenAI-compatible model (agent.NewModels) over HTTP.
func runFormat(tb testing.TB, format *agent.Format, replies ...llmtest.Reply) formatRun {
	tb.Helper()
	llm := llmtest.New(tb)
	llm.Script(replies...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var fr formatRun
	fr.out = agent.Run(ctx, &agent.Spec{
		RunID: "run_format", Model: mustModel(tb, llm), ModelName: "gpt-4o-mini",
		SystemPrompt: formatPrompt, Input: formatInput, MaxTokens: 256, Temperature: 0.3,
		Format: format, MaxToolCalls: 3,
	}, func(ev stream.Event) { fr.events = append(fr.events, ev) })
	fr.reqs = llm.Requests()
	return fr
}

// retries returns the messages of the "Retrying: …" thinking events.
func (fr formatRun) retries() []string {
	var out []string
	for _, ev := range fr.events {
		if ev.Type == stream.TypeThinking && strings.HasPrefix(ev.Thinking.Message, "Retrying: ") {
			out = append(out, ev.Thinking.Message)
		}
	}
	return out
}

// tokensSinceRetry concatenates the token deltas after the last "Retrying" event: the tokens
// of the answer that counts.
func (fr formatRun) tokensSinceRetry() string {
	var b strings.Builder
	for _, ev := range fr.events {
		switch {
		case ev.Type == stream.TypeThinking && strings.HasPrefix(ev.Thinking.Message, "Retrying: "):
			b.Reset()
		case ev.Type == stream.TypeToken:
			b.WriteString(ev.Token.Delta)
		}
	}
	return b.String()
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

// TestRunFormats covers every output format × schema × (valid, fenced, invalid then fixed,
// invalid twice) through agent.Run with a real model against llmtest.
func TestRunFormats(t *testing.T) {
	t.Parallel()
	const (
		prose      = "The city is Paris, in France."
		valid      = `{"city": "Paris", "country": "France"}`
		compact    = `{"city":"Paris","country":"France"}`
		fenced     = "```json\n{\"city\": \"Paris\", \"country\": \"France\"}\n```"
		partial    = `{"city": "Paris"}`
		wrongType  = `{"city": "Paris", "country": 33}`
		notJSONMsg = "output is not valid JSON"
		schemaMsg  = "output does not match output_schema"
	)
	type scenario struct {
		replies  []string
		requests int
		output   string // the raw output of the run (the last answer)
		parsed   string // outputParsed; "" when none
		retry    string // substring of the corrective message; "" when no retry
		fail     string // substring of the VALIDATION_ERROR message; "" on success
	}
	tests := []struct {
		name   string
		kind   string
		schema string
		sc     scenario
	}{
		// text: nothing added, nothing parsed — every answer is accepted as is.
		{"text/valid", "text", "", scenario{replies: []string{prose}, requests: 1, output: prose}},
		{"text/fenced", "text", "", scenario{replies: []string{fenced}, requests: 1, output: fenced}},
		{"text/invalid then fixed", "text", "", scenario{replies: []string{prose, valid}, requests: 1, output: prose}},
		{"text/invalid twice", "text", "", scenario{replies: []string{prose, prose}, requests: 1, output: prose}},
		// markdown: an instruction, the answer is text.
		{"markdown/valid", "markdown", "", scenario{replies: []string{"# Paris\n\n- capital of **France**"}, requests: 1, output: "# Paris\n\n- capital of **France**"}},
		{"markdown/fenced", "markdown", "", scenario{replies: []string{fenced}, requests: 1, output: fenced}},
		{"markdown/invalid then fixed", "markdown", "", scenario{replies: []string{prose, valid}, requests: 1, output: prose}},
		{"markdown/invalid twice", "markdown", "", scenario{replies: []string{prose, prose}, requests: 1, output: prose}},
		// json without a schema.
		{"json/valid", "json", "", scenario{replies: []string{valid}, requests: 1, output: valid, parsed: compact}},
		{"json/fenced", "json", "", scenario{replies: []string{fenced}, requests: 1, output: fenced, parsed: compact}},
		{"json/invalid then fixed", "json", "", scenario{replies: []string{prose, valid}, requests: 2, output: valid, parsed: compact, retry: notJSONMsg}},
		{"json/invalid twice", "json", "", scenario{replies: []string{prose, "Paris, France"}, requests: 2, output: "Paris, France", retry: notJSONMsg, fail: notJSONMsg}},
		{"json/any JSON value", "json", "", scenario{replies: []string{partial}, requests: 1, output: partial, parsed: `{"city":"Paris"}`}},
		// json with output_schema.
		{"json+schema/valid", "json", citySchema, scenario{replies: []string{valid}, requests: 1, output: valid, parsed: compact}},
		{"json+schema/fenced", "json", citySchema, scenario{replies: []string{fenced}, requests: 1, output: fenced, parsed: compact}},
		{"json+schema/invalid then fixed", "json", citySchema, scenario{replies: []string{partial, valid}, requests: 2, output: valid, parsed: compact, retry: schemaMsg}},
		{"json+schema/not JSON then fixed", "json", citySchema, scenario{replies: []string{prose, fenced}, requests: 2, output: fenced, parsed: compact, retry: notJSONMsg}},
		{"json+schema/invalid twice", "json", citySchema, scenario{replies: []string{partial, wrongType}, requests: 2, output: wrongType, retry: schemaMsg, fail: schemaMsg}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			format := mustFormat(t, tt.kind, tt.schema)
			replies := make([]llmtest.Reply, len(tt.sc.replies))
			for i, text := range tt.sc.replies {
				replies[i] = llmtest.Reply{Text: text}
			}
			fr := runFormat(t, format, replies...)

			if len(fr.reqs) != tt.sc.requests {
				t.Fatalf("%d model requests, want %d", len(fr.reqs), tt.sc.requests)
			}
			// The system prompt: the endpoint's, plus the format's instruction.
			sys := fr.reqs[0].Messages[0]
			if sys.Role != "system" {
				t.Fatalf("first message %+v", sys)
			}
			switch {
			case tt.kind == "text":
				if sys.Content != formatPrompt {
					t.Fatalf("text adds nothing to the system prompt, got %q", sys.Content)
				}
			case tt.kind == "markdown":
				if sys.Content != formatPrompt+"\n\nFormat your answer as Markdown." {
					t.Fatalf("markdown system prompt %q", sys.Content)
				}
			case tt.schema == "":
				if !strings.HasPrefix(sys.Content, formatPrompt+"\n\n") || !strings.Contains(sys.Content, "Respond with valid JSON only") ||
					strings.Contains(sys.Content, "JSON Schema") {
					t.Fatalf("json system prompt %q", sys.Content)
				}
			default:
				if !strings.Contains(sys.Content, "Respond with valid JSON only") || !strings.Contains(sys.Content, "JSON Schema") ||
					!strings.Contains(sys.Content, tt.schema) {
					t.Fatalf("json+schema system prompt %q", sys.Content)
				}
			}
			// The provider's JSON mode, on every call (the retry too).
			for i, req := range fr.reqs {
				rf := req.ResponseFormat
				switch {
				case tt.kind != "json":
					if rf != nil {
						t.Fatalf("request %d: response_format %+v sent for %s", i, rf, tt.kind)
					}
				case tt.schema == "":
					if rf == nil || rf.Type != "json_object" {
						t.Fatalf("request %d: response_format %+v, want json_object", i, rf)
					}
				default:
					if rf == nil || rf.Type != "json_schema" || rf.Name == "" || !jsonEqual(rf.JSONSchema, []byte(tt.schema)) {
						t.Fatalf("request %d: response_format %+v, want json_schema with the schema", i, rf)
					}
				}
			}
			// The corrective retry tells the model what was wrong.
			retries := fr.retries()
			if tt.sc.retry == "" {
				if len(retries) != 0 {
					t.Fatalf("unexpected retry %q", retries)
				}
			} else {
				if len(retries) != 1 || !strings.Contains(retries[0], tt.sc.retry) {
					t.Fatalf("retry events %q, want one with %q", retries, tt.sc.retry)
				}
				msgs := fr.reqs[1].Messages
				if len(msgs) != 4 || msgs[0].Content != sys.Content || msgs[1].Role != "user" || msgs[1].Content != formatInput ||
					msgs[2].Role != "assistant" || msgs[2].Content != tt.sc.replies[0] || msgs[3].Role != "user" {
					t.Fatalf("retry conversation %+v", msgs)
				}
				fix := msgs[3].Content
				if !strings.HasPrefix(fix, "Your previous answer was rejected: "+tt.sc.retry) || !strings.Contains(fix, "valid JSON only") {
					t.Fatalf("corrective message %q", fix)
				}
				told, _, _ := strings.Cut(strings.TrimPrefix(fix, "Your previous answer was rejected: "), ". Answer again")
				if told != strings.TrimPrefix(retries[0], "Retrying: ") {
					t.Fatalf("the retry event %q and the corrective message %q disagree", retries[0], fix)
				}
			}
			// The outcome, the terminal event, and the raw output kept either way.
			last := fr.events[len(fr.events)-1]
			if fr.out.Output != tt.sc.output {
				t.Fatalf("Outcome.Output %q, want %q", fr.out.Output, tt.sc.output)
			}
			if fr.out.Iterations != tt.sc.requests {
				t.Fatalf("iterations %d, want %d", fr.out.Iterations, tt.sc.requests)
			}
			if tt.sc.fail != "" {
				if fr.out.Status != agent.StatusError || fr.out.Err == nil || fr.out.Err.Code != stream.CodeValidation ||
					!strings.Contains(fr.out.Err.Message, tt.sc.fail) || fr.out.Answer != nil {
					t.Fatalf("outcome %+v err %+v, want VALIDATION_ERROR %q", fr.out, fr.out.Err, tt.sc.fail)
				}
				if last.Type != stream.TypeError || *last.Error != *fr.out.Err || last.Error.RunID != "run_format" {
					t.Fatalf("terminal event %+v", last)
				}
				return
			}
			if fr.out.Status != agent.StatusSuccess || fr.out.Answer == nil || last.Type != stream.TypeDone {
				t.Fatalf("outcome %+v err %+v, last event %s", fr.out, fr.out.Err, last.Type)
			}
			if got := string(last.Done.OutputParsed); got != tt.sc.parsed {
				t.Fatalf("outputParsed %q, want %q", got, tt.sc.parsed)
			}
			if last.Done.Output != tt.sc.output || fr.tokensSinceRetry() != last.Done.Output {
				t.Fatalf("done.output %q, tokens since the retry %q, want %q", last.Done.Output, fr.tokensSinceRetry(), tt.sc.output)
			}
			if data, _ := last.Data(); tt.sc.parsed == "" && strings.Contains(string(data), "outputParsed") {
				t.Fatalf("done carries outputParsed without json output: %s", data)
			}
		})
	}
}

// TestRunFormatRetryUsage: both calls of a corrected run are counted and billed; the answer
// is the corrected one.
func TestRunFormatRetryUsage(t *testing.T) {
	t.Parallel()
	fr := runFormat(t, mustFormat(t, "json", ""),
		llmtest.Reply{Text: "no json here", Usage: &llmtest.Usage{Prompt: 10, Completion: 3}},
		llmtest.Reply{Text: `{"ok": true}`, Usage: &llmtest.Usage{Prompt: 20, Completion: 4}})
	if fr.out.Status != agent.StatusSuccess || fr.out.TokensInput != 30 || fr.out.TokensOutput != 7 || fr.out.Iterations != 2 {
		t.Fatalf("both calls are counted: %+v", fr.out)
	}
	var usage []int64
	for _, ev := range fr.events {
		if ev.Type == stream.TypeUsage {
			usage = append(usage, ev.Usage.TokensInput)
		}
	}
	if len(usage) != 2 || usage[0] != 10 || usage[1] != 20 {
		t.Fatalf("usage events %v", usage)
	}
	if string(fr.out.Answer.OutputParsed) != `{"ok":true}` || fr.out.Answer.Usage.Iterations != 2 {
		t.Fatalf("answer %+v", fr.out.Answer)
	}
}

func TestStripFences(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{`{"a":1}`, `{"a":1}`},
		{"  \n{\"a\":1}\n ", `{"a":1}`},
		{"```json\n{\"a\":1}\n```", `{"a":1}`},
		{"```JSON\n{\"a\":1}\n```", `{"a":1}`},
		{"```\n[1, 2]\n```", `[1, 2]`},
		{"\n```json\n{\n  \"a\": 1\n}\n```\n", "{\n  \"a\": 1\n}"},
		{"```json\n{\"a\":1}", `{"a":1}`},                                // no closing fence
		{"```json\n{\"a\":1}\n```\nHope this helps!", `{"a":1}`},         // text after the closing fence
		{"```{\"a\":1}```", `{"a":1}`},                                   // one line
		{"```json {\"a\":1}```", `{"a":1}`},                              // one line with an info string
		{"```true```", `true`},                                           // a bare value is not an info string
		{"```", ``},                                                      // nothing inside
		{"Here it is: ```json\n{}\n```", "Here it is: ```json\n{}\n```"}, // prose first: left alone
		{"plain text", "plain text"},
	}
	for _, tt := range tests {
		if got := agent.StripFences(tt.in); got != tt.want {
			t.Errorf("StripFences(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFormatParse(t *testing.T) {
	t.Parallel()
	plain := mustFormat(t, "json", "")
	schema := mustFormat(t, "json", citySchema)
	tests := []struct {
		name   string
		f      *agent.Format
		in     string
		want   string // compact JSON on success
		errHas string // substring of the error otherwise
	}{
		{"object", plain, `{ "a" : 1 }`, `{"a":1}`, ""},
		{"array", plain, `[1, "x", null]`, `[1,"x",null]`, ""},
		{"number keeps precision", plain, `12345678901234567890`, `12345678901234567890`, ""},
		{"string", plain, `"hi"`, `"hi"`, ""},
		{"fenced", plain, "```json\n{\"a\": [1, 2]}\n```", `{"a":[1,2]}`, ""},
		{"unicode kept", plain, `{"city":"Zürich"}`, `{"city":"Zürich"}`, ""},
		{"prose", plain, `The answer is 42.`, "", "output is not valid JSON"},
		{"empty", plain, ``, "", "output is not valid JSON"},
		{"two values", plain, `{"a":1} {"b":2}`, "", "text after the JSON value"},
		{"trailing prose", plain, `{"a":1} that is all`, "", "output is not valid JSON"},
		{"truncated", plain, `{"a":`, "", "output is not valid JSON"},
		{"schema ok", schema, `{"city":"Paris","country":"France"}`, `{"city":"Paris","country":"France"}`, ""},
		{"schema missing property", schema, `{"city":"Paris"}`, "", "country"},
		{"schema wrong type names the location", schema, `{"city":"Paris","country":1}`, "", "/country"},
		{"schema extra property", schema, `{"city":"Paris","country":"France","x":1}`, "", "output does not match output_schema"},
		{"schema not JSON", schema, `Paris`, "", "output is not valid JSON"},
	}
	for _, tt := range tests {
		got, err := tt.f.Parse(tt.in)
		if tt.errHas == "" {
			if err != nil || string(got) != tt.want {
				t.Errorf("%s: Parse(%q) = %s, %v; want %s", tt.name, tt.in, got, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.errHas) {
			t.Errorf("%s: Parse(%q) error %v, want it to contain %q", tt.name, tt.in, err, tt.errHas)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error spans lines: %q", tt.name, err)
		}
	}
}

func TestNewFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		kind   string
		schema string
		want   string // Kind on success
		rf     agent.ResponseFormat
		errHas string
	}{
		{"default is text", "", "", "text", agent.FormatText, ""},
		{"text", "text", "", "text", agent.FormatText, ""},
		{"markdown", "markdown", "", "markdown", agent.FormatText, ""},
		{"json", "json", "", "json", agent.FormatJSONObject, ""},
		{"json null schema", "json", "null", "json", agent.FormatJSONObject, ""},
		{"json schema", "json", citySchema, "json", agent.FormatJSONSchema, ""},
		{"unknown kind", "yaml", "", "", 0, "output_format must be one of"},
		{"schema with text", "text", citySchema, "", 0, "only allowed with output_format json"},
		{"schema with markdown", "markdown", citySchema, "", 0, "only allowed with output_format json"},
		{"schema not JSON", "json", `{"type":`, "", 0, "output_schema is not valid JSON"},
		{"schema not an object", "json", `["string"]`, "", 0, "output_schema must be a JSON object"},
		{"schema wrong keyword type", "json", `{"type": 12}`, "", 0, "not a valid JSON Schema"},
		{"schema bad pattern", "json", `{"type":"string","pattern":"(["}`, "", 0, "not a valid JSON Schema"},
		{"schema unknown ref", "json", `{"$ref":"#/definitions/missing"}`, "", 0, "output_schema"},
	}
	for _, tt := range tests {
		var raw json.RawMessage
		if tt.schema != "" {
			raw = json.RawMessage(tt.schema)
		}
		f, err := agent.NewFormat(tt.kind, raw)
		if tt.errHas != "" {
			if err == nil || !strings.Contains(err.Error(), tt.errHas) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%s: err %v, want one line containing %q", tt.name, err, tt.errHas)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if f.Kind != tt.want || f.ResponseFormat() != tt.rf {
			t.Errorf("%s: kind %q response format %v, want %q %v", tt.name, f.Kind, f.ResponseFormat(), tt.want, tt.rf)
		}
		if (f.Instruction() == "") != (f.Kind == agent.OutputText) {
			t.Errorf("%s: instruction %q", tt.name, f.Instruction())
		}
	}
}
