package server

import (
	"crypto/subtle"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/agentgate/agentgate/agent"
	"github.com/agentgate/agentgate/db"
	"github.com/agentgate/agentgate/stream"
)

func errUnavailable(msg string) *stream.Error {
	return stream.Errorf(stream.CodeUnavailable, "%s", msg)
}

// balance is GET /api/balance.
func (s *Server) balance(c *fiber.Ctx) error {
	b, err := s.store.Balance(c.UserContext(), userID(c))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{
		"balance_cents":            agent.MicroToCents(b.BalanceMicroCents),
		"currency":                 "usd",
		"lifetime_deposited_cents": agent.MicroToCents(b.DepositedMicroCents),
		"lifetime_spent_cents":     agent.MicroToCents(b.SpentMicroCents),
	})
}

// ledger is GET /api/ledger: the wallet's latest entries.
func (s *Server) ledger(c *fiber.Ctx) error {
	limit := 20
	if q := c.Query("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > 200 {
			return errValidation("limit must be an integer between 1 and 200")
		}
		limit = n
	}
	entries, err := s.store.Ledger(c.UserContext(), userID(c), limit)
	if err != nil {
		return err
	}
	type entryJSON struct {
		ID          int64   `json:"id"`
		Kind        string  `json:"kind"`
		AmountCents float64 `json:"amount_cents"`
		RunID       string  `json:"run_id,omitempty"`
		CreatedAt   string  `json:"created_at"`
	}
	out := make([]entryJSON, 0, len(entries))
	for _, e := range entries {
		out = append(out, entryJSON{ID: e.ID, Kind: e.Kind, AmountCents: agent.MicroToCents(e.AmountMicroCents), RunID: e.RunID, CreatedAt: rfc3339(e.CreatedAt)})
	}
	return c.JSON(fiber.Map{"entries": out})
}

// stats is GET /api/agent-endpoints/:id/stats?minutes=60&bucket=60 for the dashboard's charts.
func (s *Server) stats(c *fiber.Ctx) error {
	e, err := s.endpoint(c, true)
	if err != nil {
		return err
	}
	minutes, err := queryInt(c, "minutes", 60, 1, 60*24*31)
	if err != nil {
		return err
	}
	bucket, err := queryInt(c, "bucket", 60, 10, 86400)
	if err != nil {
		return err
	}
	s.runner.rlog.sync(c.UserContext())
	since := time.Now().Add(-time.Duration(minutes) * time.Minute)
	buckets, err := s.store.RunStats(c.UserContext(), e.ID, since, time.Duration(bucket)*time.Second)
	if err != nil {
		return err
	}
	type bucketJSON struct {
		Start        string  `json:"start"`
		Runs         int     `json:"runs"`
		Errors       int     `json:"errors"`
		P50Ms        int64   `json:"p50_ms"`
		P95Ms        int64   `json:"p95_ms"`
		TokensInput  int64   `json:"tokens_input"`
		TokensOutput int64   `json:"tokens_output"`
		CostCents    float64 `json:"cost_cents"`
	}
	out := make([]bucketJSON, 0, len(buckets))
	for _, b := range buckets {
		out = append(out, bucketJSON{Start: rfc3339(b.Start), Runs: b.Runs, Errors: b.Errors, P50Ms: b.P50Ms, P95Ms: b.P95Ms,
			TokensInput: b.TokensInput, TokensOutput: b.TokensOutput, CostCents: agent.MicroToCents(b.CostMicroCents)})
	}
	return c.JSON(fiber.Map{"buckets": out})
}

func queryInt(c *fiber.Ctx, name string, def, lo, hi int) (int, error) {
	q := c.Query(name)
	if q == "" {
		return def, nil
	}
	n, err := strconv.Atoi(q)
	if err != nil || n < lo || n > hi {
		return 0, errValidation("%s must be an integer between %d and %d", name, lo, hi)
	}
	return n, nil
}

// requireAdmin guards operator routes with the configured admin token; without one they are off.
func (s *Server) requireAdmin(c *fiber.Ctx) error {
	if s.cfg.AdminToken == "" {
		return errNotFound("route")
	}
	tok, _ := bearer(c)
	if subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.AdminToken)) != 1 {
		return errUnauthorized("invalid admin token")
	}
	return c.Next()
}

// adminDeposit is POST /api/admin/wallet/deposit {"email","cents","key?"}.
func (s *Server) adminDeposit(c *fiber.Ctx) error {
	f, err := decodeObject(c.Body(), "email", "cents", "key")
	if err != nil {
		return err
	}
	email, ok, err := f.str("email")
	if err != nil {
		return err
	}
	if !ok {
		return errValidation("email is required")
	}
	cents, ok, err := f.integer("cents", 1, 100_000_000)
	if err != nil {
		return err
	}
	if !ok {
		return errValidation("cents is required")
	}
	key, _, err := f.str("key")
	if err != nil {
		return err
	}
	u, err := s.store.UserByEmail(c.UserContext(), email)
	if err != nil {
		return notFoundAs(err, "user")
	}
	if key == "" {
		key = db.NewID("dep_")
	}
	if err := s.store.Deposit(c.UserContext(), u.ID, int64(cents)*microPerCent, "deposit:"+key); err != nil {
		return err
	}
	b, err := s.store.Balance(c.UserContext(), u.ID)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"balance_cents": agent.MicroToCents(b.BalanceMicroCents), "currency": "usd"})
}

// observeRun returns the hook that logs a finished run (one line per run) and records metrics.
func (s *Server) observeRun(e *db.Endpoint) func(*db.Run, agent.Outcome) {
	slug, provider := e.Slug, e.LLMProvider
	return func(r *db.Run, o agent.Outcome) {
		s.log.Info("run", "run_id", r.ID, "endpoint", slug, "provider", provider, "status", r.Status,
			"tokens_input", r.TokensInput, "tokens_output", r.TokensOutput, "cost_micro_cents", r.CostMicroCents,
			"latency_ms", r.LatencyMs, "ttft_ms", r.TTFTMs, "iterations", r.Iterations, "tool_calls", len(o.ToolCalls),
			"error", r.ErrorCode)
		s.metrics.observeRun(slug, provider, r, o)
	}
}
