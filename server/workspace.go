package server

import (
	"context"
	"net/url"
	"regexp"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/agentgate/agentgate/db"
	"github.com/agentgate/agentgate/tools"
)

type workspaceJSON struct {
	ID          string        `json:"id"`
	Slug        string        `json:"slug"`
	Name        string        `json:"name"`
	Description string        `json:"description"`
	ServerCount *int          `json:"server_count,omitempty"`
	Servers     []*serverJSON `json:"servers,omitzero"` // GET answers [] for none; lists omit it
	CreatedAt   string        `json:"created_at"`
	UpdatedAt   string        `json:"updated_at"`
}

func toWorkspaceJSON(w *db.Workspace) *workspaceJSON {
	return &workspaceJSON{ID: w.ID, Slug: w.Slug, Name: w.Name, Description: w.Description,
		CreatedAt: rfc3339(w.CreatedAt), UpdatedAt: rfc3339(w.UpdatedAt)}
}

type serverJSON struct {
	ID             string   `json:"id"`
	Slug           string   `json:"slug"`
	Name           string   `json:"name"`
	Transport      string   `json:"transport"`
	URL            string   `json:"url,omitempty"`
	OperatorServer string   `json:"operator_server,omitempty"`
	HeaderNames    []string `json:"header_names"`
	Enabled        bool     `json:"enabled"`
	CreatedAt      string   `json:"created_at"`
}

func toServerJSON(m *db.MCPServer) *serverJSON {
	names := make([]string, 0, len(m.Headers))
	for k := range m.Headers {
		names = append(names, k)
	}
	sortStrings(names)
	return &serverJSON{ID: m.ID, Slug: m.Slug, Name: m.Name, Transport: m.Transport, URL: m.URL,
		OperatorServer: m.OperatorServer, HeaderNames: names, Enabled: m.Enabled, CreatedAt: rfc3339(m.CreatedAt)}
}

func (s *Server) createWorkspace(c *fiber.Ctx) error {
	f, err := decodeObject(c.Body(), "name", "description")
	if err != nil {
		return err
	}
	w := &db.Workspace{OwnerID: userID(c)}
	if err := applyWorkspace(f, w, true); err != nil {
		return err
	}
	if err := s.store.CreateWorkspace(c.UserContext(), w); err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"workspace": toWorkspaceJSON(w)})
}

func applyWorkspace(f fields, w *db.Workspace, create bool) error {
	name, ok, err := f.str("name")
	if err != nil {
		return err
	}
	if ok || create {
		if err := textLen("name", strings.TrimSpace(name), 1, 100); err != nil {
			return err
		}
		w.Name = strings.TrimSpace(name)
	}
	desc, ok, err := f.optStr("description")
	if err != nil {
		return err
	}
	if ok {
		w.Description = ""
		if desc != nil {
			if err := textLen("description", *desc, 0, 500); err != nil {
				return err
			}
			w.Description = *desc
		}
	}
	return nil
}

func (s *Server) listWorkspaces(c *fiber.Ctx) error {
	list, err := s.store.ListWorkspaces(c.UserContext(), userID(c))
	if err != nil {
		return err
	}
	out := make([]*workspaceJSON, 0, len(list))
	for _, w := range list {
		j := toWorkspaceJSON(w)
		n := w.ServerCount
		j.ServerCount = &n
		out = append(out, j)
	}
	return c.JSON(fiber.Map{"workspaces": out})
}

func (s *Server) workspace(c *fiber.Ctx) (*db.Workspace, error) {
	w, err := s.store.Workspace(c.UserContext(), userID(c), c.Params("id"))
	if err != nil {
		return nil, notFoundAs(err, "workspace")
	}
	return w, nil
}

func (s *Server) getWorkspace(c *fiber.Ctx) error {
	w, err := s.workspace(c)
	if err != nil {
		return err
	}
	servers, err := s.store.ListMCPServers(c.UserContext(), w.ID)
	if err != nil {
		return err
	}
	j := toWorkspaceJSON(w)
	j.Servers = make([]*serverJSON, 0, len(servers))
	for _, m := range servers {
		j.Servers = append(j.Servers, toServerJSON(m))
	}
	n := len(servers)
	j.ServerCount = &n
	return c.JSON(fiber.Map{"workspace": j})
}

func (s *Server) patchWorkspace(c *fiber.Ctx) error {
	w, err := s.workspace(c)
	if err != nil {
		return err
	}
	f, err := decodeObject(c.Body(), "name", "description")
	if err != nil {
		return err
	}
	if err := applyWorkspace(f, w, false); err != nil {
		return err
	}
	if err := s.store.UpdateWorkspace(c.UserContext(), w); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"workspace": toWorkspaceJSON(w)})
}

func (s *Server) deleteWorkspace(c *fiber.Ctx) error {
	w, err := s.workspace(c)
	if err != nil {
		return err
	}
	servers, _ := s.store.ListMCPServers(c.UserContext(), w.ID)
	err = s.store.DeleteWorkspace(c.UserContext(), userID(c), w.ID)
	s.endpointsChanged(c.UserContext()) // its endpoints lost their workspace
	if err != nil {
		return notFoundAs(err, "workspace")
	}
	for _, m := range servers {
		s.tools.Forget(m.ID)
	}
	return c.SendStatus(fiber.StatusNoContent)
}

var slugRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,59}$`)

func (s *Server) createServer(c *fiber.Ctx) error {
	w, err := s.workspace(c)
	if err != nil {
		return err
	}
	f, err := decodeObject(c.Body(), "name", "slug", "transport", "url", "headers", "enabled", "operator_server")
	if err != nil {
		return err
	}
	m := &db.MCPServer{WorkspaceID: w.ID, Enabled: true}
	if op, ok, err := f.str("operator_server"); err != nil {
		return err
	} else if ok {
		cfg, found := s.operatorServer(op)
		if !found {
			return errValidation("operator_server %q is not declared in the server's config", op)
		}
		for _, k := range []string{"transport", "url", "headers"} {
			if f.has(k) {
				return errValidation("%s cannot be set with operator_server", k)
			}
		}
		m.OperatorServer, m.Transport, m.Name, m.Slug = cfg.Slug, cfg.Transport, cfg.Slug, cfg.Slug
	} else if !f.has("transport") || !f.has("url") {
		if !f.has("url") {
			return errValidation("url is required")
		}
		return errValidation("transport is required")
	}
	if err := s.applyServer(c.UserContext(), f, m, true); err != nil {
		return err
	}
	if err := s.store.CreateMCPServer(c.UserContext(), m); err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"server": toServerJSON(m)})
}

// applyServer validates fields onto m. Header values are secrets: stored encrypted, never returned.
func (s *Server) applyServer(ctx context.Context, f fields, m *db.MCPServer, create bool) error {
	if name, ok, err := f.str("name"); err != nil {
		return err
	} else if ok || (create && m.Name == "") {
		if err := textLen("name", strings.TrimSpace(name), 1, 100); err != nil {
			return err
		}
		m.Name = strings.TrimSpace(name)
	}
	if slug, ok, err := f.str("slug"); err != nil {
		return err
	} else if ok {
		if !slugRe.MatchString(slug) || strings.Contains(slug, "--") {
			return errValidation("slug must match ^[a-z0-9][a-z0-9-]{0,59}$")
		}
		m.Slug = slug
	} else if create && m.Slug == "" {
		m.Slug = deriveSlug(m.Name, "server")
	}
	if tr, ok, err := f.str("transport"); err != nil {
		return err
	} else if ok {
		if tr != "streamable_http" && tr != "sse" {
			return errValidation("transport must be streamable_http or sse (stdio servers are declared in the operator's config file)")
		}
		m.Transport = tr
	}
	if raw, ok, err := f.str("url"); err != nil {
		return err
	} else if ok {
		u, perr := url.Parse(raw)
		if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return errValidation("url must be an http or https URL")
		}
		if err := tools.CheckURL(ctx, raw, s.cfg.AllowPrivateEgress); err != nil {
			return errValidation("url is not allowed: %v", err)
		}
		m.URL = raw
	}
	if h, ok, err := f.stringMap("headers"); err != nil {
		return err
	} else if ok {
		for k := range h {
			if k == "" || strings.ContainsAny(k, " \r\n:") {
				return errValidation("headers has an invalid header name")
			}
		}
		m.Headers = h
	}
	if en, ok, err := f.boolean("enabled"); err != nil {
		return err
	} else if ok {
		m.Enabled = en
	}
	return nil
}

func (s *Server) mcpServer(c *fiber.Ctx) (*db.MCPServer, error) {
	w, err := s.workspace(c)
	if err != nil {
		return nil, err
	}
	m, err := s.store.MCPServer(c.UserContext(), w.ID, c.Params("server_id"))
	if err != nil {
		return nil, notFoundAs(err, "server")
	}
	return m, nil
}

func (s *Server) patchServer(c *fiber.Ctx) error {
	m, err := s.mcpServer(c)
	if err != nil {
		return err
	}
	allowed := []string{"name", "slug", "enabled"}
	if m.OperatorServer == "" {
		allowed = append(allowed, "transport", "url", "headers")
	}
	f, err := decodeObject(c.Body(), allowed...)
	if err != nil {
		return err
	}
	if err := s.applyServer(c.UserContext(), f, m, false); err != nil {
		return err
	}
	if err := s.store.UpdateMCPServer(c.UserContext(), m); err != nil {
		return err
	}
	s.tools.Forget(m.ID)
	return c.JSON(fiber.Map{"server": toServerJSON(m)})
}

func (s *Server) deleteServer(c *fiber.Ctx) error {
	m, err := s.mcpServer(c)
	if err != nil {
		return err
	}
	if err := s.store.DeleteMCPServer(c.UserContext(), m.WorkspaceID, m.ID); err != nil {
		return notFoundAs(err, "server")
	}
	s.tools.Forget(m.ID)
	return c.SendStatus(fiber.StatusNoContent)
}

type toolJSON struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	InputSchema any    `json:"input_schema"`
	Server      string `json:"server"`
}

func (s *Server) listTools(c *fiber.Ctx) error {
	w, err := s.workspace(c)
	if err != nil {
		return err
	}
	tb, err := s.toolbox(c.UserContext(), w.ID)
	if err != nil {
		return err
	}
	out := []toolJSON{}
	var warnings []string
	if tb != nil {
		list, warns, err := tb.List(c.UserContext())
		if err != nil {
			return err
		}
		warnings = warns
		for _, t := range list {
			out = append(out, toolJSON{Name: t.Name, Description: t.Description, InputSchema: rawOrEmpty(t.InputSchema), Server: t.Server})
		}
	}
	if warnings == nil {
		warnings = []string{}
	}
	return c.JSON(fiber.Map{"tools": out, "warnings": warnings})
}

func (s *Server) listOperatorServers(c *fiber.Ctx) error {
	type opJSON struct {
		Slug      string `json:"slug"`
		Transport string `json:"transport"`
	}
	out := make([]opJSON, 0, len(s.cfg.OperatorServers))
	for _, o := range s.cfg.OperatorServers {
		out = append(out, opJSON{Slug: o.Slug, Transport: o.Transport})
	}
	return c.JSON(fiber.Map{"servers": out})
}

func (s *Server) operatorServer(slug string) (tools.ServerConfig, bool) {
	for _, o := range s.cfg.OperatorServers {
		if o.Slug == slug {
			return o, true
		}
	}
	return tools.ServerConfig{}, false
}

// toolbox builds the tool set of a workspace's enabled servers; nil when it has none.
func (s *Server) toolbox(ctx context.Context, workspaceID string) (*tools.Toolbox, error) {
	servers, err := s.store.ListMCPServers(ctx, workspaceID)
	if err != nil {
		return nil, err
	}
	var cfgs []tools.ServerConfig
	for _, m := range servers {
		if !m.Enabled {
			continue
		}
		if m.OperatorServer != "" {
			op, ok := s.operatorServer(m.OperatorServer)
			if !ok {
				continue
			}
			// The slug is part of a session's identity (tools.ServerConfig's fingerprint):
			// key the session by it too, or workspaces that attach this server under
			// different slugs would keep replacing each other's session (and stdio child).
			op.ID += "#" + m.Slug
			op.Slug = m.Slug
			cfgs = append(cfgs, op)
			continue
		}
		cfgs = append(cfgs, tools.ServerConfig{
			ID: m.ID, Slug: m.Slug, Transport: m.Transport, URL: m.URL, Headers: m.Headers,
			Version: m.UpdatedAt.UTC().Format("20060102150405.000000000"),
		})
	}
	if len(cfgs) == 0 {
		return nil, nil
	}
	return s.tools.Toolbox(cfgs), nil
}

// deriveSlug makes a slug candidate from a name.
func deriveSlug(name, fallback string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
		if b.Len() >= 50 {
			break
		}
	}
	s := strings.Trim(b.String(), "-")
	if s == "" {
		return fallback
	}
	return s
}
