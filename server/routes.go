package server

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"
	"github.com/gofiber/fiber/v2/middleware/recover"

	"github.com/agentgate/agentgate/web"
)

// routes is the whole route table.
func (s *Server) routes() {
	a := s.app
	// Only recover, request id and the access log: nothing that buffers or rewrites bodies,
	// which would break streaming (no compression, no ETag).
	a.Use(recover.New(), s.requestLog, s.checkBodyLimit)

	a.Get("/healthz", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) })
	a.Get("/readyz", s.readyz)
	a.Get("/metrics", s.metrics.handler())

	api := a.Group("/api")
	api.Post("/auth/register", s.register)
	api.Post("/auth/login", s.login)

	// Callers of endpoints: key auth (or public), rate limited.
	api.Post("/run/:slug", s.runEndpoint)
	api.Get("/runs/:id", s.runStatus)
	api.Get("/runs/:id/events", s.runEvents)

	// Operator: admin token (off when none is configured).
	api.Post("/admin/wallet/deposit", s.requireAdmin, s.adminDeposit)

	// Owners: JWT, checked per route (a group middleware would also guard unknown /api
	// paths, answering 401 where 404 is right).
	u := ownerRoutes{api, s.requireUser}
	u.Get("/me", s.me)
	u.Get("/balance", s.balance)
	u.Get("/ledger", s.ledger)
	u.Get("/mcp-servers", s.listOperatorServers)

	u.Post("/workspaces", s.createWorkspace)
	u.Get("/workspaces", s.listWorkspaces)
	u.Get("/workspaces/:id", s.getWorkspace)
	u.Patch("/workspaces/:id", s.patchWorkspace)
	u.Delete("/workspaces/:id", s.deleteWorkspace)
	u.Post("/workspaces/:id/servers", s.createServer)
	u.Patch("/workspaces/:id/servers/:server_id", s.patchServer)
	u.Delete("/workspaces/:id/servers/:server_id", s.deleteServer)
	u.Get("/workspaces/:id/tools", s.listTools)

	u.Post("/agent-endpoints", s.createEndpoint)
	u.Get("/agent-endpoints", s.listEndpoints)
	u.Get("/agent-endpoints/:id", s.getEndpoint)
	u.Patch("/agent-endpoints/:id", s.patchEndpoint)
	u.Delete("/agent-endpoints/:id", s.deleteEndpoint)
	u.Post("/agent-endpoints/:id/regenerate-key", s.regenerateKey)
	u.Post("/agent-endpoints/:id/test", s.testEndpoint)
	u.Get("/agent-endpoints/:id/runs", s.listRuns)
	u.Get("/agent-endpoints/:id/runs/:run_id", s.getRun)
	u.Get("/agent-endpoints/:id/stats", s.stats)

	// The OpenAI-compatible facade (openai.go): endpoint key auth, rate limited like runs.
	v1 := a.Group("/v1")
	v1.Post("/chat/completions", s.chatCompletions)
	v1.Get("/models", s.listModels)
	v1.Get("/models/:model", s.getModel)
	v1.Use(func(c *fiber.Ctx) error { return errNotFound("route") })

	api.Use(func(c *fiber.Ctx) error { return errNotFound("route") })

	// The dashboard: static files, index.html for /.
	a.Use("/", filesystem.New(filesystem.Config{Root: http.FS(web.FS()), Index: "index.html", MaxAge: 0}))
}

// ownerRoutes registers routes that need the owner's JWT.
type ownerRoutes struct {
	r    fiber.Router
	auth fiber.Handler
}

func (o ownerRoutes) Get(path string, h fiber.Handler)    { o.r.Get(path, o.auth, h) }
func (o ownerRoutes) Post(path string, h fiber.Handler)   { o.r.Post(path, o.auth, h) }
func (o ownerRoutes) Patch(path string, h fiber.Handler)  { o.r.Patch(path, o.auth, h) }
func (o ownerRoutes) Delete(path string, h fiber.Handler) { o.r.Delete(path, o.auth, h) }

func (s *Server) readyz(c *fiber.Ctx) error {
	if err := s.store.Ping(c.UserContext()); err != nil {
		s.log.Warn("readiness: database unreachable", slog.Any("err", err))
		return c.Status(fiber.StatusServiceUnavailable).JSON(errorBody{Error: errUnavailable("database unreachable")})
	}
	if s.draining.Load() {
		return c.Status(fiber.StatusServiceUnavailable).JSON(errorBody{Error: errUnavailable("server shutting down")})
	}
	return c.JSON(fiber.Map{"status": "ready"})
}

const localRequestID = "agentgate.request_id"

func requestID(c *fiber.Ctx) string {
	id, _ := c.Locals(localRequestID).(string)
	return id
}

// requestLog gives each request an id (X-Request-Id) and logs one line when its handler
// returns (for a stream: when the stream starts; the run's own line follows at its end).
func (s *Server) requestLog(c *fiber.Ctx) error {
	start := time.Now()
	id := c.Get(fiber.HeaderXRequestID)
	if id == "" || len(id) > 64 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	c.Locals(localRequestID, id)
	c.Set(fiber.HeaderXRequestID, id)
	err := c.Next()
	if err != nil {
		if herr := s.app.ErrorHandler(c, err); herr != nil {
			return herr
		}
	}
	if s.log.Enabled(c.UserContext(), slog.LevelInfo) {
		s.log.LogAttrs(c.UserContext(), slog.LevelInfo, "request",
			slog.String("request_id", id), slog.String("method", c.Method()), slog.String("path", c.Path()),
			slog.Int("status", c.Response().StatusCode()), slog.Duration("duration", time.Since(start)),
			slog.String("ip", c.IP()))
	}
	return nil
}
