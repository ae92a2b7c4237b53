package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/agentgate/agentgate/agent"
	"github.com/agentgate/agentgate/db"
)

// microPerCent converts cents to the ledger's micro-cents.
const microPerCent = 1_000_000

// billing prepares a run's charge (SPEC §7). In prepaid mode it holds the expected maximum now
// (INSUFFICIENT_FUNDS if it cannot); it returns the function that settles the run once it has
// finished: the price and, unless the endpoint brings its own key, the token cost — once per
// successful run, idempotent by run id. A failed run releases its hold and is not charged.
// It returns nil when nothing can be charged or held (no price, and no token cost: an unpriced
// model or the endpoint's own key): the run then has nothing to settle.
// cost is the endpoint's token cost (the run spec's, from tokenCost).
func (s *Server) billing(ctx context.Context, e *db.Endpoint, rec *db.Run, cost func(in, out int64) int64, byok, test bool) (func(context.Context, agent.Outcome) int64, error) {
	price := int64(e.PricePerRunCents) * microPerCent
	if test {
		price = 0 // the owner testing their own endpoint does not pay its price
	}
	prepaid := s.cfg.BillingMode == "prepaid"
	var hold int64
	if prepaid {
		hold = price
		if !byok {
			// The model's max-tokens cost: max_tokens priced as input and as output.
			hold += cost(int64(e.MaxTokens), int64(e.MaxTokens))
		}
		if hold > 0 {
			if err := s.store.Hold(ctx, e.OwnerID, rec.ID, hold); err != nil {
				return nil, err
			}
		}
	}
	if price == 0 && hold == 0 && (byok || cost(1<<20, 1<<20) == 0) {
		return nil, nil // nothing to charge whatever the outcome: no settlement
	}
	owner, runID := e.OwnerID, rec.ID
	return func(ctx context.Context, o agent.Outcome) int64 {
		if o.Status != agent.StatusSuccess {
			if hold > 0 {
				if err := retryMoney(ctx, func() error { return s.store.Release(ctx, owner, runID) }); err != nil {
					s.log.Error("release hold", slog.String("run_id", runID), slog.Any("err", err))
				}
			}
			return 0
		}
		charge := price
		if !byok {
			charge += o.CostMicroCents
		}
		if charge == 0 && hold == 0 {
			return 0
		}
		if prepaid {
			// Never below zero: at most the hold plus what the wallet still has, decided under
			// the wallet's lock so concurrent runs cannot overdraw it together.
			var charged int64
			err := retryMoney(ctx, func() (err error) {
				charged, err = s.store.SettleCapped(ctx, owner, runID, charge)
				return err
			})
			if err != nil {
				s.log.Error("settle run", slog.String("run_id", runID), slog.Int64("micro_cents", charge), slog.Any("err", err))
				return 0
			}
			if charged < charge {
				s.log.Warn("prepaid run cost more than its hold and the balance: charge capped", slog.String("run_id", runID),
					slog.String("owner", owner), slog.Int64("cost_micro_cents", charge), slog.Int64("charged_micro_cents", charged))
			}
			return charged
		}
		if err := retryMoney(ctx, func() error { return s.store.Settle(ctx, owner, runID, charge) }); err != nil {
			s.log.Error("settle run", slog.String("run_id", runID), slog.Int64("micro_cents", charge), slog.Any("err", err))
			return 0
		}
		return charge
	}, nil
}

// retryMoney runs an idempotent wallet write, retrying a failure twice (the write is keyed by
// run id, so a retry whose first attempt did commit changes nothing). It gives up when ctx ends.
func retryMoney(ctx context.Context, write func() error) error {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := write()
		if err == nil || attempt == 3 {
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		backoff *= 4
	}
}
