package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/agentgate/agentgate/agent"
	"github.com/agentgate/agentgate/db"
)

// endpointFields are the fields create and PATCH accept (SPEC §4).
var endpointFields = []string{
	"name", "workspace_id", "system_prompt", "description", "slug", "agent_type", "llm_provider", "llm_model",
	"llm_base_url", "llm_api_key", "max_tokens", "temperature", "output_format", "output_schema", "input_schema",
	"max_tool_calls", "timeout_ms", "enable_streaming", "async_mode", "auth_mode", "price_per_run_cents",
	"rate_limit_per_minute",
}

// endpointJSON is the public shape of an endpoint: every field but llm_api_key.
type endpointJSON struct {
	ID                 string          `json:"id"`
	OwnerID            string          `json:"owner_id"`
	Name               string          `json:"name"`
	Slug               string          `json:"slug"`
	WorkspaceID        *string         `json:"workspace_id"`
	SystemPrompt       string          `json:"system_prompt"`
	Description        *string         `json:"description"`
	AgentType          string          `json:"agent_type"`
	LLMProvider        string          `json:"llm_provider"`
	LLMModel           string          `json:"llm_model"`
	LLMBaseURL         *string         `json:"llm_base_url"`
	HasLLMAPIKey       bool            `json:"has_llm_api_key"`
	MaxTokens          int             `json:"max_tokens"`
	Temperature        float64         `json:"temperature"`
	OutputFormat       string          `json:"output_format"`
	OutputSchema       json.RawMessage `json:"output_schema"`
	InputSchema        json.RawMessage `json:"input_schema"`
	MaxToolCalls       int             `json:"max_tool_calls"`
	TimeoutMs          int             `json:"timeout_ms"`
	EnableStreaming    bool            `json:"enable_streaming"`
	AsyncMode          bool            `json:"async_mode"`
	AuthMode           string          `json:"auth_mode"`
	PricePerRunCents   int             `json:"price_per_run_cents"`
	RateLimitPerMinute *int            `json:"rate_limit_per_minute"`
	RunURL             string          `json:"run_url"`
	Status             string          `json:"status"`
	CreatedAt          string          `json:"created_at"`
	UpdatedAt          string          `json:"updated_at"`
}

func nullJSON(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("null")
	}
	return raw
}

func toEndpointJSON(e *db.Endpoint) *endpointJSON {
	status := e.Status
	if e.DeletedAt != nil {
		status = "deleted"
	}
	return &endpointJSON{
		ID: e.ID, OwnerID: e.OwnerID, Name: e.Name, Slug: e.Slug, WorkspaceID: e.WorkspaceID,
		SystemPrompt: e.SystemPrompt, Description: e.Description, AgentType: e.AgentType,
		LLMProvider: e.LLMProvider, LLMModel: e.LLMModel, LLMBaseURL: e.LLMBaseURL, HasLLMAPIKey: e.LLMAPIKey != "",
		MaxTokens: e.MaxTokens, Temperature: e.Temperature, OutputFormat: e.OutputFormat,
		OutputSchema: nullJSON(e.OutputSchema), InputSchema: nullJSON(e.InputSchema),
		MaxToolCalls: e.MaxToolCalls, TimeoutMs: e.TimeoutMs, EnableStreaming: e.EnableStreaming,
		AsyncMode: e.AsyncMode, AuthMode: e.AuthMode, PricePerRunCents: e.PricePerRunCents,
		RateLimitPerMinute: e.RateLimitPerMin, RunURL: "/api/run/" + e.Slug, Status: status,
		CreatedAt: rfc3339(e.CreatedAt), UpdatedAt: rfc3339(e.UpdatedAt),
	}
}

// newEndpoint returns an endpoint with every default of SPEC §4.
func newEndpoint(owner string) *db.Endpoint {
	return &db.Endpoint{
		OwnerID: owner, AgentType: "extractor", LLMProvider: "openai", LLMModel: "gpt-4o-mini",
		MaxTokens: 4096, Temperature: 0.3, OutputFormat: agent.OutputText, MaxToolCalls: 10,
		TimeoutMs: 30000, AuthMode: "api_key", Status: "active",
	}
}

var providers = []string{"openai", "anthropic", "gemini", "groq", "custom", "demo"}

// applyEndpoint validates the fields of a create or PATCH body onto e. Every message names
// its field.
func (s *Server) applyEndpoint(ctx context.Context, f fields, e *db.Endpoint, create bool) (explicitSlug bool, err error) {
	str := func(name string, lo, hi int, dst *string) error {
		v, ok, err := f.str(name)
		if err != nil {
			return err
		}
		if !ok {
			if create && lo > 0 && *dst == "" {
				return errValidation("%s is required", name)
			}
			return nil
		}
		if err := textLen(name, v, lo, hi); err != nil {
			return err
		}
		*dst = v
		return nil
	}
	optStr := func(name string, hi int, dst **string) error {
		v, ok, err := f.optStr(name)
		if err != nil || !ok {
			return err
		}
		if v != nil {
			if err := textLen(name, *v, 0, hi); err != nil {
				return err
			}
			if *v == "" {
				v = nil
			}
		}
		*dst = v
		return nil
	}
	oneOf := func(name string, allowed []string, dst *string) error {
		v, ok, err := f.str(name)
		if err != nil || !ok {
			return err
		}
		if !contains(allowed, v) {
			return errValidation("%s must be one of %s", name, strings.Join(allowed, ", "))
		}
		*dst = v
		return nil
	}
	integer := func(name string, lo, hi int, dst *int) error {
		v, ok, err := f.integer(name, lo, hi)
		if err != nil || !ok {
			return err
		}
		*dst = v
		return nil
	}
	boolean := func(name string, dst *bool) error {
		v, ok, err := f.boolean(name)
		if err != nil || !ok {
			return err
		}
		*dst = v
		return nil
	}
	steps := []func() error{
		func() error {
			if err := str("name", 1, 100, &e.Name); err != nil {
				return err
			}
			if strings.TrimSpace(e.Name) == "" {
				return errValidation("name is required")
			}
			return nil
		},
		func() error { return str("system_prompt", 1, 10000, &e.SystemPrompt) },
		func() error { return optStr("description", 500, &e.Description) },
		func() error { return oneOf("agent_type", []string{"extractor", "actor", "pipeline"}, &e.AgentType) },
		func() error { return oneOf("llm_provider", providers, &e.LLMProvider) },
		func() error { return str("llm_model", 1, 100, &e.LLMModel) },
		func() error { return optStr("llm_base_url", 500, &e.LLMBaseURL) },
		func() error {
			v, ok, err := f.optStr("llm_api_key")
			if err != nil || !ok {
				return err
			}
			e.LLMAPIKey = ""
			if v != nil {
				if len(*v) > 500 {
					return errValidation("llm_api_key must be at most 500 characters")
				}
				e.LLMAPIKey = *v
			}
			return nil
		},
		func() error { return integer("max_tokens", 100, 32768, &e.MaxTokens) },
		func() error {
			v, ok, err := f.number("temperature", 0, 2)
			if ok && err == nil {
				e.Temperature = v
			}
			return err
		},
		func() error { return oneOf("output_format", []string{"text", "json", "markdown"}, &e.OutputFormat) },
		func() error {
			v, ok, err := f.object("output_schema")
			if ok && err == nil {
				e.OutputSchema = v
			}
			return err
		},
		func() error {
			v, ok, err := f.object("input_schema")
			if ok && err == nil {
				e.InputSchema = v
			}
			return err
		},
		func() error { return integer("max_tool_calls", 1, 50, &e.MaxToolCalls) },
		func() error { return integer("timeout_ms", 1000, 300000, &e.TimeoutMs) },
		func() error { return boolean("enable_streaming", &e.EnableStreaming) },
		func() error { return boolean("async_mode", &e.AsyncMode) },
		func() error { return oneOf("auth_mode", []string{"api_key", "public"}, &e.AuthMode) },
		func() error { return integer("price_per_run_cents", 0, 10000, &e.PricePerRunCents) },
		func() error {
			if f.isNull("rate_limit_per_minute") {
				e.RateLimitPerMin = nil
				return nil
			}
			var n int
			if err := integer("rate_limit_per_minute", 1, 100000, &n); err != nil || !f.has("rate_limit_per_minute") {
				return err
			}
			e.RateLimitPerMin = &n
			return nil
		},
		func() error {
			if !f.has("workspace_id") {
				return nil
			}
			v, _, err := f.optStr("workspace_id")
			if err != nil {
				return err
			}
			if v == nil || *v == "" {
				e.WorkspaceID = nil
				return nil
			}
			if _, err := s.store.Workspace(ctx, e.OwnerID, *v); err != nil {
				if errors.Is(err, db.ErrNotFound) {
					return errValidation("workspace_id does not name one of your workspaces")
				}
				return err
			}
			e.WorkspaceID = v
			return nil
		},
		func() error {
			v, ok, err := f.str("slug")
			if err != nil || !ok {
				return err
			}
			if !slugRe.MatchString(v) {
				return errValidation("slug must match ^[a-z0-9][a-z0-9-]{0,59}$")
			}
			e.Slug, explicitSlug = v, true
			return nil
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return false, err
		}
	}
	// Rules across fields, checked on the merged result.
	if e.LLMProvider == "custom" && (e.LLMBaseURL == nil || *e.LLMBaseURL == "") {
		return false, errValidation("llm_base_url is required when llm_provider is custom")
	}
	if e.LLMBaseURL != nil {
		u, err := url.Parse(*e.LLMBaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return false, errValidation("llm_base_url must be an http or https URL")
		}
	}
	if len(e.OutputSchema) > 0 && e.OutputFormat != agent.OutputJSON {
		return false, errValidation("output_schema is only allowed with output_format json")
	}
	if _, err := agent.NewFormat(e.OutputFormat, e.OutputSchema); err != nil {
		return false, errValidation("%s", err.Error())
	}
	return explicitSlug, nil
}

// newAPIKey returns a fresh endpoint key: aek_ + 32 hex (128 random bits).
func newAPIKey() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // the OS has no randomness: nothing safe to do
	}
	return "aek_" + hex.EncodeToString(b[:])
}

func (s *Server) createEndpoint(c *fiber.Ctx) error {
	f, err := decodeObject(c.Body(), endpointFields...)
	if err != nil {
		return err
	}
	e := newEndpoint(userID(c))
	explicit, err := s.applyEndpoint(c.UserContext(), f, e, true)
	if err != nil {
		return err
	}
	key := newAPIKey()
	e.APIKeyHash = hashKey(key)
	if explicit {
		if err := s.store.CreateEndpoint(c.UserContext(), e); err != nil {
			return err
		}
	} else if err := s.createWithDerivedSlug(c.UserContext(), e); err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{
		"endpoint": toEndpointJSON(e), "api_key": key, "run_url": "/api/run/" + e.Slug,
	})
}

// createWithDerivedSlug derives the slug from the name, adding -2, -3… until one is free.
func (s *Server) createWithDerivedSlug(ctx context.Context, e *db.Endpoint) error {
	base := deriveSlug(e.Name, "endpoint")
	for i := 1; i <= 1000; i++ {
		cand := base
		if i > 1 {
			suffix := fmt.Sprintf("-%d", i)
			cand = strings.TrimRight(truncate(base, 60-len(suffix)), "-") + suffix
		}
		e.Slug = cand
		err := s.store.CreateEndpoint(ctx, e)
		if !errors.Is(err, db.ErrSlugTaken) {
			return err
		}
	}
	return errValidation("could not derive a free slug from name; set slug explicitly")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

func (s *Server) listEndpoints(c *fiber.Ctx) error {
	list, err := s.store.ListEndpoints(c.UserContext(), userID(c))
	if err != nil {
		return err
	}
	out := make([]*endpointJSON, 0, len(list))
	for _, e := range list {
		out = append(out, toEndpointJSON(e))
	}
	return c.JSON(fiber.Map{"endpoints": out})
}

// endpoint loads the caller's endpoint named by :id; includeDeleted lets its runs stay readable.
func (s *Server) endpoint(c *fiber.Ctx, includeDeleted bool) (*db.Endpoint, error) {
	e, err := s.store.Endpoint(c.UserContext(), userID(c), c.Params("id"), includeDeleted)
	if err != nil {
		return nil, notFoundAs(err, "endpoint")
	}
	return e, nil
}

func (s *Server) getEndpoint(c *fiber.Ctx) error {
	e, err := s.endpoint(c, false)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"endpoint": toEndpointJSON(e)})
}

func (s *Server) patchEndpoint(c *fiber.Ctx) error {
	e, err := s.endpoint(c, false)
	if err != nil {
		return err
	}
	f, err := decodeObject(c.Body(), endpointFields...)
	if err != nil {
		return err
	}
	if _, err := s.applyEndpoint(c.UserContext(), f, e, false); err != nil {
		return err
	}
	err = s.store.UpdateEndpoint(c.UserContext(), e)
	s.endpointsChanged(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"endpoint": toEndpointJSON(e)})
}

func (s *Server) deleteEndpoint(c *fiber.Ctx) error {
	e, err := s.endpoint(c, false)
	if err != nil {
		return err
	}
	err = s.store.DeleteEndpoint(c.UserContext(), userID(c), e.ID)
	s.endpointsChanged(c.UserContext())
	if err != nil {
		return notFoundAs(err, "endpoint")
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (s *Server) regenerateKey(c *fiber.Ctx) error {
	e, err := s.endpoint(c, false)
	if err != nil {
		return err
	}
	key := newAPIKey()
	e.APIKeyHash = hashKey(key)
	err = s.store.UpdateEndpoint(c.UserContext(), e)
	s.endpointsChanged(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"api_key": key})
}
