package db_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/agentgate/agentgate/db"
)

func TestUsers(t *testing.T) {
	eachKind(t, func(t *testing.T, s *db.Store) {
		ctx := ctxOf(t)
		u := &db.User{Email: "  Alice@Example.COM ", PasswordHash: "h1"}
		must(t, s.CreateUser(ctx, u), "create")
		if !strings.HasPrefix(u.ID, "usr_") || u.CreatedAt.IsZero() || u.Email != "alice@example.com" {
			t.Fatalf("CreateUser filled %+v", u)
		}
		if err := s.CreateUser(ctx, &db.User{Email: "ALICE@example.com", PasswordHash: "h2"}); !errors.Is(err, db.ErrEmailTaken) {
			t.Fatalf("duplicate email (other case) = %v, want ErrEmailTaken", err)
		}
		if err := s.CreateUser(ctx, &db.User{Email: " ", PasswordHash: "h"}); err == nil {
			t.Fatal("empty email accepted")
		}
		got, err := s.UserByEmail(ctx, "aLiCe@example.com")
		must(t, err, "UserByEmail")
		if *got != *u {
			t.Fatalf("UserByEmail = %+v, want %+v", got, u)
		}
		got, err = s.UserByID(ctx, u.ID)
		must(t, err, "UserByID")
		if *got != *u {
			t.Fatalf("UserByID = %+v, want %+v", got, u)
		}
		if _, err := s.UserByID(ctx, "usr_missing"); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("UserByID(missing) = %v, want ErrNotFound", err)
		}
		if _, err := s.UserByEmail(ctx, "bob@example.com"); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("UserByEmail(missing) = %v, want ErrNotFound", err)
		}
	})
}
