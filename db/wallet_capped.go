package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// SettleCapped is Settle for a prepaid run, whose wallet must never go below zero: in one
// transaction it releases the run's hold and charges chargeMicroCents, but at most what the
// wallet then holds (the released hold plus the balance), and returns the amount charged.
// The cap is taken under the wallet lock, so concurrent settlements cannot together overdraw
// it. Idempotent: a retried call charges nothing more and returns the amount first charged.
func (s *Store) SettleCapped(ctx context.Context, userID, runID string, chargeMicroCents int64) (int64, error) {
	if chargeMicroCents < 0 {
		return 0, fmt.Errorf("db: settle: negative charge %d", chargeMicroCents)
	}
	if runID == "" {
		return 0, errors.New("db: settle: empty run id")
	}
	var charged int64
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		bal, err := s.lockWallet(ctx, tx, userID)
		if err != nil {
			return err
		}
		if amt, done, err := ledgerAmount(ctx, tx, userID, "charge:"+runID); err != nil {
			return err
		} else if done {
			charged = -amt // already settled (the hold was released in that transaction)
			return nil
		}
		delta, err := releaseHold(ctx, tx, userID, runID)
		if err != nil {
			return err
		}
		charged = min(chargeMicroCents, max(bal+delta, 0))
		if _, err := addLedger(ctx, tx, userID, LedgerCharge, -charged, runID, "charge:"+runID); err != nil {
			return err
		}
		return bumpWallet(ctx, tx, userID, delta-charged, 0, charged)
	})
	if err != nil {
		return 0, fmt.Errorf("db: settle: %w", err)
	}
	return charged, nil
}
