package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentgate/agentgate/db/dbtest"
)

// noEnv is an empty environment, so the developer's own variables do not leak into a test.
func noEnv(string) string { return "" }

// runCLI runs one agentgate command line and returns its output.
func runCLI(tb testing.TB, args ...string) (string, error) {
	tb.Helper()
	var out, errOut bytes.Buffer
	err := Run(context.Background(), args, noEnv, &out, &errOut)
	return out.String(), err
}

// TestWalletDepositCLI: `agentgate wallet deposit` credits a user's wallet, once per key, on
// SQLite and PostgreSQL.
func TestWalletDepositCLI(t *testing.T) {
	t.Parallel()
	for _, kind := range dbtest.Kinds(t) {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			storage := []string{"--data", t.TempDir()}
			if kind == dbtest.Postgres {
				url, drop := dbtest.Schema(t)
				t.Cleanup(drop)
				storage = append(storage, "--database-url", url)
			}
			cli := func(args ...string) (string, error) { return runCLI(t, append(args, storage...)...) }
			if out, err := cli("user", "create", "--email", "payer@example.com", "--password", "correct horse"); err != nil {
				t.Fatalf("user create: %v %s", err, out)
			}
			cases := []struct {
				name    string
				args    []string
				wantErr string // substring of the error; "" = success
				balance string // in the output on success
			}{
				{"deposit with a key", []string{"--email", "payer@example.com", "--cents", "250", "--key", "inv-1"}, "", "balance 250.0000 cents"},
				{"same key: not repeated", []string{"--email", "payer@example.com", "--cents", "250", "--key", "inv-1"}, "", "balance 250.0000 cents"},
				{"email is case-insensitive", []string{"--email", "PAYER@example.com", "--cents", "50", "--key", "inv-2"}, "", "balance 300.0000 cents"},
				{"no key: a new deposit each time", []string{"--email", "payer@example.com", "--cents", "1"}, "", "balance 301.0000 cents"},
				{"unknown user", []string{"--email", "nobody@example.com", "--cents", "5"}, "no user nobody@example.com", ""},
				{"zero cents", []string{"--email", "payer@example.com", "--cents", "0"}, "--cents > 0", ""},
				{"negative cents", []string{"--email", "payer@example.com", "--cents", "-5"}, "--cents > 0", ""},
				{"no email", []string{"--cents", "5"}, "--email", ""},
			}
			for _, tt := range cases { // in order: each builds on the balance before
				out, err := cli(append([]string{"wallet", "deposit"}, tt.args...)...)
				if tt.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
						t.Fatalf("%s: err %v, want %q", tt.name, err, tt.wantErr)
					}
					continue
				}
				if err != nil || !strings.Contains(out, tt.balance) {
					t.Fatalf("%s: %v %q, want %q", tt.name, err, out, tt.balance)
				}
			}
			if _, err := cli("wallet", "withdraw", "--email", "payer@example.com"); err == nil {
				t.Fatal("wallet withdraw accepted")
			}
			// The store agrees, and its ledger sums to the balance.
			cfg := DefaultConfig()
			if _, err := cfg.parse("check", storage, noEnv, true, nil); err != nil {
				t.Fatal(err)
			}
			store, err := openStore(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			u, err := store.UserByEmail(context.Background(), "payer@example.com")
			if err != nil {
				t.Fatal(err)
			}
			b, err := store.Balance(context.Background(), u.ID)
			if err != nil {
				t.Fatal(err)
			}
			var sum int64
			if err := store.DB().QueryRow(store.Rebind(`SELECT SUM(amount_micro_cents) FROM ledger WHERE user_id = ?`), u.ID).Scan(&sum); err != nil {
				t.Fatal(err)
			}
			if b.BalanceMicroCents != 301_000_000 || b.DepositedMicroCents != 301_000_000 || sum != b.BalanceMicroCents {
				t.Fatalf("balance %+v, ledger sum %d; want 301¢", b, sum)
			}
		})
	}
}

// TestConfigPrices_FromFile: prices in the operator's --config file override the defaults and
// add models, and the rest of the default table stays. (That the server's price table reaches
// a run's cost_cents is server's TestBilling_Runs.)
func TestConfigPrices_FromFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "agentgate.json")
	conf := `{"prices": {
		"gpt-4o-mini": {"input_per_mtok": 1, "output_per_mtok": 4},
		"house-model": {"input_per_mtok": 0.5, "output_per_mtok": 1.5}
	}}`
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	if _, err := cfg.parse("serve", []string{"--config", path}, noEnv, false, nil); err != nil {
		t.Fatal(err)
	}
	sc, err := cfg.serverConfig(noEnv, []byte("test-secret-test-secret-test-secret"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		model string
		cost  int64 // micro-cents for 1M input and 1M output tokens
		known bool
	}{
		{"gpt-4o-mini", 500_000_000, true},            // overridden: $1 + $4 (the default would be 75¢)
		{"gpt-4o-mini-2024-07-18", 500_000_000, true}, // the override prices the family too
		{"house-model", 200_000_000, true},            // added: $0.50 + $1.50
		{"gpt-4.1-nano", 50_000_000, true},            // default kept: $0.10 + $0.40
		{"mystery-model", 0, false},                   // unknown: free
	}
	for _, tt := range cases {
		if got, known := sc.Prices.CostMicroCents(tt.model, 1_000_000, 1_000_000); got != tt.cost || known != tt.known {
			t.Errorf("%s: %d (known %v), want %d (%v)", tt.model, got, known, tt.cost, tt.known)
		}
	}
	// A malformed prices entry is refused at start, not ignored.
	if err := os.WriteFile(path, []byte(`{"prices": {"m": {"input": 1}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.serverConfig(noEnv, []byte("test-secret-test-secret-test-secret")); err == nil {
		t.Fatal("a prices entry with an unknown field was accepted")
	}
}
