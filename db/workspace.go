package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// Workspace is a named set of MCP servers owned by one user.
type Workspace struct {
	ID, OwnerID, Slug, Name, Description string
	// ServerCount is filled by ListWorkspaces and Workspace; writes ignore it.
	ServerCount          int
	CreatedAt, UpdatedAt time.Time
}

const workspaceCols = `w.id, w.owner_id, w.slug, w.name, w.description, w.created_at, w.updated_at,
	(SELECT COUNT(*) FROM mcp_servers m WHERE m.workspace_id = w.id)`

func scanWorkspace(sc interface{ Scan(...any) error }) (*Workspace, error) {
	var w Workspace
	var created, updated int64
	if err := sc.Scan(&w.ID, &w.OwnerID, &w.Slug, &w.Name, &w.Description, &created, &updated, &w.ServerCount); err != nil {
		return nil, err
	}
	w.CreatedAt, w.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &w, nil
}

// CreateWorkspace inserts w, filling ID, CreatedAt and UpdatedAt. An empty
// Slug is derived from Name and made unique for the owner with -2, -3 …;
// an explicit Slug the owner already uses → ErrSlugTaken.
func (s *Store) CreateWorkspace(ctx context.Context, w *Workspace) error {
	if w.ID == "" {
		w.ID = NewID("ws_")
	}
	w.CreatedAt = norm(w.CreatedAt)
	w.UpdatedAt = w.CreatedAt
	w.ServerCount = 0
	insert := func(slug string) error {
		_, err := s.w.ExecContext(ctx, s.w.Rebind(`INSERT INTO workspaces
			(id, owner_id, slug, name, description, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
			w.ID, w.OwnerID, slug, w.Name, w.Description, micros(w.CreatedAt), micros(w.UpdatedAt))
		if err = mapErr(err, "db: create workspace"); err == nil {
			w.Slug = slug
		}
		return err
	}
	if w.Slug != "" {
		return insert(w.Slug)
	}
	base := Slugify(w.Name, "workspace")
	var used []string
	if err := s.r.SelectContext(ctx, &used, s.r.Rebind(`SELECT slug FROM workspaces WHERE owner_id = ? AND (slug = ? OR slug LIKE ?)`),
		w.OwnerID, base, likePrefix(base)); err != nil {
		return fmt.Errorf("db: create workspace: %w", err)
	}
	return insertWithDerivedSlug(ctx, base, setOf(used), insert)
}

func setOf(xs []string) map[string]bool {
	m := make(map[string]bool, len(xs))
	for _, x := range xs {
		m[x] = true
	}
	return m
}

// ListWorkspaces returns the owner's workspaces, newest first, with ServerCount.
func (s *Store) ListWorkspaces(ctx context.Context, ownerID string) ([]*Workspace, error) {
	rows, err := s.r.QueryContext(ctx, s.r.Rebind(`SELECT `+workspaceCols+` FROM workspaces w
		WHERE w.owner_id = ? ORDER BY w.created_at DESC, w.id DESC`), ownerID)
	if err != nil {
		return nil, fmt.Errorf("db: list workspaces: %w", err)
	}
	defer rows.Close()
	out := []*Workspace{}
	for rows.Next() {
		w, err := scanWorkspace(rows)
		if err != nil {
			return nil, fmt.Errorf("db: list workspaces: %w", err)
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("db: list workspaces: %w", err)
	}
	return out, nil
}

// Workspace returns the owner's workspace id; another owner's → ErrNotFound.
func (s *Store) Workspace(ctx context.Context, ownerID, id string) (*Workspace, error) {
	w, err := scanWorkspace(s.r.QueryRowContext(ctx, s.r.Rebind(`SELECT `+workspaceCols+` FROM workspaces w
		WHERE w.id = ? AND w.owner_id = ?`), id, ownerID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("db: get workspace: %w", err)
	}
	return w, nil
}

// UpdateWorkspace writes Slug, Name and Description of the workspace
// (w.ID, w.OwnerID) and sets UpdatedAt. Unknown or foreign → ErrNotFound;
// a slug the owner already uses → ErrSlugTaken.
func (s *Store) UpdateWorkspace(ctx context.Context, w *Workspace) error {
	if w.Slug == "" {
		return errors.New("db: update workspace: empty slug")
	}
	updated := now()
	res, err := s.w.ExecContext(ctx, s.w.Rebind(`UPDATE workspaces SET slug = ?, name = ?, description = ?, updated_at = ?
		WHERE id = ? AND owner_id = ?`), w.Slug, w.Name, w.Description, micros(updated), w.ID, w.OwnerID)
	if err := mustAffect(res, mapErr(err, "db: update workspace")); err != nil {
		return err
	}
	w.UpdatedAt = updated
	return nil
}

// DeleteWorkspace deletes the owner's workspace and its MCP servers;
// endpoints that pointed at it are left with no workspace.
func (s *Store) DeleteWorkspace(ctx context.Context, ownerID, id string) error {
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		var one int
		err := tx.QueryRowContext(ctx, tx.Rebind(`SELECT 1 FROM workspaces WHERE id = ? AND owner_id = ?`), id, ownerID).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("db: delete workspace: %w", err)
		}
		// Explicit rather than relying on ON DELETE actions alone.
		stmts := []string{
			`UPDATE endpoints SET workspace_id = NULL, updated_at = ? WHERE workspace_id = ?`,
			`DELETE FROM mcp_servers WHERE workspace_id = ?`,
			`DELETE FROM workspaces WHERE id = ?`,
		}
		for i, q := range stmts {
			args := []any{id}
			if i == 0 {
				args = []any{micros(now()), id}
			}
			if _, err := tx.ExecContext(ctx, tx.Rebind(q), args...); err != nil {
				return fmt.Errorf("db: delete workspace: %w", err)
			}
		}
		return nil
	})
}

// mustAffect returns err, or ErrNotFound when the statement touched no row.
func mustAffect(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("rows affected: %w", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}
