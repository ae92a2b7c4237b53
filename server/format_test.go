package server

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/agentgate/agentgate/agent/llmtest"
	"github.com/agentgate/agentgate/stream"
)

const testCitySchema = `{"type":"object","properties":{"city":{"type":"string"},"country":{"type":"string"}},"required":["city","country"]}`

// jsonEndpoint creates a json-output endpoint with the city schema.
func (e *testEnv) jsonEndpoint(name string) createdEndpoint {
	e.tb.Helper()
	return e.endpoint(map[string]any{"name": name, "output_format": "json", "output_schema": json.RawMessage(testCitySchema)})
}

// TestFormat_JSONAnswerAndDone: outputParsed is in the JSON answer and in the done event, the
// fences stripped; the model got the instruction with the schema and JSON mode.
func TestFormat_JSONAnswerAndDone(t *testing.T) {
	t.Parallel()
	forKinds(t, func(t *testing.T, kind string) {
		e := newEnv(t, kind)
		ep := e.jsonEndpoint("extractor")
		e.LLM.Script(llmtest.Reply{Text: "```json\n{\"city\": \"Paris\", \"country\": \"France\"}\n```"})
		r := e.run(ep, `{"input":"Paris is the capital of France."}`)
		var ans struct {
			RunID        string          `json:"run_id"`
			Output       string          `json:"output"`
			OutputParsed json.RawMessage `json:"outputParsed"`
		}
		r.json(t, &ans)
		if r.Status != 200 || string(ans.OutputParsed) != `{"city":"Paris","country":"France"}` || !strings.HasPrefix(ans.Output, "```json") {
			t.Fatalf("answer %d %s", r.Status, r.Body)
		}
		req := e.LLM.Requests()[0]
		if !strings.Contains(req.Messages[0].Content, "Respond with valid JSON only") || !strings.Contains(req.Messages[0].Content, testCitySchema) ||
			req.ResponseFormat == nil || req.ResponseFormat.Type != "json_schema" {
			t.Fatalf("upstream request: system %q response_format %+v", req.Messages[0].Content, req.ResponseFormat)
		}
		if rec := e.waitRun(ans.RunID); rec.Status != "success" || rec.Output != ans.Output {
			t.Fatalf("record %+v", rec)
		}

		// The same through the stream, with a corrective retry: done carries outputParsed,
		// and the tokens after the "Retrying" event add up to done.output.
		e.LLM.Script(llmtest.Reply{Text: `{"city": "Paris"}`}, llmtest.Reply{Text: `{"city": "Paris", "country": "France"}`})
		msgs, evs := readStream(t, e, ep, `{"input":"Paris is the capital of France."}`)
		last := evs[len(evs)-1]
		if last.Type != stream.TypeDone || string(last.Done.OutputParsed) != `{"city":"Paris","country":"France"}` {
			t.Fatalf("last event %s", msgs[len(msgs)-1].Data)
		}
		var after strings.Builder
		retried := false
		for _, ev := range evs {
			switch {
			case ev.Type == stream.TypeThinking && strings.HasPrefix(ev.Thinking.Message, "Retrying: "):
				retried = true
				after.Reset()
				if !strings.Contains(ev.Thinking.Message, "country") {
					t.Fatalf("retry event does not say what was wrong: %q", ev.Thinking.Message)
				}
			case ev.Type == stream.TypeToken:
				after.WriteString(ev.Token.Delta)
			}
		}
		if !retried || after.String() != last.Done.Output || !strings.Contains(msgs[len(msgs)-1].Data, `"outputParsed":{"city":"Paris","country":"France"}`) {
			t.Fatalf("retried %v, tokens after it %q, done %s", retried, after.String(), msgs[len(msgs)-1].Data)
		}
	})
}

// TestFormat_ValidationFailureKeepsRawOutput: two invalid answers end the run with
// VALIDATION_ERROR (400, run_id in the error), and the run record keeps the raw output.
func TestFormat_ValidationFailureKeepsRawOutput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	ep := e.jsonEndpoint("strict")
	e.LLM.Script(llmtest.Reply{Text: "Paris, France."}, llmtest.Reply{Text: `{"city": "Paris"}`})
	r := e.run(ep, `{"input":"Paris is the capital of France."}`)
	var env struct {
		Error stream.Error `json:"error"`
	}
	r.json(t, &env)
	if r.Status != 400 || env.Error.Code != stream.CodeValidation || !strings.HasPrefix(env.Error.RunID, "run_") ||
		!strings.Contains(env.Error.Message, "output does not match output_schema") {
		t.Fatalf("answer %d %s", r.Status, r.Body)
	}
	if n := len(e.LLM.Requests()); n != 2 {
		t.Fatalf("%d model calls, want 2 (one corrective retry)", n)
	}
	rec := e.waitRun(env.Error.RunID)
	if rec.Status != "error" || rec.ErrorCode != stream.CodeValidation || rec.Output != `{"city": "Paris"}` || rec.Iterations != 2 {
		t.Fatalf("record %+v", rec)
	}
	got := e.as(e.Token, "GET", "/api/agent-endpoints/"+ep.ID()+"/runs/"+env.Error.RunID, nil)
	var rr struct {
		Run struct {
			Status string        `json:"status"`
			Output string        `json:"output"`
			Error  *stream.Error `json:"error"`
		} `json:"run"`
	}
	got.json(t, &rr)
	if rr.Run.Status != "error" || rr.Run.Output != `{"city": "Paris"}` || rr.Run.Error == nil || rr.Run.Error.Code != stream.CodeValidation {
		t.Fatalf("run detail %s", got.Body)
	}
}

// TestFormat_SchemaValidatedOnCreateAndPatch: an invalid output_schema is refused with 400
// naming output_schema; a valid one is stored and returned.
func TestFormat_SchemaValidatedOnCreateAndPatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	base := map[string]any{"name": "x", "system_prompt": "p"}
	with := func(fields map[string]any) map[string]any {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range fields {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name   string
		fields map[string]any
		status int
		errHas string
	}{
		{"keyword of the wrong type", map[string]any{"output_format": "json", "output_schema": map[string]any{"type": 12}}, 400, "output_schema"},
		{"bad pattern", map[string]any{"output_format": "json", "output_schema": map[string]any{"type": "string", "pattern": "(["}}, 400, "output_schema"},
		{"not an object", map[string]any{"output_format": "json", "output_schema": []any{"a"}}, 400, "output_schema"},
		{"schema without json", map[string]any{"output_format": "text", "output_schema": json.RawMessage(testCitySchema)}, 400, "output_schema"},
		{"unknown format", map[string]any{"output_format": "yaml"}, 400, "output_format"},
		{"valid schema", map[string]any{"output_format": "json", "output_schema": json.RawMessage(testCitySchema)}, 201, ""},
		{"markdown", map[string]any{"output_format": "markdown"}, 201, ""},
	}
	for _, tt := range tests {
		r := e.as(e.Token, "POST", "/api/agent-endpoints", with(tt.fields))
		if r.Status != tt.status {
			t.Fatalf("%s: %d %s", tt.name, r.Status, r.Body)
		}
		if tt.status == 400 {
			if r.errCode() != stream.CodeValidation || !strings.Contains(r.errMessage(), tt.errHas) {
				t.Fatalf("%s: %s", tt.name, r.Body)
			}
			continue
		}
		var out createdEndpoint
		r.json(t, &out)
		if tt.fields["output_schema"] != nil {
			raw, _ := json.Marshal(out.Endpoint["output_schema"])
			var want, got any
			_ = json.Unmarshal([]byte(testCitySchema), &want)
			_ = json.Unmarshal(raw, &got)
			wb, _ := json.Marshal(want)
			gb, _ := json.Marshal(got)
			if string(wb) != string(gb) {
				t.Fatalf("%s: stored schema %s", tt.name, raw)
			}
		}
	}
	// PATCH: the same validation on the merged endpoint.
	ep := e.jsonEndpoint("patched")
	for _, body := range []map[string]any{
		{"output_schema": map[string]any{"type": 12}},
		{"output_format": "text"}, // the schema stays, so text is refused
	} {
		r := e.as(e.Token, "PATCH", "/api/agent-endpoints/"+ep.ID(), body)
		if r.Status != 400 || r.errCode() != stream.CodeValidation || !strings.Contains(r.errMessage(), "output_schema") {
			t.Fatalf("PATCH %v: %d %s", body, r.Status, r.Body)
		}
	}
	r := e.as(e.Token, "PATCH", "/api/agent-endpoints/"+ep.ID(), map[string]any{"output_schema": nil, "output_format": "markdown"})
	if r.Status != 200 {
		t.Fatalf("PATCH to markdown: %d %s", r.Status, r.Body)
	}
}
