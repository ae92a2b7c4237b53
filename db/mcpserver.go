package db

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// MCPServer is an MCP server attached to a workspace. Headers carry
// plaintext here; their values are stored encrypted.
type MCPServer struct {
	ID, WorkspaceID, Slug, Name, Transport, URL string
	Headers                                     map[string]string
	// OperatorServer is the slug of an operator-declared server, "" otherwise.
	OperatorServer       string
	Enabled              bool
	CreatedAt, UpdatedAt time.Time
}

const mcpCols = `id, workspace_id, slug, name, transport, url, headers, operator_server, enabled, created_at, updated_at`

func headerAAD(serverID, name string) string { return "mcp_servers.headers:" + serverID + ":" + name }

// sealHeaders encodes the headers as a JSON object of name → ciphertext.
func (s *Store) sealHeaders(serverID string, h map[string]string) (string, error) {
	enc := make(map[string]string, len(h))
	for k, v := range h {
		c, err := s.seal(v, headerAAD(serverID, k))
		if err != nil {
			return "", fmt.Errorf("header %q: %w", k, err)
		}
		enc[k] = c
	}
	b, err := json.Marshal(enc)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func (s *Store) openHeaders(serverID, stored string) (map[string]string, error) {
	enc := map[string]string{}
	if stored != "" {
		if err := json.Unmarshal([]byte(stored), &enc); err != nil {
			return nil, fmt.Errorf("headers: %w", err)
		}
	}
	out := make(map[string]string, len(enc))
	for k, c := range enc {
		v, err := s.open(c, headerAAD(serverID, k))
		if err != nil {
			return nil, fmt.Errorf("header %q: %w", k, err)
		}
		out[k] = v
	}
	return out, nil
}

func (s *Store) scanMCPServer(sc interface{ Scan(...any) error }) (*MCPServer, error) {
	var m MCPServer
	var headers string
	var created, updated int64
	if err := sc.Scan(&m.ID, &m.WorkspaceID, &m.Slug, &m.Name, &m.Transport, &m.URL, &headers,
		&m.OperatorServer, &m.Enabled, &created, &updated); err != nil {
		return nil, err
	}
	h, err := s.openHeaders(m.ID, headers)
	if err != nil {
		return nil, err
	}
	m.Headers = h
	m.CreatedAt, m.UpdatedAt = fromMicros(created), fromMicros(updated)
	return &m, nil
}

// CreateMCPServer inserts m, filling ID, CreatedAt and UpdatedAt. An empty
// Slug is derived from Name (or OperatorServer) with -2, -3 … suffixes; an
// explicit slug already used in the workspace → ErrSlugTaken. An unknown
// workspace → ErrNotFound.
func (s *Store) CreateMCPServer(ctx context.Context, m *MCPServer) error {
	if m.ID == "" {
		m.ID = NewID("mcs_")
	}
	m.CreatedAt = norm(m.CreatedAt)
	m.UpdatedAt = m.CreatedAt
	headers, err := s.sealHeaders(m.ID, m.Headers)
	if err != nil {
		return fmt.Errorf("db: create mcp server: %w", err)
	}
	insert := func(slug string) error {
		_, err := s.w.ExecContext(ctx, s.w.Rebind(`INSERT INTO mcp_servers (`+mcpCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			m.ID, m.WorkspaceID, slug, m.Name, m.Transport, m.URL, headers, m.OperatorServer, m.Enabled,
			micros(m.CreatedAt), micros(m.UpdatedAt))
		if err = mapErr(err, "db: create mcp server"); err == nil {
			m.Slug = slug
		}
		return err
	}
	if m.Slug != "" {
		return insert(m.Slug)
	}
	name := m.Name
	if name == "" {
		name = m.OperatorServer
	}
	base := Slugify(name, "server")
	var used []string
	if err := s.r.SelectContext(ctx, &used, s.r.Rebind(`SELECT slug FROM mcp_servers WHERE workspace_id = ? AND (slug = ? OR slug LIKE ?)`),
		m.WorkspaceID, base, likePrefix(base)); err != nil {
		return fmt.Errorf("db: create mcp server: %w", err)
	}
	return insertWithDerivedSlug(ctx, base, setOf(used), insert)
}

// ListMCPServers returns the workspace's servers, oldest first. It does not
// check ownership: callers resolve the workspace with Workspace first.
func (s *Store) ListMCPServers(ctx context.Context, workspaceID string) ([]*MCPServer, error) {
	rows, err := s.r.QueryContext(ctx, s.r.Rebind(`SELECT `+mcpCols+` FROM mcp_servers WHERE workspace_id = ?
		ORDER BY created_at, id`), workspaceID)
	if err != nil {
		return nil, fmt.Errorf("db: list mcp servers: %w", err)
	}
	defer rows.Close()
	out := []*MCPServer{}
	for rows.Next() {
		m, err := s.scanMCPServer(rows)
		if err != nil {
			return nil, fmt.Errorf("db: list mcp servers: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("db: list mcp servers: %w", err)
	}
	return out, nil
}

// MCPServer returns server id of the workspace, or ErrNotFound.
func (s *Store) MCPServer(ctx context.Context, workspaceID, id string) (*MCPServer, error) {
	m, err := s.scanMCPServer(s.r.QueryRowContext(ctx, s.r.Rebind(`SELECT `+mcpCols+` FROM mcp_servers
		WHERE id = ? AND workspace_id = ?`), id, workspaceID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("db: get mcp server: %w", err)
	}
	return m, nil
}

// UpdateMCPServer writes every mutable field of server (m.WorkspaceID, m.ID):
// Slug, Name, Transport, URL, Headers, OperatorServer, Enabled; sets
// UpdatedAt. Unknown → ErrNotFound; a slug used in the workspace → ErrSlugTaken.
func (s *Store) UpdateMCPServer(ctx context.Context, m *MCPServer) error {
	if m.Slug == "" {
		return errors.New("db: update mcp server: empty slug")
	}
	headers, err := s.sealHeaders(m.ID, m.Headers)
	if err != nil {
		return fmt.Errorf("db: update mcp server: %w", err)
	}
	updated := now()
	res, err := s.w.ExecContext(ctx, s.w.Rebind(`UPDATE mcp_servers SET slug = ?, name = ?, transport = ?, url = ?,
		headers = ?, operator_server = ?, enabled = ?, updated_at = ? WHERE id = ? AND workspace_id = ?`),
		m.Slug, m.Name, m.Transport, m.URL, headers, m.OperatorServer, m.Enabled, micros(updated), m.ID, m.WorkspaceID)
	if err := mustAffect(res, mapErr(err, "db: update mcp server")); err != nil {
		return err
	}
	m.UpdatedAt = updated
	return nil
}

// DeleteMCPServer deletes server id of the workspace, or answers ErrNotFound.
func (s *Store) DeleteMCPServer(ctx context.Context, workspaceID, id string) error {
	res, err := s.w.ExecContext(ctx, s.w.Rebind(`DELETE FROM mcp_servers WHERE id = ? AND workspace_id = ?`), id, workspaceID)
	return mustAffect(res, mapErr(err, "db: delete mcp server"))
}
