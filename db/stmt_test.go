package db_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/agentgate/agentgate/db"
	"github.com/agentgate/agentgate/db/dbtest"
)

// EndpointBySlug reuses one prepared statement: it must still see every change, from any
// goroutine, and fail cleanly once the store is closed.
func TestEndpointBySlug_PreparedStatement(t *testing.T) {
	eachKind(t, func(t *testing.T, s *db.Store) {
		ctx := ctxOf(t)
		u := mustUser(t, s, "p@example.com")
		e := mustEndpoint(t, s, u.ID, "Prepared", "prepared")

		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := s.EndpointBySlug(ctx, "prepared")
				if err == nil && got.ID != e.ID {
					err = errors.New("wrong endpoint " + got.ID)
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			must(t, err, "EndpointBySlug (concurrent)")
		}

		e.SystemPrompt = "changed after the statement was prepared"
		must(t, s.UpdateEndpoint(ctx, e), "UpdateEndpoint")
		got, err := s.EndpointBySlug(ctx, "prepared")
		must(t, err, "EndpointBySlug after update")
		if got.SystemPrompt != e.SystemPrompt {
			t.Fatalf("system prompt %q, want the updated one", got.SystemPrompt)
		}
		must(t, s.DeleteEndpoint(ctx, u.ID, e.ID), "DeleteEndpoint")
		if _, err := s.EndpointBySlug(ctx, "prepared"); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("EndpointBySlug(deleted) = %v, want ErrNotFound", err)
		}
	})
}

func TestEndpointBySlug_AfterClose(t *testing.T) {
	t.Parallel()
	s := dbtest.Open(t, "sqlite")
	if _, err := s.EndpointBySlug(context.Background(), "nope"); !errors.Is(err, db.ErrNotFound) {
		t.Fatalf("EndpointBySlug = %v, want ErrNotFound", err)
	}
	must(t, s.Close(), "Close")
	if _, err := s.EndpointBySlug(context.Background(), "nope"); err == nil || errors.Is(err, db.ErrNotFound) {
		t.Fatalf("EndpointBySlug after Close = %v, want an error", err)
	}
	must(t, s.Close(), "second Close")
}
