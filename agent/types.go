package agent

import (
	"context"
	"encoding/json"
)

// Role of a chat message.
type Role string

// Chat roles, as the OpenAI chat-completions wire format names them.
const (
	RoleSystem    Role = "system"
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
	RoleTool      Role = "tool"
)

// Message is one chat message sent to the model.
type Message struct {
	Role       Role
	Content    string
	ToolCalls  []ToolCall // assistant turns that requested tools
	ToolCallID string     // tool results: the call they answer
}

// ToolCall is a tool invocation requested by the model. Arguments is the JSON text the model
// produced (assembled from its deltas); it may be invalid JSON, which the loop reports back.
type ToolCall struct {
	ID        string
	Name      string
	Arguments string
}

// ToolSpec describes one tool offered to the model. Parameters is a JSON Schema object.
type ToolSpec struct {
	Name        string
	Description string
	Parameters  json.RawMessage
}

// ResponseFormat asks the model for a shape of output.
type ResponseFormat int

// Response formats. JSONSchema uses Request.Schema.
const (
	FormatText ResponseFormat = iota
	FormatJSONObject
	FormatJSONSchema
)

// Request is one chat-completion call.
type Request struct {
	Model       string
	Messages    []Message
	Tools       []ToolSpec // empty: no tools offered
	MaxTokens   int
	Temperature float64
	Format      ResponseFormat
	Schema      json.RawMessage // with FormatJSONSchema
}

// Response is the assembled result of one model call.
type Response struct {
	Content      string
	ToolCalls    []ToolCall
	FinishReason string
	TokensInput  int64 // as the provider reported them (include_usage)
	TokensOutput int64
}

// Model is one LLM reached through a streaming chat-completions API.
//
// Complete streams one completion: it calls onDelta, from the calling goroutine, for each piece
// of assistant text in order, and returns the assembled response when the stream ends. It must
// abort the upstream request promptly when ctx is done. A returned error is an *Error with code
// LLM_ERROR (or TIMEOUT/cancellation passed through from ctx); when it happens after some text
// was delivered, Response still carries the usage known so far. Safe for concurrent use.
type Model interface {
	Complete(ctx context.Context, req Request, onDelta func(delta string)) (Response, error)
}

// ToolResult is what one tool execution produced, as text for the model.
type ToolResult struct {
	Text    string
	IsError bool // the tool reported failure (MCP isError) — still a result for the model
}

// Toolbox is the set of tools one run may use.
//
// List returns the tools available now (names already sanitised and unique) and human-readable
// warnings for servers that could not be reached (the run goes on without their tools).
// Call runs one tool; an error means the call did not produce a result (unknown tool, transport
// failure, timeout) and is reported to the model as an error result. Both are safe for
// concurrent use and must return promptly when ctx is done.
type Toolbox interface {
	List(ctx context.Context) (tools []ToolSpec, warnings []string, err error)
	Call(ctx context.Context, name string, arguments json.RawMessage) (ToolResult, error)
}
