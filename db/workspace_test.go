package db_test

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/agentgate/agentgate/db"
)

func TestWorkspaces(t *testing.T) {
	eachKind(t, func(t *testing.T, s *db.Store) {
		ctx := ctxOf(t)
		alice := mustUser(t, s, "alice@example.com")
		bob := mustUser(t, s, "bob@example.com")

		// Derived slugs get -2, -3 per owner; other owners start over.
		var ws []*db.Workspace
		for _, want := range []string{"my-tools", "my-tools-2", "my-tools-3"} {
			w := mustWorkspace(t, s, alice.ID, "My Tools!")
			if w.Slug != want {
				t.Fatalf("derived slug = %q, want %q", w.Slug, want)
			}
			if !strings.HasPrefix(w.ID, "ws_") || w.CreatedAt.IsZero() || !w.UpdatedAt.Equal(w.CreatedAt) {
				t.Fatalf("CreateWorkspace filled %+v", w)
			}
			ws = append(ws, w)
		}
		if w := mustWorkspace(t, s, bob.ID, "My Tools"); w.Slug != "my-tools" {
			t.Fatalf("bob's slug = %q, want my-tools", w.Slug)
		}
		// An explicit slug the owner already uses is refused.
		if err := s.CreateWorkspace(ctx, &db.Workspace{OwnerID: alice.ID, Name: "x", Slug: "my-tools-2"}); !errors.Is(err, db.ErrSlugTaken) {
			t.Fatalf("explicit taken slug = %v, want ErrSlugTaken", err)
		}
		// A taken explicit slug used as a name base still works once freed by -N.
		if w := mustWorkspace(t, s, alice.ID, "my-tools-2"); w.Slug != "my-tools-2-2" {
			t.Fatalf("slug from name my-tools-2 = %q", w.Slug)
		}

		// Servers for ServerCount.
		for _, name := range []string{"A", "B"} {
			must(t, s.CreateMCPServer(ctx, &db.MCPServer{WorkspaceID: ws[0].ID, Name: name, Transport: "streamable_http",
				URL: "http://127.0.0.1:1/mcp", Enabled: true}), "server %s", name)
		}

		list, err := s.ListWorkspaces(ctx, alice.ID)
		must(t, err, "ListWorkspaces")
		if len(list) != 4 {
			t.Fatalf("ListWorkspaces len = %d, want 4", len(list))
		}
		counts := map[string]int{}
		for i, w := range list {
			if w.OwnerID != alice.ID {
				t.Fatalf("ListWorkspaces returned another owner's %+v", w)
			}
			if i > 0 && w.CreatedAt.After(list[i-1].CreatedAt) {
				t.Fatal("ListWorkspaces not newest first")
			}
			counts[w.ID] = w.ServerCount
		}
		if counts[ws[0].ID] != 2 || counts[ws[1].ID] != 0 {
			t.Fatalf("server counts = %v", counts)
		}

		got, err := s.Workspace(ctx, alice.ID, ws[0].ID)
		must(t, err, "Workspace")
		if got.Slug != "my-tools" || got.ServerCount != 2 || !got.CreatedAt.Equal(ws[0].CreatedAt) {
			t.Fatalf("Workspace = %+v", got)
		}
		if _, err := s.Workspace(ctx, bob.ID, ws[0].ID); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("Workspace(other owner) = %v, want ErrNotFound", err)
		}

		// Update.
		upd := *got
		upd.Name, upd.Slug, upd.Description = "Renamed", "renamed", "desc"
		must(t, s.UpdateWorkspace(ctx, &upd), "UpdateWorkspace")
		got, err = s.Workspace(ctx, alice.ID, ws[0].ID)
		must(t, err, "Workspace after update")
		if got.Name != "Renamed" || got.Slug != "renamed" || got.Description != "desc" || got.UpdatedAt.Before(got.CreatedAt) {
			t.Fatalf("after update = %+v", got)
		}
		upd.Slug = "my-tools-2"
		if err := s.UpdateWorkspace(ctx, &upd); !errors.Is(err, db.ErrSlugTaken) {
			t.Fatalf("update to taken slug = %v, want ErrSlugTaken", err)
		}
		foreign := *got
		foreign.OwnerID = bob.ID
		if err := s.UpdateWorkspace(ctx, &foreign); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("update by other owner = %v, want ErrNotFound", err)
		}

		// Delete: servers go, endpoints lose the workspace.
		e := newEndpoint(alice.ID, "Uses WS", "uses-ws")
		e.WorkspaceID = &ws[0].ID
		must(t, s.CreateEndpoint(ctx, e), "CreateEndpoint")
		servers, err := s.ListMCPServers(ctx, ws[0].ID)
		must(t, err, "ListMCPServers")

		if err := s.DeleteWorkspace(ctx, bob.ID, ws[0].ID); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("delete by other owner = %v, want ErrNotFound", err)
		}
		must(t, s.DeleteWorkspace(ctx, alice.ID, ws[0].ID), "DeleteWorkspace")
		if _, err := s.Workspace(ctx, alice.ID, ws[0].ID); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("Workspace after delete = %v", err)
		}
		if _, err := s.MCPServer(ctx, ws[0].ID, servers[0].ID); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("server after workspace delete = %v, want ErrNotFound", err)
		}
		if n := rawInt(t, s, `SELECT COUNT(*) FROM mcp_servers WHERE workspace_id = ?`, ws[0].ID); n != 0 {
			t.Fatalf("%d servers left after workspace delete", n)
		}
		ge, err := s.Endpoint(ctx, alice.ID, e.ID, false)
		must(t, err, "Endpoint after workspace delete")
		if ge.WorkspaceID != nil {
			t.Fatalf("endpoint still points at deleted workspace %q", *ge.WorkspaceID)
		}
		if err := s.DeleteWorkspace(ctx, alice.ID, ws[0].ID); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("second delete = %v, want ErrNotFound", err)
		}
	})
}

func TestMCPServers(t *testing.T) {
	eachKind(t, func(t *testing.T, s *db.Store) {
		ctx := ctxOf(t)
		u := mustUser(t, s, "o@example.com")
		w1 := mustWorkspace(t, s, u.ID, "one")
		w2 := mustWorkspace(t, s, u.ID, "two")

		const secret = "Bearer s3cr3t-token-value"
		m := &db.MCPServer{WorkspaceID: w1.ID, Name: "GitHub", Slug: "gh", Transport: "streamable_http",
			URL: "https://mcp.example/gh", Headers: map[string]string{"Authorization": secret, "X-Org": "acme-org-id"}, Enabled: true}
		must(t, s.CreateMCPServer(ctx, m), "create")
		if !strings.HasPrefix(m.ID, "mcs_") || m.Slug != "gh" {
			t.Fatalf("created %+v", m)
		}

		// Header values are ciphertext in the column.
		raw := rawString(t, s, `SELECT headers FROM mcp_servers WHERE id = ?`, m.ID)
		if strings.Contains(raw, "s3cr3t") || strings.Contains(raw, "acme-org-id") {
			t.Fatalf("plaintext header value in the column: %s", raw)
		}
		got, err := s.MCPServer(ctx, w1.ID, m.ID)
		must(t, err, "MCPServer")
		if !maps.Equal(got.Headers, m.Headers) || got.URL != m.URL || got.Transport != m.Transport || !got.Enabled ||
			got.Name != "GitHub" || !got.CreatedAt.Equal(m.CreatedAt) {
			t.Fatalf("MCPServer = %+v, want %+v", got, m)
		}
		if _, err := s.MCPServer(ctx, w2.ID, m.ID); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("server via other workspace = %v, want ErrNotFound", err)
		}

		// Slug unique within a workspace only.
		dup := &db.MCPServer{WorkspaceID: w1.ID, Name: "Other", Slug: "gh", Transport: "sse", URL: "http://x"}
		if err := s.CreateMCPServer(ctx, dup); !errors.Is(err, db.ErrSlugTaken) {
			t.Fatalf("duplicate slug = %v, want ErrSlugTaken", err)
		}
		dup.ID = ""
		dup.WorkspaceID = w2.ID
		must(t, s.CreateMCPServer(ctx, dup), "same slug in another workspace")
		// Derived slugs.
		for _, want := range []string{"files", "files-2"} {
			d := &db.MCPServer{WorkspaceID: w1.ID, Name: "Files", Transport: "sse", URL: "http://f"}
			must(t, s.CreateMCPServer(ctx, d), "derived")
			if d.Slug != want {
				t.Fatalf("derived slug = %q, want %q", d.Slug, want)
			}
		}
		op := &db.MCPServer{WorkspaceID: w1.ID, OperatorServer: "local-fs", Transport: "stdio", Enabled: true}
		must(t, s.CreateMCPServer(ctx, op), "operator server")
		if op.Slug != "local-fs" {
			t.Fatalf("operator server slug = %q", op.Slug)
		}
		if err := s.CreateMCPServer(ctx, &db.MCPServer{WorkspaceID: "ws_missing", Name: "x", Transport: "sse"}); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("server in unknown workspace = %v, want ErrNotFound", err)
		}

		list, err := s.ListMCPServers(ctx, w1.ID)
		must(t, err, "ListMCPServers")
		var slugs []string
		for _, x := range list {
			slugs = append(slugs, x.Slug)
		}
		if strings.Join(slugs, ",") != "gh,files,files-2,local-fs" {
			t.Fatalf("ListMCPServers slugs = %v", slugs)
		}
		if list[0].Headers["Authorization"] != secret || list[3].OperatorServer != "local-fs" {
			t.Fatalf("list lost fields: %+v / %+v", list[0], list[3])
		}

		// Update: toggle, new headers; conflicts and foreign ids.
		got.Enabled = false
		got.Headers = map[string]string{"Authorization": "Bearer new-one"}
		got.URL = "https://mcp.example/v2"
		must(t, s.UpdateMCPServer(ctx, got), "UpdateMCPServer")
		again, err := s.MCPServer(ctx, w1.ID, m.ID)
		must(t, err, "after update")
		if again.Enabled || again.URL != got.URL || !maps.Equal(again.Headers, got.Headers) {
			t.Fatalf("after update = %+v", again)
		}
		got.Slug = "files"
		if err := s.UpdateMCPServer(ctx, got); !errors.Is(err, db.ErrSlugTaken) {
			t.Fatalf("update to taken slug = %v, want ErrSlugTaken", err)
		}
		got.Slug, got.WorkspaceID = "gh", w2.ID
		if err := s.UpdateMCPServer(ctx, got); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("update via other workspace = %v, want ErrNotFound", err)
		}

		// Delete.
		if err := s.DeleteMCPServer(ctx, w2.ID, m.ID); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("delete via other workspace = %v, want ErrNotFound", err)
		}
		must(t, s.DeleteMCPServer(ctx, w1.ID, m.ID), "DeleteMCPServer")
		if _, err := s.MCPServer(ctx, w1.ID, m.ID); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("after delete = %v", err)
		}
		if err := s.DeleteMCPServer(ctx, w1.ID, m.ID); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("second delete = %v, want ErrNotFound", err)
		}
	})
}
