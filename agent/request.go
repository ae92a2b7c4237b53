package agent

import (
	"bytes"
	"encoding/json"

	"github.com/tidwall/gjson"
)

// This file writes the body of a streaming chat-completions request. openai-go sends it (auth,
// retries, errors), but its reflective params encoder cost more CPU per run than everything
// the gateway does around the call; these plain structs encode the same JSON (request_test.go
// compares them with openai-go's ChatCompletionNewParams).

type chatRequest struct {
	Model               string            `json:"model"`
	Messages            []chatMessage     `json:"messages"`
	Stream              bool              `json:"stream"`
	StreamOptions       chatStreamOptions `json:"stream_options"`
	Tools               []chatTool        `json:"tools,omitempty"`
	MaxTokens           int               `json:"max_tokens,omitempty"`
	MaxCompletionTokens int               `json:"max_completion_tokens,omitempty"`
	Temperature         *float64          `json:"temperature,omitempty"`
	ResponseFormat      *chatFormat       `json:"response_format,omitempty"`
}

type chatStreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type chatMessage struct {
	Role       string         `json:"role"`
	Content    *string        `json:"content,omitempty"`
	ToolCalls  []chatToolCall `json:"tool_calls,omitempty"`
	ToolCallID string         `json:"tool_call_id,omitempty"`
}

type chatToolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function chatFunction `json:"function"`
}

type chatFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

type chatTool struct {
	Type     string          `json:"type"`
	Function chatFunctionDef `json:"function"`
}

type chatFunctionDef struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters"`
}

type chatFormat struct {
	Type       string          `json:"type"`
	JSONSchema *chatJSONSchema `json:"json_schema,omitempty"`
}

type chatJSONSchema struct {
	Name   string          `json:"name"`
	Strict bool            `json:"strict"`
	Schema json.RawMessage `json:"schema"`
}

// requestBody encodes req as a streaming chat-completions request with usage in the last chunk.
func requestBody(req Request) ([]byte, error) {
	body := chatRequest{
		Model:         req.Model,
		Messages:      make([]chatMessage, 0, len(req.Messages)),
		Stream:        true,
		StreamOptions: chatStreamOptions{IncludeUsage: true},
	}
	for i := range req.Messages {
		body.Messages = append(body.Messages, wireMessage(&req.Messages[i]))
	}
	for _, t := range req.Tools {
		body.Tools = append(body.Tools, chatTool{Type: "function", Function: chatFunctionDef{
			Name: t.Name, Description: t.Description, Parameters: toolParameters(t.Parameters),
		}})
	}
	// OpenAI's reasoning models refuse max_tokens and temperature; every other
	// OpenAI-compatible server understands max_tokens (not all know max_completion_tokens).
	reasoning := isReasoningModel(req.Model)
	if req.MaxTokens > 0 {
		if reasoning {
			body.MaxCompletionTokens = req.MaxTokens
		} else {
			body.MaxTokens = req.MaxTokens
		}
	}
	if !reasoning {
		t := req.Temperature
		body.Temperature = &t
	}
	switch req.Format {
	case FormatJSONObject:
		body.ResponseFormat = &chatFormat{Type: "json_object"}
	case FormatJSONSchema:
		if len(req.Schema) == 0 || !json.Valid(req.Schema) {
			body.ResponseFormat = &chatFormat{Type: "json_object"}
			break
		}
		body.ResponseFormat = &chatFormat{Type: "json_schema", JSONSchema: &chatJSONSchema{Name: "output", Schema: req.Schema}}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&body); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// wireMessage is one message as the chat-completions API takes it.
func wireMessage(msg *Message) chatMessage {
	switch msg.Role {
	case RoleSystem, RoleUser, RoleTool:
		m := chatMessage{Role: string(msg.Role), Content: &msg.Content}
		if msg.Role == RoleTool {
			m.ToolCallID = msg.ToolCallID
		}
		return m
	case RoleAssistant:
		m := chatMessage{Role: string(RoleAssistant)}
		if msg.Content != "" || len(msg.ToolCalls) == 0 {
			m.Content = &msg.Content
		}
		for _, tc := range msg.ToolCalls {
			args := tc.Arguments
			if args == "" {
				args = "{}"
			}
			m.ToolCalls = append(m.ToolCalls, chatToolCall{ID: tc.ID, Type: "function", Function: chatFunction{Name: tc.Name, Arguments: args}})
		}
		return m
	default:
		return chatMessage{Role: string(RoleUser), Content: &msg.Content}
	}
}

// emptyObjectSchema is the parameters of a tool without a usable schema.
var emptyObjectSchema = json.RawMessage(`{"properties":{},"type":"object"}`)

// toolParameters returns a tool's JSON Schema as providers accept it: a JSON object with a
// "type" (default "object"), and "properties" when the type is "object". A missing or unusable
// schema becomes the empty object schema. A schema that already conforms (the usual case) is
// sent as it is, without decoding it.
func toolParameters(raw json.RawMessage) json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' || !json.Valid(raw) {
		return emptyObjectSchema
	}
	typ := gjson.GetBytes(raw, "type")
	if typ.Exists() && (typ.Type != gjson.String || typ.Str != "object" || gjson.GetBytes(raw, "properties").Exists()) {
		return raw
	}
	var params map[string]any
	if err := json.Unmarshal(raw, &params); err != nil || params == nil {
		return emptyObjectSchema
	}
	if _, ok := params["type"]; !ok {
		params["type"] = "object"
	}
	if params["type"] == "object" {
		if _, ok := params["properties"]; !ok {
			params["properties"] = map[string]any{}
		}
	}
	out, err := json.Marshal(params)
	if err != nil {
		return emptyObjectSchema
	}
	return out
}
