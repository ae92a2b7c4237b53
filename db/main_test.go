package db_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/agentgate/agentgate/db"
	"github.com/agentgate/agentgate/db/dbtest"
)

// TestMain fails the package if any test leaves a goroutine behind (a pool
// not closed, a worker not stopped).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// eachKind runs fn as a parallel subtest on a fresh Store of every
// available database kind.
func eachKind(t *testing.T, fn func(t *testing.T, s *db.Store)) {
	t.Helper()
	for _, kind := range dbtest.Kinds(t) {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			fn(t, dbtest.Open(t, kind))
		})
	}
}

func ctxOf(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	tb.Cleanup(cancel)
	return ctx
}

func mustUser(tb testing.TB, s *db.Store, email string) *db.User {
	tb.Helper()
	u := &db.User{Email: email, PasswordHash: "hash"}
	if err := s.CreateUser(ctxOf(tb), u); err != nil {
		tb.Fatalf("CreateUser(%s): %v", email, err)
	}
	return u
}

func mustWorkspace(tb testing.TB, s *db.Store, ownerID, name string) *db.Workspace {
	tb.Helper()
	w := &db.Workspace{OwnerID: ownerID, Name: name}
	if err := s.CreateWorkspace(ctxOf(tb), w); err != nil {
		tb.Fatalf("CreateWorkspace(%s): %v", name, err)
	}
	return w
}

// newEndpoint returns an endpoint with every required field set.
func newEndpoint(ownerID, name, slug string) *db.Endpoint {
	return &db.Endpoint{
		OwnerID: ownerID, Name: name, Slug: slug, SystemPrompt: "You are helpful.",
		AgentType: "extractor", LLMProvider: "demo", LLMModel: "demo-1", MaxTokens: 4096,
		Temperature: 0.3, OutputFormat: "text", MaxToolCalls: 10, TimeoutMs: 30000,
		AuthMode: "api_key", APIKeyHash: "00ff",
	}
}

func mustEndpoint(tb testing.TB, s *db.Store, ownerID, name, slug string) *db.Endpoint {
	tb.Helper()
	e := newEndpoint(ownerID, name, slug)
	if err := s.CreateEndpoint(ctxOf(tb), e); err != nil {
		tb.Fatalf("CreateEndpoint(%s): %v", name, err)
	}
	return e
}

// rawString reads one TEXT value with raw SQL written with ? placeholders.
func rawString(tb testing.TB, s *db.Store, q string, args ...any) string {
	tb.Helper()
	var v string
	if err := s.DB().QueryRowContext(ctxOf(tb), s.Rebind(q), args...).Scan(&v); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
	return v
}

func rawInt(tb testing.TB, s *db.Store, q string, args ...any) int64 {
	tb.Helper()
	var v int64
	if err := s.DB().QueryRowContext(ctxOf(tb), s.Rebind(q), args...).Scan(&v); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
	return v
}

func ptr[T any](v T) *T { return &v }

func must(tb testing.TB, err error, what string, args ...any) {
	tb.Helper()
	if err != nil {
		tb.Fatalf("%s: %v", fmt.Sprintf(what, args...), err)
	}
}
