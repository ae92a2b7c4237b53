package agent

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/packages/param"
	"github.com/openai/openai-go/v3/shared"
)

// sdkParams maps a Request to openai-go's chat-completions parameters: the reference that
// requestBody must agree with (it was the product code before requestBody).
func sdkParams(req Request) openai.ChatCompletionNewParams {
	p := openai.ChatCompletionNewParams{
		Model:         shared.ChatModel(req.Model),
		Messages:      make([]openai.ChatCompletionMessageParamUnion, 0, len(req.Messages)),
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	}
	for _, msg := range req.Messages {
		p.Messages = append(p.Messages, sdkMessage(msg))
	}
	for _, t := range req.Tools {
		fd := shared.FunctionDefinitionParam{Name: t.Name, Parameters: sdkToolParameters(t.Parameters)}
		if t.Description != "" {
			fd.Description = openai.String(t.Description)
		}
		p.Tools = append(p.Tools, openai.ChatCompletionFunctionTool(fd))
	}
	// OpenAI's reasoning models refuse max_tokens and temperature; every other
	// OpenAI-compatible server understands max_tokens (not all know max_completion_tokens).
	reasoning := isReasoningModel(req.Model)
	if req.MaxTokens > 0 {
		if reasoning {
			p.MaxCompletionTokens = openai.Int(int64(req.MaxTokens))
		} else {
			p.MaxTokens = openai.Int(int64(req.MaxTokens))
		}
	}
	if !reasoning {
		p.Temperature = openai.Float(req.Temperature)
	}
	switch req.Format {
	case FormatJSONObject:
		p.ResponseFormat.OfJSONObject = &shared.ResponseFormatJSONObjectParam{}
	case FormatJSONSchema:
		if len(req.Schema) == 0 || !json.Valid(req.Schema) {
			p.ResponseFormat.OfJSONObject = &shared.ResponseFormatJSONObjectParam{}
			break
		}
		p.ResponseFormat.OfJSONSchema = &shared.ResponseFormatJSONSchemaParam{
			JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{
				Name:   "output",
				Strict: openai.Bool(false),
				Schema: req.Schema,
			},
		}
	}
	return p
}

func sdkMessage(msg Message) openai.ChatCompletionMessageParamUnion {
	switch msg.Role {
	case RoleSystem:
		return openai.SystemMessage(msg.Content)
	case RoleAssistant:
		var a openai.ChatCompletionAssistantMessageParam
		if msg.Content != "" || len(msg.ToolCalls) == 0 {
			a.Content.OfString = param.NewOpt(msg.Content)
		}
		for _, tc := range msg.ToolCalls {
			args := tc.Arguments
			if args == "" {
				args = "{}"
			}
			a.ToolCalls = append(a.ToolCalls, openai.ChatCompletionMessageToolCallUnionParam{
				OfFunction: &openai.ChatCompletionMessageFunctionToolCallParam{
					ID:       tc.ID,
					Function: openai.ChatCompletionMessageFunctionToolCallFunctionParam{Name: tc.Name, Arguments: args},
				},
			})
		}
		return openai.ChatCompletionMessageParamUnion{OfAssistant: &a}
	case RoleTool:
		return openai.ToolMessage(msg.Content, msg.ToolCallID)
	default:
		return openai.UserMessage(msg.Content)
	}
}

// sdkToolParameters decodes a tool's JSON Schema; a missing or unusable one becomes the empty
// object schema, which every provider accepts.
func sdkToolParameters(raw json.RawMessage) shared.FunctionParameters {
	var params map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &params); err != nil {
			params = nil
		}
	}
	if params == nil {
		params = map[string]any{}
	}
	if _, ok := params["type"]; !ok {
		params["type"] = "object"
	}
	if params["type"] == "object" {
		if _, ok := params["properties"]; !ok {
			params["properties"] = map[string]any{}
		}
	}
	return params
}

// TestRequestBodyMatchesSDK: the request body the gateway writes is, as JSON, what openai-go
// writes for the same request (plus stream: true, which NewStreaming adds).
func TestRequestBodyMatchesSDK(t *testing.T) {
	t.Parallel()
	calc := json.RawMessage(`{"type":"object","properties":{"a":{"type":"number"}},"required":["a"]}`)
	tests := map[string]Request{
		"plain": {Model: "gpt-4o-mini", MaxTokens: 256, Temperature: 0.3,
			Messages: []Message{{Role: RoleSystem, Content: "sys <b>&</b>"}, {Role: RoleUser, Content: "héllo \"quoted\"\n\u2028"}}},
		"zero temperature, no max": {Model: "m", Messages: []Message{{Role: RoleUser, Content: ""}}},
		"reasoning":                {Model: "o3-mini", MaxTokens: 100, Temperature: 0.7, Messages: []Message{{Role: RoleUser, Content: "x"}}},
		"tool round trip": {Model: "gpt-4o", Temperature: 1,
			Tools: []ToolSpec{
				{Name: "calc__add", Description: "Add", Parameters: calc},
				{Name: "no_schema"},
				{Name: "bad_schema", Parameters: json.RawMessage(`{"type":`)},
				{Name: "array_schema", Parameters: json.RawMessage(`[1]`)},
				{Name: "typeless", Parameters: json.RawMessage(` {"properties":{"q":{"type":"string"}}} `)},
				{Name: "object_without_properties", Parameters: json.RawMessage(`{"type":"object","description":"d"}`)},
				{Name: "string_schema", Parameters: json.RawMessage(`{"type":"string"}`)},
				{Name: "null_schema", Parameters: json.RawMessage(`null`)},
			},
			Messages: []Message{
				{Role: RoleUser, Content: "add"},
				{Role: RoleAssistant, ToolCalls: []ToolCall{{ID: "c1", Name: "calc__add", Arguments: `{"a":1}`}, {ID: "c2", Name: "no_schema"}}},
				{Role: RoleTool, ToolCallID: "c1", Content: "1"},
				{Role: RoleTool, ToolCallID: "c2", Content: ""},
				{Role: RoleAssistant, Content: "thinking", ToolCalls: []ToolCall{{ID: "c3", Name: "x", Arguments: "{}"}}},
				{Role: RoleAssistant, Content: ""},
				{Role: "other", Content: "as user"},
			}},
		"json object": {Model: "m", Format: FormatJSONObject, Messages: []Message{{Role: RoleUser, Content: "x"}}},
		"json schema": {Model: "m", Format: FormatJSONSchema, Schema: json.RawMessage(`{"type":"object","properties":{"n":{"type":"integer"}}}`),
			Messages: []Message{{Role: RoleUser, Content: "x"}}},
		"invalid json schema": {Model: "m", Format: FormatJSONSchema, Schema: json.RawMessage(`{`), Messages: []Message{{Role: RoleUser, Content: "x"}}},
	}
	for name, req := range tests {
		t.Run(name, func(t *testing.T) {
			ours, err := requestBody(req)
			if err != nil {
				t.Fatal(err)
			}
			sdk, err := json.Marshal(sdkParams(req))
			if err != nil {
				t.Fatal(err)
			}
			var got, want map[string]any
			if err := json.Unmarshal(ours, &got); err != nil {
				t.Fatalf("our body is not JSON: %v\n%s", err, ours)
			}
			if err := json.Unmarshal(sdk, &want); err != nil {
				t.Fatal(err)
			}
			want["stream"] = true
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("bodies differ\nours: %s\nsdk:  %s", ours, sdk)
			}
		})
	}
}

// BenchmarkRequestBody compares encoding a tool-using request with openai-go's params encoder.
func BenchmarkRequestBody(b *testing.B) {
	req := Request{Model: "gpt-4o-mini", MaxTokens: 256, Temperature: 0.3,
		Tools:    []ToolSpec{{Name: "calc__add", Description: "Add two numbers", Parameters: json.RawMessage(`{"type":"object","properties":{"a":{"type":"number"},"b":{"type":"number"}}}`)}},
		Messages: []Message{{Role: RoleSystem, Content: "You are a helpful assistant."}, {Role: RoleUser, Content: "What is 2 + 3?"}}}
	b.Run("requestBody", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := requestBody(req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("openai-go", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(sdkParams(req)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
