package db_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/agentgate/agentgate/db"
)

// TestSettleCapped: a prepaid settlement charges the real amount when the wallet can pay it,
// at most the released hold plus the balance when it cannot, and once per run.
func TestSettleCapped(t *testing.T) {
	eachKind(t, func(t *testing.T, s *db.Store) {
		ctx := ctxOf(t)
		u := mustUser(t, s, "capped@example.com")
		must(t, s.Deposit(ctx, u.ID, 10*cent, "dep"), "Deposit")
		must(t, s.Hold(ctx, u.ID, "run_a", 2*cent), "Hold a")
		cases := []struct {
			run           string
			charge, want  int64
			balanceAfter  int64
			ledgerRowsNow int64
		}{
			{"run_a", 3 * cent, 3 * cent, 7 * cent, 4}, // above its hold, within the balance
			{"run_a", 5 * cent, 3 * cent, 7 * cent, 4}, // retried: the first amount, nothing more
			{"run_b", 9 * cent, 7 * cent, 0, 5},        // no hold, more than the wallet: all of it, not below 0
			{"run_c", 1 * cent, 0, 0, 6},               // empty wallet: a zero charge row
		}
		for _, tt := range cases {
			got, err := s.SettleCapped(ctx, u.ID, tt.run, tt.charge)
			must(t, err, "SettleCapped %s", tt.run)
			b := checkLedger(t, s, u.ID)
			if got != tt.want || b.BalanceMicroCents != tt.balanceAfter || ledgerRows(t, s, u.ID) != tt.ledgerRowsNow {
				t.Fatalf("%s: charged %d, balance %+v, %d rows; want %d, %d, %d", tt.run, got, b, ledgerRows(t, s, u.ID),
					tt.want, tt.balanceAfter, tt.ledgerRowsNow)
			}
		}
		if _, err := s.SettleCapped(ctx, u.ID, "run_d", -1); err == nil {
			t.Fatal("negative charge accepted")
		}
		if _, err := s.SettleCapped(ctx, u.ID, "", 1); err == nil {
			t.Fatal("empty run id accepted")
		}
	})
}

// TestSettleCapped_ConcurrentOverspend: prepaid runs that each cost more than their hold,
// settled at once, never take the wallet below zero together.
func TestSettleCapped_ConcurrentOverspend(t *testing.T) {
	eachKind(t, func(t *testing.T, s *db.Store) {
		ctx := ctxOf(t)
		u := mustUser(t, s, "overspend@example.com")
		must(t, s.Deposit(ctx, u.ID, 100*cent, "dep"), "Deposit")
		const n = 20
		for i := range n {
			must(t, s.Hold(ctx, u.ID, fmt.Sprint("run_", i), 2*cent), "Hold")
		}
		// 60¢ left beside the 40¢ held; each run wants 10¢: 100¢ can be paid, 200¢ are asked.
		var wg sync.WaitGroup
		charged := make([]int64, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() { charged[i], errs[i] = s.SettleCapped(ctx, u.ID, fmt.Sprint("run_", i), 10*cent) })
		}
		wg.Wait()
		var total int64
		for i := range n {
			must(t, errs[i], "SettleCapped %d", i)
			total += charged[i]
		}
		b := checkLedger(t, s, u.ID)
		if total != 100*cent || b.BalanceMicroCents != 0 || b.SpentMicroCents != 100*cent {
			t.Fatalf("charged %d in all, balance %+v; want 100¢ charged and 0 left", total, b)
		}
	})
}
