package db_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/agentgate/agentgate/db"
	"github.com/agentgate/agentgate/db/dbtest"
)

const cent = 1_000_000 // micro-cents

// checkLedger asserts that Balance equals the sums of the ledger, read with
// raw SQL, and returns the balance.
func checkLedger(tb testing.TB, s *db.Store, userID string) db.Balance {
	tb.Helper()
	b, err := s.Balance(ctxOf(tb), userID)
	must(tb, err, "Balance")
	sum := rawInt(tb, s, `SELECT COALESCE(SUM(amount_micro_cents), 0) FROM ledger WHERE user_id = ?`, userID)
	dep := rawInt(tb, s, `SELECT COALESCE(SUM(amount_micro_cents), 0) FROM ledger WHERE user_id = ? AND kind = 'deposit'`, userID)
	chg := rawInt(tb, s, `SELECT COALESCE(SUM(amount_micro_cents), 0) FROM ledger WHERE user_id = ? AND kind = 'charge'`, userID)
	if b.BalanceMicroCents != sum || b.DepositedMicroCents != dep || b.SpentMicroCents != -chg {
		tb.Fatalf("Balance %+v disagrees with ledger: sum %d, deposits %d, charges %d", b, sum, dep, chg)
	}
	return b
}

func ledgerRows(tb testing.TB, s *db.Store, userID string) int64 {
	tb.Helper()
	return rawInt(tb, s, `SELECT COUNT(*) FROM ledger WHERE user_id = ?`, userID)
}

func TestWalletDepositAndPostpaid(t *testing.T) {
	eachKind(t, func(t *testing.T, s *db.Store) {
		ctx := ctxOf(t)
		u := mustUser(t, s, "w@example.com")
		if b := checkLedger(t, s, u.ID); b != (db.Balance{}) {
			t.Fatalf("new wallet = %+v", b)
		}
		must(t, s.Deposit(ctx, u.ID, 10*cent, "dep-1"), "Deposit")
		must(t, s.Deposit(ctx, u.ID, 10*cent, "dep-1"), "Deposit retry")
		if n := ledgerRows(t, s, u.ID); n != 1 {
			t.Fatalf("same deposit key twice gave %d rows", n)
		}
		must(t, s.Deposit(ctx, u.ID, 5*cent, "dep-2"), "Deposit 2")
		if b := checkLedger(t, s, u.ID); b.BalanceMicroCents != 15*cent || b.DepositedMicroCents != 15*cent {
			t.Fatalf("after deposits = %+v", b)
		}
		for _, bad := range []struct {
			amt int64
			key string
		}{{0, "k"}, {-1, "k"}, {1, ""}} {
			if err := s.Deposit(ctx, u.ID, bad.amt, bad.key); err == nil {
				t.Fatalf("Deposit(%d, %q) accepted", bad.amt, bad.key)
			}
		}
		if err := s.Deposit(ctx, "usr_nobody", cent, "dep-x"); !errors.Is(err, db.ErrNotFound) {
			t.Fatalf("Deposit to unknown user = %v, want ErrNotFound", err)
		}

		// Postpaid: no hold, settle may go negative; settling twice charges once.
		must(t, s.Settle(ctx, u.ID, "run_1", 20*cent), "Settle")
		must(t, s.Settle(ctx, u.ID, "run_1", 20*cent), "Settle retry")
		b := checkLedger(t, s, u.ID)
		if b.BalanceMicroCents != -5*cent || b.SpentMicroCents != 20*cent {
			t.Fatalf("after postpaid settle = %+v, want balance -5c, spent 20c", b)
		}
		if n := ledgerRows(t, s, u.ID); n != 3 {
			t.Fatalf("ledger rows = %d, want 3 (2 deposits, 1 charge)", n)
		}
		must(t, s.Release(ctx, u.ID, "run_1"), "Release without hold")
		checkLedger(t, s, u.ID)

		entries, err := s.Ledger(ctx, u.ID, 0)
		must(t, err, "Ledger")
		if len(entries) != 3 || entries[0].Kind != db.LedgerCharge || entries[0].Key != "charge:run_1" ||
			entries[0].AmountMicroCents != -20*cent || entries[0].RunID != "run_1" || entries[2].Key != "dep-1" {
			t.Fatalf("Ledger = %+v", entries)
		}
		two, err := s.Ledger(ctx, u.ID, 2)
		must(t, err, "Ledger(2)")
		if len(two) != 2 || two[0].ID != entries[0].ID {
			t.Fatalf("Ledger(2) = %+v", two)
		}
	})
}

func TestWalletHoldSettleRelease(t *testing.T) {
	eachKind(t, func(t *testing.T, s *db.Store) {
		ctx := ctxOf(t)
		u := mustUser(t, s, "h@example.com")
		must(t, s.Deposit(ctx, u.ID, 10*cent, "dep"), "Deposit")

		if err := s.Hold(ctx, u.ID, "run_big", 11*cent); !errors.Is(err, db.ErrInsufficientFunds) {
			t.Fatalf("Hold over balance = %v, want ErrInsufficientFunds", err)
		}
		must(t, s.Hold(ctx, u.ID, "run_a", 6*cent), "Hold a")
		// A retried hold succeeds without holding twice, even though the
		// remaining 4c would not cover it again.
		must(t, s.Hold(ctx, u.ID, "run_a", 6*cent), "Hold a retry")
		if b := checkLedger(t, s, u.ID); b.BalanceMicroCents != 4*cent {
			t.Fatalf("after hold = %+v", b)
		}
		if err := s.Hold(ctx, u.ID, "run_b", 5*cent); !errors.Is(err, db.ErrInsufficientFunds) {
			t.Fatalf("second hold = %v, want ErrInsufficientFunds", err)
		}
		must(t, s.Hold(ctx, u.ID, "run_b", 4*cent), "Hold b (exact)")
		checkLedger(t, s, u.ID)

		// Settle a for less than held: release 6c, charge 2c.
		must(t, s.Settle(ctx, u.ID, "run_a", 2*cent), "Settle a")
		must(t, s.Settle(ctx, u.ID, "run_a", 2*cent), "Settle a retry")
		if b := checkLedger(t, s, u.ID); b.BalanceMicroCents != 4*cent || b.SpentMicroCents != 2*cent {
			t.Fatalf("after settle = %+v, want 4c left, 2c spent", b)
		}
		// Release b (failed run) twice: one release row.
		must(t, s.Release(ctx, u.ID, "run_b"), "Release b")
		must(t, s.Release(ctx, u.ID, "run_b"), "Release b retry")
		if b := checkLedger(t, s, u.ID); b.BalanceMicroCents != 8*cent {
			t.Fatalf("after release = %+v, want 8c", b)
		}
		// Settling after a release charges but does not release again.
		must(t, s.Settle(ctx, u.ID, "run_b", cent), "Settle b after release")
		if b := checkLedger(t, s, u.ID); b.BalanceMicroCents != 7*cent || b.SpentMicroCents != 3*cent {
			t.Fatalf("after settle b = %+v, want 7c, 3c spent", b)
		}
		kinds := map[string]int{}
		entries, err := s.Ledger(ctx, u.ID, 100)
		must(t, err, "Ledger")
		for _, e := range entries {
			kinds[e.Kind]++
		}
		if fmt.Sprint(kinds) != "map[charge:2 deposit:1 hold:2 release:2]" {
			t.Fatalf("ledger kinds = %v", kinds)
		}
		for _, err := range []error{s.Hold(ctx, u.ID, "r", -1), s.Settle(ctx, u.ID, "r", -1), s.Hold(ctx, u.ID, "", 1)} {
			if err == nil {
				t.Fatal("bad hold/settle input accepted")
			}
		}
	})
}

// 200 concurrent holds on a balance that covers exactly 100: exactly 100
// succeed and the balance never goes below zero; settling each for less
// keeps balance == SUM(ledger).
func TestWalletConcurrentHolds(t *testing.T) {
	for _, kind := range dbtest.Kinds(t) {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			s := dbtest.OpenWith(t, kind, db.Options{MaxOpenConns: 16})
			ctx := ctxOf(t)
			u := mustUser(t, s, "c@example.com")
			const hold, n = 3 * cent, 200
			must(t, s.Deposit(ctx, u.ID, 100*hold, "dep"), "Deposit")

			errs := make([]error, n)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range n {
				wg.Go(func() {
					<-start
					errs[i] = s.Hold(ctx, u.ID, fmt.Sprintf("run_%03d", i), hold)
				})
			}
			close(start)
			wg.Wait()
			var held []string
			for i, err := range errs {
				switch {
				case err == nil:
					held = append(held, fmt.Sprintf("run_%03d", i))
				case !errors.Is(err, db.ErrInsufficientFunds):
					t.Fatalf("Hold #%d: %v", i, err)
				}
			}
			if len(held) != 100 {
				t.Fatalf("%d holds succeeded, want exactly 100", len(held))
			}
			if b := checkLedger(t, s, u.ID); b.BalanceMicroCents != 0 {
				t.Fatalf("balance after holds = %d, want 0", b.BalanceMicroCents)
			}

			// Settle every held run for 1c, concurrently, some twice.
			for i, run := range held {
				wg.Go(func() {
					if err := s.Settle(ctx, u.ID, run, cent); err != nil {
						t.Errorf("Settle %s: %v", run, err)
					}
				})
				if i%10 == 0 {
					wg.Go(func() {
						if err := s.Settle(ctx, u.ID, run, cent); err != nil {
							t.Errorf("Settle retry %s: %v", run, err)
						}
					})
				}
			}
			wg.Wait()
			b := checkLedger(t, s, u.ID)
			if want := int64(100 * (hold - cent)); b.BalanceMicroCents != want || b.SpentMicroCents != 100*cent {
				t.Fatalf("after settles = %+v, want balance %d, spent %d", b, want, 100*cent)
			}
			if rows := ledgerRows(t, s, u.ID); rows != 1+3*100 {
				t.Fatalf("ledger rows = %d, want 301", rows)
			}
		})
	}
}
