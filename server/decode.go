package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
)

// fields is a request body decoded one level deep, so that each field can be checked with a
// message naming it, and unknown fields refused.
type fields map[string]json.RawMessage

// decodeObject parses body as a JSON object whose keys must all be in allowed.
func decodeObject(body []byte, allowed ...string) (fields, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, errValidation("request body must be a JSON object")
	}
	var f fields
	if err := json.Unmarshal(body, &f); err != nil || f == nil {
		return nil, errValidation("request body must be a JSON object")
	}
	var unknown []string
	for k := range f {
		if !contains(allowed, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, errValidation("unknown field %q", unknown[0])
	}
	return f, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (f fields) has(name string) bool { _, ok := f[name]; return ok }

// isNull reports whether the field is present and JSON null.
func (f fields) isNull(name string) bool {
	v, ok := f[name]
	return ok && string(bytes.TrimSpace(v)) == "null"
}

// str decodes a string field. ok is false when absent.
func (f fields) str(name string) (s string, ok bool, err error) {
	v, ok := f[name]
	if !ok {
		return "", false, nil
	}
	if err := json.Unmarshal(v, &s); err != nil || bytes.TrimSpace(v)[0] != '"' {
		return "", true, errValidation("%s must be a string", name)
	}
	// PostgreSQL text cannot hold NUL: refuse it here rather than fail the write with a 500.
	if strings.IndexByte(s, 0) >= 0 {
		return "", true, errValidation("%s must not contain NUL characters", name)
	}
	return s, true, nil
}

// optStr decodes a nullable string field: nil pointer for null.
func (f fields) optStr(name string) (p *string, ok bool, err error) {
	if f.isNull(name) {
		return nil, true, nil
	}
	s, ok, err := f.str(name)
	if !ok || err != nil {
		return nil, ok, err
	}
	return &s, true, nil
}

// integer decodes an integer field within [lo, hi].
func (f fields) integer(name string, lo, hi int) (n int, ok bool, err error) {
	v, ok := f[name]
	if !ok {
		return 0, false, nil
	}
	var x float64
	// null unmarshals into 0 without error: refuse it rather than store a silent zero.
	if err := json.Unmarshal(v, &x); err != nil || f.isNull(name) || x != math.Trunc(x) {
		return 0, true, errValidation("%s must be an integer", name)
	}
	if x < float64(lo) || x > float64(hi) {
		return 0, true, errValidation("%s must be between %d and %d", name, lo, hi)
	}
	return int(x), true, nil
}

// number decodes a number field within [lo, hi].
func (f fields) number(name string, lo, hi float64) (x float64, ok bool, err error) {
	v, ok := f[name]
	if !ok {
		return 0, false, nil
	}
	if err := json.Unmarshal(v, &x); err != nil || f.isNull(name) {
		return 0, true, errValidation("%s must be a number", name)
	}
	if x < lo || x > hi {
		return 0, true, errValidation("%s must be between %s and %s", name, fmtNum(lo), fmtNum(hi))
	}
	return x, true, nil
}

func fmtNum(x float64) string { return strings.TrimSuffix(fmt.Sprintf("%g", x), ".0") }

// boolean decodes a boolean field; 0 and 1 are accepted too (SPEC §1).
func (f fields) boolean(name string) (b bool, ok bool, err error) {
	v, ok := f[name]
	if !ok {
		return false, false, nil
	}
	switch string(bytes.TrimSpace(v)) {
	case "true", "1":
		return true, true, nil
	case "false", "0":
		return false, true, nil
	}
	return false, true, errValidation("%s must be a boolean", name)
}

// object decodes a field that must be a JSON object (or null → nil).
func (f fields) object(name string) (raw json.RawMessage, ok bool, err error) {
	v, ok := f[name]
	if !ok || f.isNull(name) {
		return nil, ok, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(v, &m); err != nil {
		return nil, true, errValidation("%s must be a JSON object", name)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, v); err != nil {
		return nil, true, errValidation("%s must be a JSON object", name)
	}
	return buf.Bytes(), true, nil
}

// stringMap decodes an object of string values (e.g. headers).
func (f fields) stringMap(name string) (m map[string]string, ok bool, err error) {
	v, ok := f[name]
	if !ok || f.isNull(name) {
		return nil, ok, nil
	}
	if err := json.Unmarshal(v, &m); err != nil {
		return nil, true, errValidation("%s must be an object of string values", name)
	}
	return m, true, nil
}

// textLen checks a string's length in characters.
func textLen(name, s string, lo, hi int) error {
	n := len([]rune(s))
	if n < lo || n > hi {
		if lo > 0 && n == 0 {
			return errValidation("%s is required", name)
		}
		return errValidation("%s must be %d–%d characters", name, lo, hi)
	}
	return nil
}
