package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Output formats of an endpoint (SPEC §4 output_format).
const (
	OutputText     = "text"
	OutputJSON     = "json"
	OutputMarkdown = "markdown"
)

// Format is an endpoint's output format with its compiled schema, ready for runs.
// Build it once per endpoint version with NewFormat; it is safe for concurrent use.
type Format struct {
	Kind      string          // OutputText, OutputJSON or OutputMarkdown
	SchemaRaw json.RawMessage // the output_schema as given; nil when none
	schema    *jsonschema.Schema
}

// NewFormat validates kind and compiles schema. A schema is allowed only with json output.
// Errors are caller-safe messages naming the offending field.
func NewFormat(kind string, schema json.RawMessage) (*Format, error) {
	switch kind {
	case "", OutputText:
		kind = OutputText
	case OutputJSON, OutputMarkdown:
	default:
		return nil, fmt.Errorf("output_format must be one of text, json, markdown")
	}
	f := &Format{Kind: kind}
	if len(schema) == 0 || string(schema) == "null" {
		return f, nil
	}
	if kind != OutputJSON {
		return nil, fmt.Errorf("output_schema is only allowed with output_format json")
	}
	sch, err := CompileSchema(schema)
	if err != nil {
		return nil, err
	}
	f.SchemaRaw, f.schema = schema, sch
	return f, nil
}

// CompileSchema compiles a JSON Schema document; the error message is caller-safe.
func CompileSchema(schema json.RawMessage) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return nil, fmt.Errorf("output_schema is not valid JSON: %v", err)
	}
	if _, ok := doc.(map[string]any); !ok {
		return nil, fmt.Errorf("output_schema must be a JSON object")
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("output_schema.json", doc); err != nil {
		return nil, fmt.Errorf("output_schema is invalid: %v", err)
	}
	sch, err := c.Compile("output_schema.json")
	if err != nil {
		return nil, fmt.Errorf("output_schema is not a valid JSON Schema: %s", firstLine(err.Error()))
	}
	return sch, nil
}

// Instruction is the text appended to the system prompt for this format ("" for text).
func (f *Format) Instruction() string {
	switch f.Kind {
	case OutputJSON:
		s := "\n\nRespond with valid JSON only: one JSON value, no prose, no code fences."
		if f.SchemaRaw != nil {
			s += " The JSON must conform to this JSON Schema:\n" + string(f.SchemaRaw)
		}
		return s
	case OutputMarkdown:
		return "\n\nFormat your answer as Markdown."
	}
	return ""
}

// ResponseFormat is the provider JSON mode to ask for.
func (f *Format) ResponseFormat() ResponseFormat {
	if f.Kind != OutputJSON {
		return FormatText
	}
	if f.SchemaRaw != nil {
		return FormatJSONSchema
	}
	return FormatJSONObject
}

// Parse checks a json-format output: code fences are stripped, the rest must parse and, with
// a schema, validate. It returns the compact JSON, or a message saying what is wrong (to tell
// the model in the corrective retry, and the caller at the end).
func (f *Format) Parse(output string) (json.RawMessage, error) {
	text := StripFences(output)
	var v any
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("output is not valid JSON: %v", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("output is not valid JSON: text after the JSON value")
	}
	if f.schema != nil {
		inst, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
		if err != nil {
			return nil, fmt.Errorf("output is not valid JSON: %v", err)
		}
		if err := f.schema.Validate(inst); err != nil {
			return nil, fmt.Errorf("output does not match output_schema: %s", schemaMessage(err))
		}
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(text)); err != nil {
		return nil, fmt.Errorf("output is not valid JSON: %v", err)
	}
	return buf.Bytes(), nil
}

// StripFences removes a surrounding Markdown code fence (``` or ```json) and white space.
// Text after the closing fence is dropped; a fence on one line (```json {...}```) is
// understood too. Text that does not start with a fence is only trimmed.
func StripFences(s string) string {
	t := strings.TrimSpace(s)
	if !strings.HasPrefix(t, "```") {
		return t
	}
	t = strings.TrimPrefix(t, "```")
	if i := strings.IndexByte(t, '\n'); i >= 0 {
		t = t[i+1:] // drop the info string (json, JSON, …)
		if j := strings.LastIndex(t, "```"); j >= 0 {
			t = t[:j] // the closing fence and anything after it
		}
		return strings.TrimSpace(t)
	}
	// One line: ```{"a":1}``` or ```json {"a":1}```.
	t = strings.TrimSpace(strings.TrimSuffix(t, "```"))
	if word, rest, ok := strings.Cut(t, " "); ok && isInfoString(word) {
		t = rest
	}
	return strings.TrimSpace(t)
}

// isInfoString reports a fence's language tag: a word of letters (json, JSON, jsonc).
func isInfoString(w string) bool {
	if w == "" {
		return false
	}
	for _, r := range w {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

func schemaMessage(err error) string {
	if ve, ok := err.(*jsonschema.ValidationError); ok {
		// The basic output lists leaf errors with their locations; keep it short and readable.
		out := ve.BasicOutput()
		var parts []string
		for _, e := range out.Errors {
			if e.Error == nil {
				continue
			}
			loc := e.InstanceLocation
			if loc == "" {
				loc = "/"
			}
			parts = append(parts, loc+": "+e.Error.String())
			if len(parts) == 3 {
				break
			}
		}
		if len(parts) > 0 {
			return strings.Join(parts, "; ")
		}
	}
	return firstLine(err.Error())
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
