package db_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/agentgate/agentgate/db"
)

func TestEndpointRoundTrip(t *testing.T) {
	eachKind(t, func(t *testing.T, s *db.Store) {
		ctx := ctxOf(t)
		u := mustUser(t, s, "e@example.com")
		w := mustWorkspace(t, s, u.ID, "tools")

		full := &db.Endpoint{
			OwnerID: u.ID, Name: "Full", Slug: "full", WorkspaceID: &w.ID, SystemPrompt: "sys",
			Description: ptr("a description"), AgentType: "actor", LLMProvider: "custom", LLMModel: "m-1",
			LLMBaseURL: ptr("http://127.0.0.1:9/v1"), LLMAPIKey: "sk-very-secret-provider-key",
			MaxTokens: 1234, Temperature: 1.25, OutputFormat: "json",
			OutputSchema: json.RawMessage(`{"type":"object"}`), InputSchema: json.RawMessage(`{"type":"string"}`),
			MaxToolCalls: 7, TimeoutMs: 12000, EnableStreaming: true, AsyncMode: true, AuthMode: "public",
			PricePerRunCents: 25, RateLimitPerMin: ptr(120), APIKeyHash: "abc123",
		}
		minimal := newEndpoint(u.ID, "Minimal", "minimal")
		for _, e := range []*db.Endpoint{full, minimal} {
			must(t, s.CreateEndpoint(ctx, e), "create %s", e.Name)
			if !strings.HasPrefix(e.ID, "aep_") || e.Status != "active" || e.CreatedAt.IsZero() || e.DeletedAt != nil {
				t.Fatalf("CreateEndpoint filled %+v", e)
			}
			got, err := s.Endpoint(ctx, u.ID, e.ID, false)
			must(t, err, "Endpoint")
			if !reflect.DeepEqual(got, e) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, e)
			}
		}
		if minimal.WorkspaceID != nil || minimal.Description != nil || minimal.LLMBaseURL != nil ||
			minimal.OutputSchema != nil || minimal.RateLimitPerMin != nil {
			t.Fatalf("nil fields came back set: %+v", minimal)
		}
		// The provider key is ciphertext in the column.
		raw := rawString(t, s, `SELECT llm_api_key FROM endpoints WHERE id = ?`, full.ID)
		if raw == "" || strings.Contains(raw, "very-secret") {
			t.Fatalf("llm_api_key column = %q, want ciphertext", raw)
		}
		if raw := rawString(t, s, `SELECT llm_api_key FROM endpoints WHERE id = ?`, minimal.ID); raw != "" {
			t.Fatalf("empty key stored as %q", raw)
		}

		// Update every mutable field.
		upd := *full
		upd.Name, upd.Slug, upd.WorkspaceID, upd.SystemPrompt = "Full 2", "full-2", nil, "sys 2"
		upd.Description, upd.AgentType, upd.LLMProvider, upd.LLMModel = nil, "pipeline", "openai", "gpt-x"
		upd.LLMBaseURL, upd.LLMAPIKey, upd.MaxTokens, upd.Temperature = nil, "", 100, 0
		upd.OutputFormat, upd.OutputSchema, upd.InputSchema = "text", nil, nil
		upd.MaxToolCalls, upd.TimeoutMs, upd.EnableStreaming, upd.AsyncMode = 1, 1000, false, false
		upd.AuthMode, upd.PricePerRunCents, upd.RateLimitPerMin = "api_key", 0, ptr(5)
		upd.APIKeyHash, upd.Status = "def456", "active"
		must(t, s.UpdateEndpoint(ctx, &upd), "UpdateEndpoint")
		got, err := s.Endpoint(ctx, u.ID, full.ID, false)
		must(t, err, "Endpoint after update")
		if !reflect.DeepEqual(got, &upd) {
			t.Fatalf("after update:\n got %+v\nwant %+v", got, &upd)
		}
		if got.UpdatedAt.Before(full.UpdatedAt) {
			t.Fatal("UpdatedAt went back")
		}
	})
}

func TestEndpointSlugsAndOwnership(t *testing.T) {
	eachKind(t, func(t *testing.T, s *db.Store) {
		ctx := ctxOf(t)
		alice := mustUser(t, s, "alice@example.com")
		bob := mustUser(t, s, "bob@example.com")

		a := mustEndpoint(t, s, alice.ID, "Support Bot", "")
		if a.Slug != "support-bot" {
			t.Fatalf("derived slug = %q", a.Slug)
		}
		// Slugs are global: bob's derived slug gets a suffix, an explicit one is refused.
		b := mustEndpoint(t, s, bob.ID, "Support Bot", "")
		if b.Slug != "support-bot-2" {
			t.Fatalf("second derived slug = %q, want support-bot-2", b.Slug)
		}
		if err := s.CreateEndpoint(ctx, newEndpoint(bob.ID, "x", "support-bot")); !errors.Is(err, db.ErrSlugTaken) {
			t.Fatalf("explicit taken slug = %v, want ErrSlugTaken", err)
		}
		for slug, want := range map[string]bool{"support-bot": false, "support-bot-2": false, "free-one": true} {
			ok, err := s.SlugAvailable(ctx, slug)
			must(t, err, "SlugAvailable")
			if ok != want {
				t.Fatalf("SlugAvailable(%q) = %v, want %v", slug, ok, want)
			}
		}

		// Owner isolation.
		if _, err := s.Endpoint(ctx, bob.ID, a.ID, false); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("Endpoint(other owner) = %v, want ErrNotFound", err)
		}
		if _, err := s.Endpoint(ctx, bob.ID, a.ID, true); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("Endpoint(other owner, deleted too) = %v, want ErrNotFound", err)
		}
		foreign := *a
		foreign.OwnerID = bob.ID
		if err := s.UpdateEndpoint(ctx, &foreign); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("UpdateEndpoint(other owner) = %v, want ErrNotFound", err)
		}
		if err := s.DeleteEndpoint(ctx, bob.ID, a.ID); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("DeleteEndpoint(other owner) = %v, want ErrNotFound", err)
		}
		// Update to a taken slug.
		upd := *b
		upd.Slug = "support-bot"
		if err := s.UpdateEndpoint(ctx, &upd); !errors.Is(err, db.ErrSlugTaken) {
			t.Fatalf("UpdateEndpoint to taken slug = %v, want ErrSlugTaken", err)
		}

		bySlug, err := s.EndpointBySlug(ctx, "support-bot-2")
		must(t, err, "EndpointBySlug")
		if bySlug.ID != b.ID {
			t.Fatalf("EndpointBySlug = %s, want %s", bySlug.ID, b.ID)
		}
		if _, err := s.EndpointBySlug(ctx, "nope"); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("EndpointBySlug(missing) = %v", err)
		}

		// Listing: own, newest first.
		a2 := mustEndpoint(t, s, alice.ID, "Second", "second")
		list, err := s.ListEndpoints(ctx, alice.ID)
		must(t, err, "ListEndpoints")
		if len(list) != 2 || list[0].ID != a2.ID || list[1].ID != a.ID {
			t.Fatalf("ListEndpoints = %v", ids(list))
		}
	})
}

func ids(es []*db.Endpoint) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.ID+"/"+e.Slug)
	}
	return out
}

func TestEndpointSoftDelete(t *testing.T) {
	eachKind(t, func(t *testing.T, s *db.Store) {
		ctx := ctxOf(t)
		u := mustUser(t, s, "d@example.com")
		e := mustEndpoint(t, s, u.ID, "Doomed", "doomed")
		run := &db.Run{EndpointID: e.ID, OwnerID: u.ID, Status: db.RunSuccess, Input: "hi", Output: "yo"}
		must(t, s.SaveRuns(ctx, []*db.Run{run}), "SaveRuns")

		must(t, s.DeleteEndpoint(ctx, u.ID, e.ID), "DeleteEndpoint")
		if err := s.DeleteEndpoint(ctx, u.ID, e.ID); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("second delete = %v, want ErrNotFound", err)
		}
		if _, err := s.Endpoint(ctx, u.ID, e.ID, false); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("Endpoint(deleted) = %v, want ErrNotFound", err)
		}
		gone, err := s.Endpoint(ctx, u.ID, e.ID, true)
		must(t, err, "Endpoint(includeDeleted)")
		if gone.DeletedAt == nil || gone.DeletedAt.Before(gone.CreatedAt) {
			t.Fatalf("DeletedAt = %v", gone.DeletedAt)
		}
		if _, err := s.EndpointBySlug(ctx, "doomed"); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("EndpointBySlug(deleted) = %v, want ErrNotFound", err)
		}
		if err := s.UpdateEndpoint(ctx, gone); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("UpdateEndpoint(deleted) = %v, want ErrNotFound", err)
		}
		list, err := s.ListEndpoints(ctx, u.ID)
		must(t, err, "ListEndpoints")
		if len(list) != 0 {
			t.Fatalf("ListEndpoints shows deleted: %v", ids(list))
		}
		// The slug is free again; the old runs stay readable.
		ok, err := s.SlugAvailable(ctx, "doomed")
		must(t, err, "SlugAvailable")
		if !ok {
			t.Fatal("slug of a deleted endpoint not available")
		}
		again := mustEndpoint(t, s, u.ID, "Reborn", "doomed")
		bySlug, err := s.EndpointBySlug(ctx, "doomed")
		must(t, err, "EndpointBySlug")
		if bySlug.ID != again.ID {
			t.Fatalf("slug resolves to %s, want the new %s", bySlug.ID, again.ID)
		}
		r, err := s.Run(ctx, run.ID)
		must(t, err, "Run of deleted endpoint")
		if r.EndpointID != e.ID || r.Output != "yo" {
			t.Fatalf("run = %+v", r)
		}
		runs, _, err := s.ListRuns(ctx, db.RunFilter{EndpointID: e.ID})
		must(t, err, "ListRuns of deleted endpoint")
		if len(runs) != 1 {
			t.Fatalf("ListRuns of deleted endpoint = %d runs", len(runs))
		}
	})
}
