package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// User is an account.
type User struct {
	ID, Email, PasswordHash string
	CreatedAt               time.Time
}

// normEmail is the form emails are stored and compared in.
func normEmail(e string) string { return strings.ToLower(strings.TrimSpace(e)) }

// CreateUser inserts u, filling ID (if empty) and CreatedAt; u.Email is
// stored lowercased. A second user with the same email → ErrEmailTaken.
func (s *Store) CreateUser(ctx context.Context, u *User) error {
	if u.ID == "" {
		u.ID = NewID("usr_")
	}
	u.Email = normEmail(u.Email)
	if u.Email == "" {
		return errors.New("db: create user: empty email")
	}
	u.CreatedAt = norm(u.CreatedAt)
	_, err := s.w.ExecContext(ctx, s.w.Rebind(`INSERT INTO users (id, email, password_hash, created_at) VALUES (?, ?, ?, ?)`),
		u.ID, u.Email, u.PasswordHash, micros(u.CreatedAt))
	return mapErr(err, "db: create user")
}

// UserByEmail finds a user by email, case-insensitively.
func (s *Store) UserByEmail(ctx context.Context, email string) (*User, error) {
	return s.user(ctx, `SELECT id, email, password_hash, created_at FROM users WHERE email = ?`, normEmail(email))
}

// UserByID finds a user by id.
func (s *Store) UserByID(ctx context.Context, id string) (*User, error) {
	return s.user(ctx, `SELECT id, email, password_hash, created_at FROM users WHERE id = ?`, id)
}

func (s *Store) user(ctx context.Context, q string, arg string) (*User, error) {
	var u User
	var created int64
	err := s.r.QueryRowContext(ctx, s.r.Rebind(q), arg).Scan(&u.ID, &u.Email, &u.PasswordHash, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("db: get user: %w", err)
	}
	u.CreatedAt = fromMicros(created)
	return &u, nil
}
