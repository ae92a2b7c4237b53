package server

import (
	"bytes"
	"encoding/json"
	"strings"
)

// inputFields are the body fields that carry a run's input, in order of precedence (SPEC §5).
var inputFields = [...]string{"input", "message", "text", "prompt"}

// extractInput finds a run's input in a request body: the first of the input fields that is
// present (a non-string value is JSON-encoded), else the whole body as sent. Empty input is a
// VALIDATION_ERROR.
func extractInput(body []byte) (string, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		var obj map[string]json.RawMessage
		if json.Unmarshal(trimmed, &obj) == nil {
			for _, name := range inputFields {
				raw, ok := obj[name]
				if !ok {
					continue
				}
				raw = bytes.TrimSpace(raw)
				var s string
				if len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &s) == nil {
					if strings.TrimSpace(s) == "" {
						return "", errValidation("%s is empty", name)
					}
					return s, nil
				}
				if string(raw) == "null" {
					return "", errValidation("%s is empty", name)
				}
				var buf bytes.Buffer
				if json.Compact(&buf, raw) != nil {
					return "", errValidation("%s is not valid JSON", name)
				}
				return buf.String(), nil
			}
		}
	}
	if len(trimmed) == 0 {
		return "", errValidation("input is empty: send {\"input\": \"…\"}")
	}
	return string(body), nil
}
