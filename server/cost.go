package server

import (
	"log/slog"

	"github.com/agentgate/agentgate/db"
)

// tokenCost returns the function that prices one of the endpoint's model calls in
// micro-cents, from the usage the provider reported (SPEC §7). The offline demo model is free
// whatever model name the endpoint carries. A model missing from the price table costs 0, and
// the log says so (once per model and instance, so a busy endpoint does not flood it).
func (s *Server) tokenCost(e *db.Endpoint) func(in, out int64) int64 {
	if e.LLMProvider == "demo" {
		return func(int64, int64) int64 { return 0 }
	}
	prices, model := s.cfg.Prices, e.LLMModel
	if _, known := prices.Lookup(model); !known {
		if _, seen := s.unpriced.LoadOrStore(model, true); !seen {
			s.log.Warn("model has no price in the price table: its token cost is 0",
				slog.String("model", model), slog.String("provider", e.LLMProvider), slog.String("endpoint", e.Slug))
		}
		return func(int64, int64) int64 { return 0 }
	}
	return func(in, out int64) int64 {
		c, _ := prices.CostMicroCents(model, in, out)
		return c
	}
}
