package server

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestExtractInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, body, want string
		wantErr          bool
	}{
		{"input field", `{"input":"hello"}`, "hello", false},
		{"message field", `{"message":"hi"}`, "hi", false},
		{"text field", `{"text":"t"}`, "t", false},
		{"prompt field", `{"prompt":"p"}`, "p", false},
		{"precedence input over message", `{"message":"m","input":"i"}`, "i", false},
		{"precedence message over prompt", `{"prompt":"p","message":"m"}`, "m", false},
		{"non-string encoded", `{"input":{"a": 1, "b":[1,2]}}`, `{"a":1,"b":[1,2]}`, false},
		{"number encoded", `{"input":42}`, `42`, false},
		{"whole body when no field", `{"question":"why?"}`, `{"question":"why?"}`, false},
		{"plain text body", `summarise this`, `summarise this`, false},
		{"empty body", ``, "", true},
		{"blank body", "  \n ", "", true},
		{"empty input string", `{"input":"  "}`, "", true},
		{"null input", `{"input":null}`, "", true},
		{"json array body", `[1,2]`, `[1,2]`, false},
		{"invalid json object is text", `{"input":`, `{"input":`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := extractInput([]byte(tt.body))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzExtractInput(f *testing.F) {
	for _, s := range []string{`{"input":"x"}`, `{"message":{"a":1}}`, `plain`, ``, `{"prompt":null}`, `{"text":"\u0000"}`, `{`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		got, err := extractInput([]byte(body))
		if err != nil {
			if got != "" {
				t.Fatalf("error with input %q", got)
			}
			return
		}
		if strings.TrimSpace(got) == "" {
			t.Fatalf("empty input accepted for body %q", body)
		}
		// A field that is present wins; otherwise the body is passed through unchanged.
		var obj map[string]json.RawMessage
		if json.Unmarshal([]byte(body), &obj) == nil && obj != nil {
			for _, name := range inputFields {
				if raw, ok := obj[name]; ok {
					var s string
					if json.Unmarshal(raw, &s) == nil && got != s {
						t.Fatalf("field %s: got %q want %q", name, got, s)
					}
					return
				}
			}
		}
		if got != body && utf8.ValidString(body) {
			t.Fatalf("body not passed through: got %q want %q", got, body)
		}
	})
}
