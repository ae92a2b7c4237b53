package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Endpoint is an agent endpoint. LLMAPIKey is plaintext here and stored
// encrypted; APIKeyHash is the hex SHA-256 of the endpoint's API key.
type Endpoint struct {
	ID, OwnerID, Slug, Name string
	WorkspaceID             *string
	SystemPrompt            string
	Description             *string
	AgentType               string
	LLMProvider, LLMModel   string
	LLMBaseURL              *string
	// LLMAPIKey is the bring-your-own provider key; "" = none.
	LLMAPIKey    string
	MaxTokens    int
	Temperature  float64
	OutputFormat string
	// OutputSchema and InputSchema are JSON documents; nil = null.
	OutputSchema, InputSchema json.RawMessage
	MaxToolCalls, TimeoutMs   int
	EnableStreaming           bool
	AsyncMode                 bool
	AuthMode                  string
	PricePerRunCents          int
	// RateLimitPerMin nil = the server default.
	RateLimitPerMin      *int
	APIKeyHash           string
	Status               string
	CreatedAt, UpdatedAt time.Time
	DeletedAt            *time.Time
}

const endpointCols = `id, owner_id, slug, name, workspace_id, system_prompt, description, agent_type,
	llm_provider, llm_model, llm_base_url, llm_api_key, max_tokens, temperature, output_format,
	output_schema, input_schema, max_tool_calls, timeout_ms, enable_streaming, async_mode, auth_mode,
	price_per_run_cents, rate_limit_per_min, api_key_hash, status, created_at, updated_at, deleted_at`

func llmKeyAAD(endpointID string) string { return "endpoints.llm_api_key:" + endpointID }

func nullString(p *string) sql.NullString {
	if p == nil {
		return sql.NullString{}
	}
	return sql.NullString{String: *p, Valid: true}
}

func nullJSON(r json.RawMessage) sql.NullString {
	if len(r) == 0 || string(r) == "null" {
		return sql.NullString{}
	}
	return sql.NullString{String: string(r), Valid: true}
}

func nullInt(p *int) sql.NullInt64 {
	if p == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: int64(*p), Valid: true}
}

func (s *Store) scanEndpoint(sc interface{ Scan(...any) error }) (*Endpoint, error) {
	var e Endpoint
	var ws, desc, baseURL, outSchema, inSchema sql.NullString
	var rate, deleted sql.NullInt64
	var key string
	var created, updated int64
	if err := sc.Scan(&e.ID, &e.OwnerID, &e.Slug, &e.Name, &ws, &e.SystemPrompt, &desc, &e.AgentType,
		&e.LLMProvider, &e.LLMModel, &baseURL, &key, &e.MaxTokens, &e.Temperature, &e.OutputFormat,
		&outSchema, &inSchema, &e.MaxToolCalls, &e.TimeoutMs, &e.EnableStreaming, &e.AsyncMode, &e.AuthMode,
		&e.PricePerRunCents, &rate, &e.APIKeyHash, &e.Status, &created, &updated, &deleted); err != nil {
		return nil, err
	}
	if ws.Valid {
		e.WorkspaceID = &ws.String
	}
	if desc.Valid {
		e.Description = &desc.String
	}
	if baseURL.Valid {
		e.LLMBaseURL = &baseURL.String
	}
	if outSchema.Valid {
		e.OutputSchema = json.RawMessage(outSchema.String)
	}
	if inSchema.Valid {
		e.InputSchema = json.RawMessage(inSchema.String)
	}
	if rate.Valid {
		r := int(rate.Int64)
		e.RateLimitPerMin = &r
	}
	if deleted.Valid {
		t := fromMicros(deleted.Int64)
		e.DeletedAt = &t
	}
	e.CreatedAt, e.UpdatedAt = fromMicros(created), fromMicros(updated)
	k, err := s.open(key, llmKeyAAD(e.ID))
	if err != nil {
		return nil, fmt.Errorf("llm_api_key: %w", err)
	}
	e.LLMAPIKey = k
	return &e, nil
}

// CreateEndpoint inserts e, filling ID, CreatedAt, UpdatedAt and Status
// ("active" if empty). An explicit Slug used by a live endpoint →
// ErrSlugTaken; an empty Slug is derived from Name with -2, -3 … suffixes.
func (s *Store) CreateEndpoint(ctx context.Context, e *Endpoint) error {
	if e.ID == "" {
		e.ID = NewID("aep_")
	}
	if e.Status == "" {
		e.Status = "active"
	}
	e.CreatedAt = norm(e.CreatedAt)
	e.UpdatedAt = e.CreatedAt
	e.DeletedAt = nil
	key, err := s.seal(e.LLMAPIKey, llmKeyAAD(e.ID))
	if err != nil {
		return fmt.Errorf("db: create endpoint: llm_api_key: %w", err)
	}
	insert := func(slug string) error {
		_, err := s.w.ExecContext(ctx, s.w.Rebind(`INSERT INTO endpoints (`+endpointCols+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)`),
			e.ID, e.OwnerID, slug, e.Name, nullString(e.WorkspaceID), e.SystemPrompt, nullString(e.Description), e.AgentType,
			e.LLMProvider, e.LLMModel, nullString(e.LLMBaseURL), key, e.MaxTokens, e.Temperature, e.OutputFormat,
			nullJSON(e.OutputSchema), nullJSON(e.InputSchema), e.MaxToolCalls, e.TimeoutMs, e.EnableStreaming, e.AsyncMode, e.AuthMode,
			e.PricePerRunCents, nullInt(e.RateLimitPerMin), e.APIKeyHash, e.Status, micros(e.CreatedAt), micros(e.UpdatedAt))
		if err = mapErr(err, "db: create endpoint"); err == nil {
			e.Slug = slug
		}
		return err
	}
	if e.Slug != "" {
		return insert(e.Slug)
	}
	base := Slugify(e.Name, "endpoint")
	var used []string
	if err := s.r.SelectContext(ctx, &used, s.r.Rebind(`SELECT slug FROM endpoints WHERE deleted_at IS NULL AND (slug = ? OR slug LIKE ?)`),
		base, likePrefix(base)); err != nil {
		return fmt.Errorf("db: create endpoint: %w", err)
	}
	return insertWithDerivedSlug(ctx, base, setOf(used), insert)
}

// SlugAvailable reports whether no live endpoint uses slug.
func (s *Store) SlugAvailable(ctx context.Context, slug string) (bool, error) {
	var n int
	if err := s.r.GetContext(ctx, &n, s.r.Rebind(`SELECT COUNT(*) FROM endpoints WHERE slug = ? AND deleted_at IS NULL`), slug); err != nil {
		return false, fmt.Errorf("db: slug available: %w", err)
	}
	return n == 0, nil
}

// Endpoint returns the owner's endpoint id; a deleted one only when
// includeDeleted. Unknown or foreign → ErrNotFound.
func (s *Store) Endpoint(ctx context.Context, ownerID, id string, includeDeleted bool) (*Endpoint, error) {
	q := `SELECT ` + endpointCols + ` FROM endpoints WHERE id = ? AND owner_id = ?`
	if !includeDeleted {
		q += ` AND deleted_at IS NULL`
	}
	return s.oneEndpoint(ctx, q, id, ownerID)
}

// EndpointBySlug returns the live endpoint with slug, or ErrNotFound.
// Every run calls it, so its statement is prepared once (stmt.go).
func (s *Store) EndpointBySlug(ctx context.Context, slug string) (*Endpoint, error) {
	st, err := s.bySlug.get(ctx, s.r, s.r.Rebind(`SELECT `+endpointCols+` FROM endpoints WHERE slug = ? AND deleted_at IS NULL`))
	if err != nil {
		return nil, fmt.Errorf("db: get endpoint: %w", err)
	}
	e, err := s.scanEndpoint(st.QueryRowContext(ctx, slug))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("db: get endpoint: %w", err)
	}
	return e, nil
}

func (s *Store) oneEndpoint(ctx context.Context, q string, args ...any) (*Endpoint, error) {
	e, err := s.scanEndpoint(s.r.QueryRowContext(ctx, s.r.Rebind(q), args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("db: get endpoint: %w", err)
	}
	return e, nil
}

// ListEndpoints returns the owner's live endpoints, newest first.
func (s *Store) ListEndpoints(ctx context.Context, ownerID string) ([]*Endpoint, error) {
	rows, err := s.r.QueryContext(ctx, s.r.Rebind(`SELECT `+endpointCols+` FROM endpoints
		WHERE owner_id = ? AND deleted_at IS NULL ORDER BY created_at DESC, id DESC`), ownerID)
	if err != nil {
		return nil, fmt.Errorf("db: list endpoints: %w", err)
	}
	defer rows.Close()
	out := []*Endpoint{}
	for rows.Next() {
		e, err := s.scanEndpoint(rows)
		if err != nil {
			return nil, fmt.Errorf("db: list endpoints: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("db: list endpoints: %w", err)
	}
	return out, nil
}

// UpdateEndpoint writes every mutable field of the live endpoint
// (e.ID, e.OwnerID), APIKeyHash and LLMAPIKey included, and sets UpdatedAt.
// Unknown, foreign or deleted → ErrNotFound; a slug used by another live
// endpoint → ErrSlugTaken.
func (s *Store) UpdateEndpoint(ctx context.Context, e *Endpoint) error {
	if e.Slug == "" {
		return errors.New("db: update endpoint: empty slug")
	}
	key, err := s.seal(e.LLMAPIKey, llmKeyAAD(e.ID))
	if err != nil {
		return fmt.Errorf("db: update endpoint: llm_api_key: %w", err)
	}
	updated := now()
	res, err := s.w.ExecContext(ctx, s.w.Rebind(`UPDATE endpoints SET slug = ?, name = ?, workspace_id = ?,
		system_prompt = ?, description = ?, agent_type = ?, llm_provider = ?, llm_model = ?, llm_base_url = ?,
		llm_api_key = ?, max_tokens = ?, temperature = ?, output_format = ?, output_schema = ?, input_schema = ?,
		max_tool_calls = ?, timeout_ms = ?, enable_streaming = ?, async_mode = ?, auth_mode = ?,
		price_per_run_cents = ?, rate_limit_per_min = ?, api_key_hash = ?, status = ?, updated_at = ?
		WHERE id = ? AND owner_id = ? AND deleted_at IS NULL`),
		e.Slug, e.Name, nullString(e.WorkspaceID), e.SystemPrompt, nullString(e.Description), e.AgentType,
		e.LLMProvider, e.LLMModel, nullString(e.LLMBaseURL), key, e.MaxTokens, e.Temperature, e.OutputFormat,
		nullJSON(e.OutputSchema), nullJSON(e.InputSchema), e.MaxToolCalls, e.TimeoutMs, e.EnableStreaming,
		e.AsyncMode, e.AuthMode, e.PricePerRunCents, nullInt(e.RateLimitPerMin), e.APIKeyHash, e.Status,
		micros(updated), e.ID, e.OwnerID)
	if err := mustAffect(res, mapErr(err, "db: update endpoint")); err != nil {
		return err
	}
	e.UpdatedAt = updated
	return nil
}

// DeleteEndpoint soft-deletes the owner's endpoint: it sets DeletedAt, frees
// the slug and keeps the row (and its runs) readable. Unknown, foreign or
// already deleted → ErrNotFound.
func (s *Store) DeleteEndpoint(ctx context.Context, ownerID, id string) error {
	t := micros(now())
	res, err := s.w.ExecContext(ctx, s.w.Rebind(`UPDATE endpoints SET deleted_at = ?, updated_at = ?
		WHERE id = ? AND owner_id = ? AND deleted_at IS NULL`), t, t, id, ownerID)
	return mustAffect(res, mapErr(err, "db: delete endpoint"))
}
