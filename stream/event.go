// Package stream owns the run event vocabulary and its two renderings: the SSE wire format
// (Writer) and the JSON answer (Aggregator), plus per-run fan-out with replay (Hub).
//
// stream imports only the standard library and small libraries; it must not import agent,
// tools, db or server.
package stream

import (
	"encoding/json"
	"fmt"
)

// Type names one kind of event. The set is closed: see AllTypes.
type Type string

// The event types of SPEC §6.
const (
	TypeThinking   Type = "thinking"
	TypeToken      Type = "token"
	TypeToolCall   Type = "tool_call"
	TypeToolResult Type = "tool_result"
	TypeUsage      Type = "usage"
	TypeDone       Type = "done"
	TypeError      Type = "error"
)

// AllTypes lists every event type, in a stable order.
var AllTypes = []Type{TypeThinking, TypeToken, TypeToolCall, TypeToolResult, TypeUsage, TypeDone, TypeError}

// Terminal reports whether t ends a stream (done or error).
func (t Type) Terminal() bool { return t == TypeDone || t == TypeError }

// Thinking statuses.
const (
	StatusStarting     = "starting"
	StatusLoadingTools = "loading_tools"
	StatusToolsLoaded  = "tools_loaded"
	StatusLLMCall      = "llm_call"
)

// Thinking reports progress before or between model calls.
type Thinking struct {
	Status    string `json:"status"`
	Message   string `json:"message"`
	Iteration int    `json:"iteration,omitempty"`
}

// Token is a piece of text as the model produces it.
type Token struct {
	Iteration int    `json:"iteration"`
	Delta     string `json:"delta"`
}

// ToolCall announces a tool execution before it starts.
type ToolCall struct {
	Iteration int             `json:"iteration"`
	ID        string          `json:"id"`
	Tool      string          `json:"tool"`
	Arguments json.RawMessage `json:"arguments"`
}

// ToolResult reports a finished tool execution. Result is truncated for the event (ResultLimit).
type ToolResult struct {
	Iteration int    `json:"iteration"`
	ID        string `json:"id"`
	Tool      string `json:"tool"`
	Success   bool   `json:"success"`
	LatencyMs int64  `json:"latency_ms"`
	Result    string `json:"result"`
}

// ResultLimit is the most bytes of a tool result carried by a tool_result event.
const ResultLimit = 4 << 10

// Usage reports the tokens and cost of one model call.
type Usage struct {
	Iteration    int     `json:"iteration"`
	TokensInput  int64   `json:"tokens_input"`
	TokensOutput int64   `json:"tokens_output"`
	CostCents    float64 `json:"cost_cents"`
}

// ToolCallRecord is one tool execution in the final answer (field names as the hosted product).
type ToolCallRecord struct {
	Name      string          `json:"name"`
	Arguments json.RawMessage `json:"arguments"`
	Result    string          `json:"result"`
	LatencyMs int64           `json:"latencyMs"`
	Success   bool            `json:"success"`
}

// RunUsage is the usage of a whole run.
type RunUsage struct {
	TokensInput  int64   `json:"tokens_input"`
	TokensOutput int64   `json:"tokens_output"`
	CostCents    float64 `json:"cost_cents"`
	LatencyMs    int64   `json:"latency_ms"`
	Iterations   int     `json:"iterations"`
}

// Answer is the final result of a successful run: the payload of the done event and, without
// its type, the JSON answer.
type Answer struct {
	RunID        string           `json:"run_id"`
	Output       string           `json:"output"`
	OutputParsed json.RawMessage  `json:"outputParsed,omitempty"`
	ToolCalls    []ToolCallRecord `json:"tool_calls"`
	Usage        RunUsage         `json:"usage"`
}

// Error ends a failed run. Code is one of the SPEC §1 codes.
type Error struct {
	RunID   string `json:"run_id,omitempty"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Event is one item of a run's stream. Seq is 1-based and gap-free per run; it is the SSE id.
// Exactly one payload pointer is set, and it matches Type.
type Event struct {
	Seq  int64
	Type Type

	Thinking   *Thinking
	Token      *Token
	ToolCall   *ToolCall
	ToolResult *ToolResult
	Usage      *Usage
	Done       *Answer
	Error      *Error
}

// Data renders the event's SSE data line: the payload as one line of JSON whose "type" field
// equals the event name. encoding/json never emits raw newlines, so the result is one line.
func (e Event) Data() ([]byte, error) {
	switch e.Type {
	case TypeThinking:
		return marshalTyped(e.Type, e.Thinking)
	case TypeToken:
		return marshalTyped(e.Type, e.Token)
	case TypeToolCall:
		return marshalTyped(e.Type, e.ToolCall)
	case TypeToolResult:
		return marshalTyped(e.Type, e.ToolResult)
	case TypeUsage:
		return marshalTyped(e.Type, e.Usage)
	case TypeDone:
		return marshalTyped(e.Type, e.Done)
	case TypeError:
		return marshalTyped(e.Type, e.Error)
	}
	return nil, fmt.Errorf("stream: unknown event type %q", e.Type)
}

// payload returns e's payload pointer, or an error if Type is unknown or its payload is
// missing. The Writer and the Hub use it to reject an event before any of it is written or
// stored.
func (e Event) payload() (any, error) {
	var (
		p  any
		ok bool
	)
	switch e.Type {
	case TypeThinking:
		p, ok = e.Thinking, e.Thinking != nil
	case TypeToken:
		p, ok = e.Token, e.Token != nil
	case TypeToolCall:
		p, ok = e.ToolCall, e.ToolCall != nil
	case TypeToolResult:
		p, ok = e.ToolResult, e.ToolResult != nil
	case TypeUsage:
		p, ok = e.Usage, e.Usage != nil
	case TypeDone:
		p, ok = e.Done, e.Done != nil
	case TypeError:
		p, ok = e.Error, e.Error != nil
	default:
		return nil, fmt.Errorf("stream: unknown event type %q", e.Type)
	}
	if !ok {
		return nil, fmt.Errorf("stream: %s event without payload", e.Type)
	}
	return p, nil
}

// marshalTyped encodes p with a leading "type" member, keeping the payload flat.
func marshalTyped[P any](t Type, p *P) ([]byte, error) {
	if p == nil {
		return nil, fmt.Errorf("stream: %s event without payload", t)
	}
	body, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(body)+len(t)+12)
	out = append(out, `{"type":"`...)
	out = append(out, t...)
	out = append(out, '"')
	if len(body) > 2 { // body is a JSON object: "{...}"
		out = append(out, ',')
	}
	return append(out, body[1:]...), nil
}

// Parse decodes an event from its type name and data line (the inverse of Data). It is used to
// replay stored events.
func Parse(seq int64, typ string, data []byte) (Event, error) {
	e := Event{Seq: seq, Type: Type(typ)}
	var err error
	switch e.Type {
	case TypeThinking:
		e.Thinking = new(Thinking)
		err = json.Unmarshal(data, e.Thinking)
	case TypeToken:
		e.Token = new(Token)
		err = json.Unmarshal(data, e.Token)
	case TypeToolCall:
		e.ToolCall = new(ToolCall)
		err = json.Unmarshal(data, e.ToolCall)
	case TypeToolResult:
		e.ToolResult = new(ToolResult)
		err = json.Unmarshal(data, e.ToolResult)
	case TypeUsage:
		e.Usage = new(Usage)
		err = json.Unmarshal(data, e.Usage)
	case TypeDone:
		e.Done = new(Answer)
		err = json.Unmarshal(data, e.Done)
	case TypeError:
		e.Error = new(Error)
		err = json.Unmarshal(data, e.Error)
	default:
		return e, fmt.Errorf("stream: unknown event type %q", typ)
	}
	if err != nil {
		return e, fmt.Errorf("stream: decode %s event: %w", typ, err)
	}
	return e, nil
}

// Error codes of SPEC §1. server/error.go maps each to its HTTP status.
const (
	CodeValidation        = "VALIDATION_ERROR"
	CodeUnauthorized      = "UNAUTHORIZED"
	CodeInsufficientFunds = "INSUFFICIENT_FUNDS"
	CodeForbidden         = "FORBIDDEN"
	CodeNotFound          = "NOT_FOUND"
	CodeSlugTaken         = "SLUG_TAKEN"
	CodePayloadTooLarge   = "PAYLOAD_TOO_LARGE"
	CodeRateLimited       = "RATE_LIMIT_EXCEEDED"
	CodeInternal          = "INTERNAL_ERROR"
	CodeLLM               = "LLM_ERROR"
	CodeTool              = "TOOL_ERROR"
	CodeUnavailable       = "UNAVAILABLE"
	CodeTimeout           = "TIMEOUT"
)

// Error makes *Error the application error type: packages return it with a code and a message
// that is safe to show to the caller.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with the given code and a formatted, caller-safe message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}
