package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentgate/agentgate/agent/llmtest"
	"github.com/agentgate/agentgate/db"
	"github.com/agentgate/agentgate/db/dbtest"
	"github.com/agentgate/agentgate/server"
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

// TestConfigPrices_ReachRunCost: prices in the operator's --config file override the defaults
// and add models, and a run's cost_cents comes from them.
func TestConfigPrices_ReachRunCost(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "agentgate.json")
	conf := `{"prices": {
		"gpt-4o-mini": {"input_per_mtok": 1, "output_per_mtok": 4},
		"house-model": {"input_per_mtok": 0.5, "output_per_mtok": 1.5}
	}}`
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	llm := llmtest.New(t)
	env := map[string]string{"OPENAI_BASE_URL": llm.URL(), "OPENAI_API_KEY": "sk-test"}
	cfg := DefaultConfig()
	if _, err := cfg.parse("serve", []string{"--config", path}, func(k string) string { return env[k] }, false, nil); err != nil {
		t.Fatal(err)
	}
	sc, err := cfg.serverConfig(func(k string) string { return env[k] }, []byte("test-secret-test-secret-test-secret"))
	if err != nil {
		t.Fatal(err)
	}
	if p := sc.Prices["gpt-4o"]; p.InputPerMTok != 2.50 { // the defaults the file does not name stay
		t.Fatalf("gpt-4o price %+v", p)
	}
	store := dbtest.Open(t, dbtest.SQLite)
	srv, err := server.New(sc, store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-served
	})
	base := "http://" + ln.Addr().String()
	u := &db.User{Email: "prices@example.com", PasswordHash: "-"}
	if err := store.CreateUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	tok, err := server.IssueToken(sc.JWTSecret, u.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	post := func(path, auth string, body any, out any) int {
		t.Helper()
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", base+path, bytes.NewReader(raw))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+auth)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		got, _ := io.ReadAll(res.Body)
		if err := json.Unmarshal(got, out); err != nil {
			t.Fatalf("%s: %s", path, got)
		}
		return res.StatusCode
	}
	cases := []struct {
		model string
		cost  float64 // cents for 1M input and 1M output tokens
	}{
		{"gpt-4o-mini", 500}, // overridden: $1 + $4 (the default would be 75¢)
		{"house-model", 200}, // added: $0.50 + $1.50
		{"gpt-4.1-nano", 50}, // default kept: $0.10 + $0.40
		{"mystery-model", 0}, // unknown: free
	}
	for _, tt := range cases {
		var created struct {
			Endpoint struct {
				Slug string `json:"slug"`
			} `json:"endpoint"`
			APIKey string `json:"api_key"`
		}
		if st := post("/api/agent-endpoints", tok, map[string]any{"name": tt.model, "system_prompt": "Answer.", "llm_model": tt.model}, &created); st != 201 {
			t.Fatalf("create %s: %d", tt.model, st)
		}
		llm.Script(llmtest.Reply{Text: "ok", Usage: &llmtest.Usage{Prompt: 1_000_000, Completion: 1_000_000}})
		var ans struct {
			Usage struct {
				Cost float64 `json:"cost_cents"`
			} `json:"usage"`
		}
		if st := post("/api/run/"+created.Endpoint.Slug, created.APIKey, map[string]string{"input": "hi"}, &ans); st != 200 {
			t.Fatalf("run %s: %d", tt.model, st)
		}
		if ans.Usage.Cost != tt.cost {
			t.Fatalf("%s: cost_cents %v, want %v", tt.model, ans.Usage.Cost, tt.cost)
		}
	}
}
