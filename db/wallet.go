package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// Ledger entry kinds.
const (
	// LedgerDeposit credits the wallet (positive).
	LedgerDeposit = "deposit"
	// LedgerCharge debits a run's price (negative), key "charge:"+runID.
	LedgerCharge = "charge"
	// LedgerHold reserves a prepaid run's maximum (negative), key "hold:"+runID.
	LedgerHold = "hold"
	// LedgerRelease gives a hold back (positive), key "release:"+runID.
	LedgerRelease = "release"
)

// Balance is a wallet's state. It always equals the sums of the ledger:
// BalanceMicroCents = sum of all entries, DepositedMicroCents = sum of
// deposits, SpentMicroCents = −sum of charges.
type Balance struct {
	BalanceMicroCents, DepositedMicroCents, SpentMicroCents int64
}

// LedgerEntry is one row of the append-only money ledger.
type LedgerEntry struct {
	ID int64
	// UserID owns the wallet; Kind is deposit|charge|hold|release.
	UserID, Kind string
	// AmountMicroCents is signed: deposits and releases are positive,
	// charges and holds negative.
	AmountMicroCents int64
	RunID            string
	// Key is unique across the ledger and makes every write idempotent.
	Key       string
	CreatedAt time.Time
}

// lockWallet locks the user's wallet row for the rest of tx (creating it if
// needed) and returns the balance. On PostgreSQL the row lock serialises
// money transactions per user; on SQLite the write transaction already
// serialises every writer.
func (s *Store) lockWallet(ctx context.Context, tx *sqlx.Tx, userID string) (int64, error) {
	q := `SELECT balance_micro_cents FROM wallets WHERE user_id = ?`
	if s.dialect == DialectPostgres {
		q += ` FOR UPDATE`
	}
	q = tx.Rebind(q)
	var bal int64
	err := tx.QueryRowContext(ctx, q, userID).Scan(&bal)
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO wallets (user_id, balance_micro_cents, deposited_micro_cents,
			spent_micro_cents, updated_at) VALUES (?, 0, 0, 0, ?) ON CONFLICT (user_id) DO NOTHING`), userID, micros(now())); err != nil {
			return 0, mapErr(err, "create wallet")
		}
		err = tx.QueryRowContext(ctx, q, userID).Scan(&bal)
	}
	if err != nil {
		return 0, fmt.Errorf("lock wallet: %w", err)
	}
	return bal, nil
}

// addLedger inserts an entry unless its key exists; it reports whether it did.
func addLedger(ctx context.Context, tx *sqlx.Tx, userID, kind string, amount int64, runID, key string) (bool, error) {
	res, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO ledger (user_id, kind, amount_micro_cents, run_id, key, created_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING`), userID, kind, amount, runID, key, micros(now()))
	if err != nil {
		return false, mapErr(err, "insert ledger "+kind)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("insert ledger %s: %w", kind, err)
	}
	return n == 1, nil
}

// bumpWallet applies deltas to the cached sums, in the same transaction as
// the ledger rows they mirror.
func bumpWallet(ctx context.Context, tx *sqlx.Tx, userID string, balance, deposited, spent int64) error {
	if balance == 0 && deposited == 0 && spent == 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE wallets SET balance_micro_cents = balance_micro_cents + ?,
		deposited_micro_cents = deposited_micro_cents + ?, spent_micro_cents = spent_micro_cents + ?, updated_at = ?
		WHERE user_id = ?`), balance, deposited, spent, micros(now()), userID)
	if err != nil {
		return fmt.Errorf("update wallet: %w", err)
	}
	return nil
}

// ledgerAmount returns the amount of the user's entry with key, if any.
func ledgerAmount(ctx context.Context, tx *sqlx.Tx, userID, key string) (int64, bool, error) {
	var amt int64
	err := tx.QueryRowContext(ctx, tx.Rebind(`SELECT amount_micro_cents FROM ledger WHERE key = ? AND user_id = ?`), key, userID).Scan(&amt)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read ledger: %w", err)
	}
	return amt, true, nil
}

// Deposit credits microCents (> 0) to the user's wallet. key makes it
// idempotent: a second deposit with the same key changes nothing. An
// unknown user → ErrNotFound.
func (s *Store) Deposit(ctx context.Context, userID string, microCents int64, key string) error {
	if microCents <= 0 {
		return fmt.Errorf("db: deposit: amount must be positive, got %d", microCents)
	}
	if key == "" {
		return errors.New("db: deposit: empty idempotency key")
	}
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := s.lockWallet(ctx, tx, userID); err != nil {
			return err
		}
		ok, err := addLedger(ctx, tx, userID, LedgerDeposit, microCents, "", key)
		if err != nil || !ok {
			return err
		}
		return bumpWallet(ctx, tx, userID, microCents, microCents, 0)
	})
	if err != nil {
		return fmt.Errorf("db: deposit: %w", err)
	}
	return nil
}

// Balance returns the user's wallet sums (zeros for a user without one).
func (s *Store) Balance(ctx context.Context, userID string) (Balance, error) {
	var b Balance
	err := s.r.QueryRowContext(ctx, s.r.Rebind(`SELECT balance_micro_cents, deposited_micro_cents, spent_micro_cents
		FROM wallets WHERE user_id = ?`), userID).Scan(&b.BalanceMicroCents, &b.DepositedMicroCents, &b.SpentMicroCents)
	if errors.Is(err, sql.ErrNoRows) {
		return Balance{}, nil
	}
	if err != nil {
		return Balance{}, fmt.Errorf("db: balance: %w", err)
	}
	return b, nil
}

// Hold reserves microCents (≥ 0) for a run before it starts (prepaid
// billing): in one transaction, if the balance covers it, a hold entry
// (−microCents, key "hold:"+runID) is added, else ErrInsufficientFunds.
// Holding the same run again changes nothing and succeeds. Concurrent holds
// never take the balance below zero.
func (s *Store) Hold(ctx context.Context, userID, runID string, microCents int64) error {
	if microCents < 0 {
		return fmt.Errorf("db: hold: negative amount %d", microCents)
	}
	if runID == "" {
		return errors.New("db: hold: empty run id")
	}
	key := "hold:" + runID
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		bal, err := s.lockWallet(ctx, tx, userID)
		if err != nil {
			return err
		}
		// Idempotency before the funds check: a retried hold that already
		// went through must not now fail for lack of funds.
		if _, held, err := ledgerAmount(ctx, tx, userID, key); err != nil || held {
			return err
		}
		if bal < microCents {
			return ErrInsufficientFunds
		}
		ok, err := addLedger(ctx, tx, userID, LedgerHold, -microCents, runID, key)
		if err != nil || !ok {
			return err
		}
		return bumpWallet(ctx, tx, userID, -microCents, 0, 0)
	})
	if errors.Is(err, ErrInsufficientFunds) {
		return ErrInsufficientFunds
	}
	if err != nil {
		return fmt.Errorf("db: hold: %w", err)
	}
	return nil
}

// releaseHold adds the release entry for the run's hold, if there is a hold
// and it is not released yet, and returns the amount credited back.
func releaseHold(ctx context.Context, tx *sqlx.Tx, userID, runID string) (int64, error) {
	amt, held, err := ledgerAmount(ctx, tx, userID, "hold:"+runID)
	if err != nil || !held {
		return 0, err
	}
	ok, err := addLedger(ctx, tx, userID, LedgerRelease, -amt, runID, "release:"+runID)
	if err != nil || !ok {
		return 0, err
	}
	return -amt, nil
}

// Settle finishes a run's billing in one transaction: it releases the run's
// hold, if any (+hold, key "release:"+runID), and charges chargeMicroCents
// (≥ 0; −charge, key "charge:"+runID). It is idempotent: a retried Settle
// charges once. Without a prior hold (postpaid) the balance may go negative.
func (s *Store) Settle(ctx context.Context, userID, runID string, chargeMicroCents int64) error {
	if chargeMicroCents < 0 {
		return fmt.Errorf("db: settle: negative charge %d", chargeMicroCents)
	}
	if runID == "" {
		return errors.New("db: settle: empty run id")
	}
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := s.lockWallet(ctx, tx, userID); err != nil {
			return err
		}
		delta, err := releaseHold(ctx, tx, userID, runID)
		if err != nil {
			return err
		}
		var spent int64
		ok, err := addLedger(ctx, tx, userID, LedgerCharge, -chargeMicroCents, runID, "charge:"+runID)
		if err != nil {
			return err
		}
		if ok {
			delta -= chargeMicroCents
			spent = chargeMicroCents
		}
		return bumpWallet(ctx, tx, userID, delta, 0, spent)
	})
	if err != nil {
		return fmt.Errorf("db: settle: %w", err)
	}
	return nil
}

// Release gives back a run's hold without charging (a failed run). It is
// idempotent and a no-op when the run has no hold.
func (s *Store) Release(ctx context.Context, userID, runID string) error {
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		if _, err := s.lockWallet(ctx, tx, userID); err != nil {
			return err
		}
		delta, err := releaseHold(ctx, tx, userID, runID)
		if err != nil {
			return err
		}
		return bumpWallet(ctx, tx, userID, delta, 0, 0)
	})
	if err != nil {
		return fmt.Errorf("db: release: %w", err)
	}
	return nil
}

// Ledger returns the user's latest entries, newest first; limit is clamped
// to 1..1000 and 0 means 50.
func (s *Store) Ledger(ctx context.Context, userID string, limit int) ([]LedgerEntry, error) {
	switch {
	case limit <= 0:
		limit = 50
	case limit > 1000:
		limit = 1000
	}
	rows, err := s.r.QueryContext(ctx, s.r.Rebind(`SELECT id, user_id, kind, amount_micro_cents, run_id, key, created_at
		FROM ledger WHERE user_id = ? ORDER BY id DESC LIMIT ?`), userID, limit)
	if err != nil {
		return nil, fmt.Errorf("db: ledger: %w", err)
	}
	defer rows.Close()
	out := []LedgerEntry{}
	for rows.Next() {
		var e LedgerEntry
		var created int64
		if err := rows.Scan(&e.ID, &e.UserID, &e.Kind, &e.AmountMicroCents, &e.RunID, &e.Key, &created); err != nil {
			return nil, fmt.Errorf("db: ledger: %w", err)
		}
		e.CreatedAt = fromMicros(created)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("db: ledger: %w", err)
	}
	return out, nil
}
