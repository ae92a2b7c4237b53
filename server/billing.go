package server

import (
	"context"
	"log/slog"

	"github.com/agentgate/agentgate/agent"
	"github.com/agentgate/agentgate/db"
)

// microPerCent converts cents to the ledger's micro-cents.
const microPerCent = 1_000_000

// billing prepares a run's charge (SPEC §7). In prepaid mode it holds the expected maximum now
// (INSUFFICIENT_FUNDS if it cannot); it returns the function that settles the run once it has
// finished: the price and, unless the endpoint brings its own key, the token cost — once per
// successful run, idempotent by run id. A failed run releases its hold and is not charged.
func (s *Server) billing(ctx context.Context, e *db.Endpoint, rec *db.Run, byok, test bool) (func(context.Context, agent.Outcome) int64, error) {
	price := int64(e.PricePerRunCents) * microPerCent
	if test {
		price = 0 // the owner testing their own endpoint does not pay its price
	}
	prepaid := s.cfg.BillingMode == "prepaid"
	var hold int64
	if prepaid {
		hold = price
		if !byok {
			maxCost, _ := s.cfg.Prices.CostMicroCents(e.LLMModel, int64(e.MaxTokens), int64(e.MaxTokens))
			hold += maxCost
		}
		if hold > 0 {
			if err := s.store.Hold(ctx, e.OwnerID, rec.ID, hold); err != nil {
				return nil, err
			}
		}
	}
	owner, runID := e.OwnerID, rec.ID
	return func(ctx context.Context, o agent.Outcome) int64 {
		if o.Status != agent.StatusSuccess {
			if hold > 0 {
				if err := s.store.Release(ctx, owner, runID); err != nil {
					s.log.Error("release hold", slog.String("run_id", runID), slog.Any("err", err))
				}
			}
			return 0
		}
		charge := price
		if !byok {
			charge += o.CostMicroCents
		}
		if prepaid && charge > hold {
			// Never below zero: the hold is the most a prepaid run can cost beyond what the
			// wallet still has; the ledger refuses the rest.
			charge = s.cappedCharge(ctx, owner, hold, charge)
		}
		if charge == 0 && hold == 0 {
			return 0
		}
		if err := s.store.Settle(ctx, owner, runID, charge); err != nil {
			s.log.Error("settle run", slog.String("run_id", runID), slog.Int64("micro_cents", charge), slog.Any("err", err))
			return 0
		}
		return charge
	}, nil
}

// cappedCharge limits a prepaid charge to the hold plus the current balance.
func (s *Server) cappedCharge(ctx context.Context, owner string, hold, charge int64) int64 {
	b, err := s.store.Balance(ctx, owner)
	if err != nil {
		return hold
	}
	if max := hold + b.BalanceMicroCents; charge > max {
		s.log.Warn("prepaid run cost more than its hold and the balance", slog.String("owner", owner),
			slog.Int64("charge", charge), slog.Int64("max", max))
		if max < 0 {
			return 0
		}
		return max
	}
	return charge
}
