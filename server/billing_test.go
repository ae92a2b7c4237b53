package server

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/agentgate/agentgate/agent"
	"github.com/agentgate/agentgate/agent/llmtest"
	"github.com/agentgate/agentgate/db"
	"github.com/agentgate/agentgate/db/dbtest"
	"github.com/agentgate/agentgate/stream"
)

// uc (micro-cents per cent) converts cents to micro-cents in the tables below.
const uc = microPerCent

// runIDOf returns the run id of a run answer, success or error.
func runIDOf(tb testing.TB, r response) string {
	tb.Helper()
	var ans struct {
		RunID string `json:"run_id"`
		Error struct {
			RunID string `json:"run_id"`
		} `json:"error"`
	}
	r.json(tb, &ans)
	if ans.RunID != "" {
		return ans.RunID
	}
	return ans.Error.RunID
}

// TestBilling_ConcurrentRuns: 200 runs at once. Prepaid, on a wallet that can pay for exactly
// 100: exactly 100 succeed, 100 get 402, the balance ends at 0. Postpaid: all 200 succeed and
// the balance is −(200 × price). The balance equals the ledger's sum.
func TestBilling_ConcurrentRuns(t *testing.T) {
	t.Parallel()
	const runs, price = 200, 3
	forKinds(t, func(t *testing.T, kind string) {
		for _, mode := range []string{"prepaid", "postpaid"} {
			t.Run(mode, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, kind, func(c *Config) { c.BillingMode = mode })
				a := e.newAccount()
				// An unpriced model: only price_per_run_cents counts.
				ep := a.endpoint(map[string]any{"llm_model": "house-model", "price_per_run_cents": price, "rate_limit_per_minute": 100000})
				wantOK := runs
				if mode == "prepaid" {
					a.deposit(runs / 2 * price)
					wantOK = runs / 2
				}
				results := make([]response, runs)
				errs := make([]error, runs)
				start := make(chan struct{})
				var wg sync.WaitGroup
				for i := range runs {
					wg.Go(func() {
						<-start
						results[i], errs[i] = e.tryRun(ep, fmt.Sprintf(`{"input":"run %d"}`, i))
					})
				}
				close(start)
				wg.Wait()
				var ok []string
				refused := 0
				for i, r := range results {
					switch {
					case errs[i] != nil:
						t.Fatalf("run %d: %v", i, errs[i])
					case r.Status == 200:
						ok = append(ok, runIDOf(t, r))
					case r.Status == 402 && r.errCode() == stream.CodeInsufficientFunds:
						refused++
					default:
						t.Fatalf("run %d: %d %s", i, r.Status, r.Body)
					}
				}
				if len(ok) != wantOK || refused != runs-wantOK {
					t.Fatalf("%d succeeded and %d were refused, want %d and %d", len(ok), refused, wantOK, runs-wantOK)
				}
				for _, id := range ok {
					if rec := e.waitRun(id); rec.Status != "success" || rec.ChargedMicroCents != price*uc {
						t.Fatalf("run %s: status %s charged %d", id, rec.Status, rec.ChargedMicroCents)
					}
				}
				want := int64(0)
				if mode == "postpaid" {
					want = -runs * price * uc
				}
				if got := a.balance(); got != want {
					t.Fatalf("balance %d, want %d", got, want)
				}
				kinds := a.ledgerKinds()
				if n := countOf(kinds, db.LedgerCharge); n != wantOK {
					t.Fatalf("%d charge rows, want %d", n, wantOK)
				}
				if mode == "prepaid" && (countOf(kinds, db.LedgerHold) != wantOK || countOf(kinds, db.LedgerRelease) != wantOK) {
					t.Fatalf("prepaid ledger: %d holds, %d releases, want %d each", countOf(kinds, db.LedgerHold), countOf(kinds, db.LedgerRelease), wantOK)
				}
			})
		}
	})
}

func countOf(list []string, v string) int {
	n := 0
	for _, s := range list {
		if s == v {
			n++
		}
	}
	return n
}

// billCase is one run and what it must cost and charge.
type billCase struct {
	name    string
	mode    string // postpaid | prepaid
	fields  map[string]any
	deposit int64 // cents, before the run
	// reply answers the run's model calls (call is 1-based); nil: a plain answer.
	reply  func(call int) llmtest.Reply
	test   bool   // run through the owner's test route
	auth   string // when set, the Authorization the model must have seen
	status int    // HTTP status of the run
	run    string // the run record's status
	cost   int64  // micro-cents in the run record (cost_cents)
	// partial: the run ended inside a model call whose usage never came, so the gateway
	// estimated that call's input tokens: cost is then at least cost and under cost + 1¢.
	partial bool
	charged int64 // micro-cents in the run record (charged_cents)
	balance int64 // micro-cents after the run
	ledger  []string
}

func usage(in, out int) func(int) llmtest.Reply {
	return func(int) llmtest.Reply {
		return llmtest.Reply{Text: "Done.", Usage: &llmtest.Usage{Prompt: in, Completion: out}}
	}
}

// TestBilling_Runs: what each kind of run costs (cost_cents, from the provider's usage and the
// price table) and is charged (charged_cents, once, after success only) in both modes.
func TestBilling_Runs(t *testing.T) {
	t.Parallel()
	// gpt-4o-mini lists at $0.15 / $0.60 per million tokens: 1M in + 100k out = 15¢ + 6¢.
	const miniCost = 21 * uc
	cases := []billCase{
		{name: "postpaid: no price on an unpriced model: nothing to settle", mode: "postpaid",
			fields: map[string]any{"llm_model": "house-model"}, reply: usage(5000, 5000),
			status: 200, run: "success", cost: 0, charged: 0, balance: 0, ledger: nil},
		{name: "prepaid: no price on an unpriced model: nothing held or charged", mode: "prepaid", deposit: 1,
			fields: map[string]any{"llm_model": "house-model", "max_tokens": 1000}, reply: usage(5000, 5000),
			status: 200, run: "success", cost: 0, charged: 0, balance: 1 * uc, ledger: []string{"deposit"}},
		{name: "postpaid: price only on an unpriced model", mode: "postpaid",
			fields: map[string]any{"llm_model": "house-model", "price_per_run_cents": 7}, reply: usage(5000, 5000),
			status: 200, run: "success", cost: 0, charged: 7 * uc, balance: -7 * uc, ledger: []string{"charge"}},
		{name: "postpaid: price plus token cost from the reported usage", mode: "postpaid",
			fields: map[string]any{"llm_model": "gpt-4o-mini", "price_per_run_cents": 2}, reply: usage(1_000_000, 100_000),
			status: 200, run: "success", cost: miniCost, charged: 2*uc + miniCost, balance: -(2*uc + miniCost), ledger: []string{"charge"}},
		{name: "postpaid: dated model name priced as its family", mode: "postpaid",
			fields: map[string]any{"llm_model": "gpt-4o-mini-2024-07-18"}, reply: usage(1_000_000, 100_000),
			status: 200, run: "success", cost: miniCost, charged: miniCost, balance: -miniCost, ledger: []string{"charge"}},
		{name: "postpaid: operator price overrides the default", mode: "postpaid",
			fields: map[string]any{"llm_model": "gpt-4o"}, reply: usage(1_000_000, 100_000),
			// overridden to $5 / $20 (the default $2.50 / $10 would be 350¢)
			status: 200, run: "success", cost: 700 * uc, charged: 700 * uc, balance: -700 * uc, ledger: []string{"charge"}},
		{name: "postpaid: BYOK pays the price, not the tokens", mode: "postpaid",
			fields: map[string]any{"llm_model": "gpt-4o-mini", "price_per_run_cents": 2, "llm_api_key": "sk-byok-postpaid"},
			reply:  usage(1_000_000, 100_000), auth: "Bearer sk-byok-postpaid",
			status: 200, run: "success", cost: miniCost, charged: 2 * uc, balance: -2 * uc, ledger: []string{"charge"}},
		{name: "postpaid: demo model is free whatever its model name", mode: "postpaid",
			fields: map[string]any{"llm_provider": "demo", "llm_model": "gpt-4o", "price_per_run_cents": 1},
			status: 200, run: "success", cost: 0, charged: 1 * uc, balance: -1 * uc, ledger: []string{"charge"}},
		{name: "postpaid: failed run not charged", mode: "postpaid",
			fields: map[string]any{"llm_model": "gpt-4o-mini", "price_per_run_cents": 5},
			reply:  func(int) llmtest.Reply { return llmtest.Reply{Status: 400, Text: "bad request"} },
			status: 502, run: "error", cost: 0, charged: 0, balance: 0, ledger: nil},
		{name: "postpaid: test route pays tokens, not the price", mode: "postpaid", test: true,
			fields: map[string]any{"llm_model": "gpt-4o-mini", "price_per_run_cents": 50}, reply: usage(1_000_000, 100_000),
			status: 200, run: "test", cost: miniCost, charged: miniCost, balance: -miniCost, ledger: []string{"charge"}},

		{name: "prepaid: hold, then settle to the real amount", mode: "prepaid", deposit: 100,
			fields: map[string]any{"llm_model": "gpt-4o-mini", "price_per_run_cents": 2, "max_tokens": 1000},
			// 1000 in + 200 out = 15 000 + 12 000 uc
			reply: usage(1000, 200), status: 200, run: "success", cost: 27_000, charged: 2*uc + 27_000,
			balance: 98*uc - 27_000, ledger: []string{"deposit", "hold", "release", "charge"}},
		{name: "prepaid: cost above hold and balance is capped at zero", mode: "prepaid", deposit: 5,
			fields: map[string]any{"llm_model": "gpt-4o-mini", "price_per_run_cents": 2, "max_tokens": 100},
			reply:  usage(1_000_000, 100_000), status: 200, run: "success", cost: miniCost, charged: 5 * uc,
			balance: 0, ledger: []string{"deposit", "hold", "release", "charge"}},
		{name: "prepaid: BYOK holds and pays the price only", mode: "prepaid", deposit: 3,
			fields: map[string]any{"llm_model": "gpt-4o-mini", "price_per_run_cents": 3, "llm_api_key": "sk-byok-prepaid"},
			reply:  usage(1_000_000, 100_000), auth: "Bearer sk-byok-prepaid", status: 200, run: "success", cost: miniCost,
			charged: 3 * uc, balance: 0, ledger: []string{"deposit", "hold", "release", "charge"}},
		{name: "prepaid: failed run releases its hold", mode: "prepaid", deposit: 10,
			fields: map[string]any{"llm_model": "gpt-4o-mini", "price_per_run_cents": 3},
			reply:  func(int) llmtest.Reply { return llmtest.Reply{Status: 400, Text: "bad request"} },
			status: 502, run: "error", cost: 0, charged: 0, balance: 10 * uc, ledger: []string{"deposit", "hold", "release"}},
		{name: "prepaid: timed-out run is costed but not charged", mode: "prepaid", deposit: 10,
			fields: map[string]any{"llm_model": "gpt-4o-mini", "price_per_run_cents": 3, "output_format": "json", "timeout_ms": 1000},
			reply: func(call int) llmtest.Reply {
				if call == 1 { // not JSON: the gateway asks again, and that call never ends
					return llmtest.Reply{Text: "not json", Usage: &llmtest.Usage{Prompt: 1_000_000, Completion: 100_000}}
				}
				return llmtest.Reply{Text: "{", Hang: true}
			},
			status: 504, run: "timeout", cost: miniCost, partial: true, charged: 0, balance: 10 * uc, ledger: []string{"deposit", "hold", "release"}},
		{name: "prepaid: cannot hold the price → 402, nothing held", mode: "prepaid", deposit: 1,
			fields: map[string]any{"llm_model": "house-model", "price_per_run_cents": 2},
			status: 402, balance: 1 * uc, ledger: []string{"deposit"}},
		{name: "prepaid: cannot hold the max-tokens cost → 402", mode: "prepaid", deposit: 2,
			// 2¢ price + 32768 tokens each way of gpt-4o (overridden to 5 + 20 $/M) = 2¢ + 81.92¢
			fields: map[string]any{"llm_model": "gpt-4o-2024-08-06", "price_per_run_cents": 2, "max_tokens": 32768},
			status: 402, balance: 2 * uc, ledger: []string{"deposit"}},
	}
	forKinds(t, func(t *testing.T, kind string) {
		for _, mode := range []string{"postpaid", "prepaid"} {
			t.Run(mode, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, kind, func(c *Config) {
					c.BillingMode = mode
					c.Prices = agent.DefaultPrices()
					c.Prices["gpt-4o"] = agent.Price{InputPerMTok: 5, OutputPerMTok: 20}
				})
				byInput := map[string]billCase{}
				for _, tt := range cases {
					byInput[tt.name] = tt
				}
				e.LLM.Handle(func(req llmtest.Request) llmtest.Reply {
					tt, ok := byInput[req.Messages[1].Content]
					if !ok || tt.reply == nil {
						return llmtest.Reply{Text: "ok"}
					}
					return tt.reply(len(req.Messages) / 2) // 2 messages on the first call, 4 on the retry
				})
				for _, tt := range cases {
					if tt.mode != mode {
						continue
					}
					t.Run(tt.name, func(t *testing.T) {
						t.Parallel()
						checkBillCase(t, e, tt)
					})
				}
			})
		}
	})
}

func checkBillCase(t *testing.T, e *testEnv, tt billCase) {
	t.Helper()
	a := e.newAccount()
	if tt.deposit > 0 {
		a.deposit(tt.deposit)
	}
	ep := a.endpoint(tt.fields)
	body := map[string]string{"input": tt.name}
	var r response
	if tt.test {
		r = e.as(a.token, "POST", "/api/agent-endpoints/"+ep.ID()+"/test", body)
	} else {
		r = e.run(ep, body)
	}
	if r.Status != tt.status {
		t.Fatalf("status %d %s, want %d", r.Status, r.Body, tt.status)
	}
	if tt.status == 402 {
		if r.errCode() != stream.CodeInsufficientFunds {
			t.Fatalf("402 body %s", r.Body)
		}
	} else {
		id := runIDOf(t, r)
		rec := e.waitRun(id)
		costOK := rec.CostMicroCents == tt.cost
		if tt.partial {
			costOK = rec.CostMicroCents >= tt.cost && rec.CostMicroCents < tt.cost+uc
		}
		if rec.Status != tt.run || !costOK || rec.ChargedMicroCents != tt.charged {
			t.Fatalf("run record: status %s cost %d charged %d, want %s %d %d", rec.Status, rec.CostMicroCents,
				rec.ChargedMicroCents, tt.run, tt.cost, tt.charged)
		}
		got := e.as(a.token, "GET", "/api/agent-endpoints/"+ep.ID()+"/runs/"+id, nil)
		var rr struct {
			Run struct {
				Cost    float64 `json:"cost_cents"`
				Charged float64 `json:"charged_cents"`
			} `json:"run"`
		}
		got.json(t, &rr)
		if rr.Run.Cost != agent.MicroToCents(rec.CostMicroCents) || rr.Run.Charged != agent.MicroToCents(tt.charged) {
			t.Fatalf("run JSON %s, want cost_cents %v charged_cents %v", got.Body, agent.MicroToCents(tt.cost), agent.MicroToCents(tt.charged))
		}
		if tt.status == 200 {
			var ans struct {
				Usage struct {
					Cost float64 `json:"cost_cents"`
				} `json:"usage"`
			}
			r.json(t, &ans)
			if ans.Usage.Cost != agent.MicroToCents(tt.cost) {
				t.Fatalf("answer usage.cost_cents %v, want %v", ans.Usage.Cost, agent.MicroToCents(tt.cost))
			}
		}
	}
	if tt.auth != "" {
		seen := false
		for _, req := range e.LLM.Requests() {
			if len(req.Messages) > 1 && req.Messages[1].Content == tt.name {
				seen = true
				if req.Authorization != tt.auth {
					t.Fatalf("model saw Authorization %q, want %q", req.Authorization, tt.auth)
				}
			}
		}
		if !seen {
			t.Fatal("the run never reached the model")
		}
	}
	if got := a.balance(); got != tt.balance {
		t.Fatalf("balance %d uc, want %d", got, tt.balance)
	}
	if kinds := a.ledgerKinds(); !slices.Equal(kinds, tt.ledger) {
		t.Fatalf("ledger %v, want %v", kinds, tt.ledger)
	}
}

// TestBilling_CancelledRun: a stream whose caller hangs up after some usage is logged
// cancelled, costed for what was spent, and not charged; its prepaid hold is released.
func TestBilling_CancelledRun(t *testing.T) {
	t.Parallel()
	forKinds(t, func(t *testing.T, kind string) {
		e := newEnv(t, kind, func(c *Config) { c.BillingMode = "prepaid" })
		e.LLM.Script(
			llmtest.Reply{Text: "not json", Usage: &llmtest.Usage{Prompt: 1_000_000, Completion: 100_000}},
			llmtest.Reply{Chunks: []string{"{"}, Hang: true},
		)
		a := e.newAccount()
		a.deposit(10)
		ep := a.endpoint(map[string]any{"llm_model": "gpt-4o-mini", "price_per_run_cents": 3, "output_format": "json"})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		res := e.openStream(ctx, ep, `{"input":"hi"}`)
		runID := res.Header.Get("X-Run-Id")
		br := bufio.NewReader(res.Body)
		for { // the first call's usage, then the retry's first token: the run is mid-call
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("stream ended early: %v", err)
			}
			if strings.HasPrefix(line, "data: ") && strings.Contains(line, `"type":"token"`) && strings.Contains(line, `"iteration":2`) {
				break
			}
		}
		cancel()
		res.Body.Close()
		rec := e.waitRun(runID)
		// 21¢ for the first call's reported usage, and a little for the estimated input of the
		// call the hang-up cut short.
		if rec.Status != "cancelled" || rec.CostMicroCents < 21*uc || rec.CostMicroCents >= 22*uc || rec.ChargedMicroCents != 0 {
			t.Fatalf("record: status %s cost %d charged %d", rec.Status, rec.CostMicroCents, rec.ChargedMicroCents)
		}
		if got := a.balance(); got != 10*uc {
			t.Fatalf("balance %d, want the deposit back whole", got)
		}
		if kinds := a.ledgerKinds(); !slices.Equal(kinds, []string{"deposit", "hold", "release"}) {
			t.Fatalf("ledger %v", kinds)
		}
	})
}

// TestBilling_ChargedOnce: a run whose charge write is retried is charged once — through the
// store (Settle, SettleCapped) and through the server's settle path.
func TestBilling_ChargedOnce(t *testing.T) {
	t.Parallel()
	forKinds(t, func(t *testing.T, kind string) {
		for _, mode := range []string{"postpaid", "prepaid"} {
			t.Run(mode, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, kind, func(c *Config) { c.BillingMode = mode })
				ctx := context.Background()
				t.Run("store", func(t *testing.T) {
					a := e.newAccount()
					a.deposit(10)
					settle := func(run string, micro int64) error { return e.Store.Settle(ctx, a.id, run, micro) }
					if mode == "prepaid" {
						settle = func(run string, micro int64) error {
							_, err := e.Store.SettleCapped(ctx, a.id, run, micro)
							return err
						}
						if err := e.Store.Hold(ctx, a.id, "run_a", 5*uc); err != nil {
							t.Fatal(err)
						}
					}
					for range 2 {
						if err := settle("run_a", 4*uc); err != nil {
							t.Fatal(err)
						}
					}
					// A retry with another amount (a recomputed cost) changes nothing either.
					if err := settle("run_a", 9*uc); err != nil {
						t.Fatal(err)
					}
					if got := a.balance(); got != 6*uc {
						t.Fatalf("balance %d, want 6¢", got)
					}
					if n := countOf(a.ledgerKinds(), db.LedgerCharge); n != 1 {
						t.Fatalf("%d charge rows", n)
					}
				})
				t.Run("settle path", func(t *testing.T) {
					a := e.newAccount()
					a.deposit(10)
					created := a.endpoint(map[string]any{"llm_model": "gpt-4o-mini", "price_per_run_cents": 2})
					ep, err := e.Store.Endpoint(ctx, a.id, created.ID(), false)
					if err != nil {
						t.Fatal(err)
					}
					rec := &db.Run{ID: db.NewID("run_"), EndpointID: ep.ID, OwnerID: a.id}
					bill, err := e.Srv.billing(ctx, ep, rec, e.Srv.tokenCost(ep), false, false)
					if err != nil {
						t.Fatal(err)
					}
					o := agent.Outcome{Status: agent.StatusSuccess, CostMicroCents: 1234}
					for i := range 2 {
						if got := bill(ctx, o); got != 2*uc+1234 {
							t.Fatalf("settle %d charged %d", i, got)
						}
					}
					if got := a.balance(); got != 8*uc-1234 {
						t.Fatalf("balance %d, want 8¢ − 1234 micro-cents", got)
					}
					if n := countOf(a.ledgerKinds(), db.LedgerCharge); n != 1 {
						t.Fatalf("%d charge rows", n)
					}
				})
			})
		}
	})
}

// TestTokenCost_UnknownModelLogged: a model missing from the price table costs 0 and the log
// says so, once per model.
func TestTokenCost_UnknownModelLogged(t *testing.T) {
	t.Parallel()
	var buf safeBuffer
	cfg := DefaultConfig()
	cfg.JWTSecret = []byte("test-secret-test-secret-test-secret")
	s, err := New(cfg, dbtest.Open(t, "sqlite"), slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	cases := []struct {
		ep     db.Endpoint
		cost   int64
		logged bool
	}{
		{db.Endpoint{LLMProvider: "openai", LLMModel: "gpt-4o-mini"}, 21 * uc, false},
		{db.Endpoint{LLMProvider: "custom", LLMModel: "my-finetune"}, 0, true},
		{db.Endpoint{LLMProvider: "demo", LLMModel: "gpt-4o-mini"}, 0, false},
	}
	for _, tt := range cases {
		before := buf.String()
		for range 2 {
			if got := s.tokenCost(&tt.ep)(1_000_000, 100_000); got != tt.cost {
				t.Fatalf("%s/%s costs %d, want %d", tt.ep.LLMProvider, tt.ep.LLMModel, got, tt.cost)
			}
		}
		added := strings.TrimPrefix(buf.String(), before)
		if n := strings.Count(added, "has no price"); n != map[bool]int{true: 1, false: 0}[tt.logged] {
			t.Fatalf("%s: %d log lines %q", tt.ep.LLMModel, n, added)
		}
		if tt.logged && !strings.Contains(added, "model="+tt.ep.LLMModel) {
			t.Fatalf("log line does not name the model: %q", added)
		}
	}
}

// safeBuffer is a bytes.Buffer for a logger.
type safeBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *safeBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *safeBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestAdminDeposit: the operator route is off without a token, refuses a wrong one, deposits,
// and a repeated key deposits once.
func TestAdminDeposit(t *testing.T) {
	t.Parallel()
	off := newEnv(t, "sqlite")
	if r := off.do("POST", "/api/admin/wallet/deposit", `{"email":"owner@example.com","cents":5}`, "Authorization", "Bearer anything"); r.Status != 404 || r.errCode() != stream.CodeNotFound {
		t.Fatalf("without an admin token: %d %s", r.Status, r.Body)
	}
	e := newEnv(t, "sqlite", func(c *Config) { c.AdminToken = "admin-secret-token" })
	owner := account{e: e, id: e.User, token: e.Token}
	admin := []string{"Authorization", "Bearer admin-secret-token"}
	cases := []struct {
		name    string
		body    string
		headers []string
		status  int
		code    string
		balance float64 // cents, after
	}{
		{"no token", `{"email":"owner@example.com","cents":5}`, nil, 401, stream.CodeUnauthorized, 0},
		{"wrong token", `{"email":"owner@example.com","cents":5}`, []string{"Authorization", "Bearer admin-secret-tokeN"}, 401, stream.CodeUnauthorized, 0},
		{"a user's JWT is not the admin token", `{"email":"owner@example.com","cents":5}`, []string{"Authorization", "Bearer " + e.Token}, 401, stream.CodeUnauthorized, 0},
		{"deposit", `{"email":"owner@example.com","cents":250,"key":"inv-1"}`, admin, 200, "", 250},
		{"same key again: not repeated", `{"email":"owner@example.com","cents":250,"key":"inv-1"}`, admin, 200, "", 250},
		{"another key", `{"email":"OWNER@example.com","cents":50,"key":"inv-2"}`, admin, 200, "", 300},
		{"no key: always a new deposit", `{"email":"owner@example.com","cents":1}`, admin, 200, "", 301},
		{"unknown user", `{"email":"nobody@example.com","cents":5}`, admin, 404, stream.CodeNotFound, 301},
		{"zero cents", `{"email":"owner@example.com","cents":0}`, admin, 400, stream.CodeValidation, 301},
		{"fractional cents", `{"email":"owner@example.com","cents":1.5}`, admin, 400, stream.CodeValidation, 301},
		{"unknown field", `{"email":"owner@example.com","cents":5,"user_id":"x"}`, admin, 400, stream.CodeValidation, 301},
	}
	for _, tt := range cases { // in order: each builds on the balance before
		r := e.do("POST", "/api/admin/wallet/deposit", tt.body, tt.headers...)
		if r.Status != tt.status || r.errCode() != tt.code {
			t.Fatalf("%s: %d %s, want %d %s", tt.name, r.Status, r.Body, tt.status, tt.code)
		}
		if tt.status == 200 {
			var ans struct {
				Balance float64 `json:"balance_cents"`
			}
			r.json(t, &ans)
			if ans.Balance != tt.balance {
				t.Fatalf("%s: answered balance %v, want %v", tt.name, ans.Balance, tt.balance)
			}
		}
		if got := owner.balance(); got != int64(tt.balance*uc) {
			t.Fatalf("%s: balance %d uc, want %v¢", tt.name, got, tt.balance)
		}
	}
	var bal struct {
		Deposited float64 `json:"lifetime_deposited_cents"`
		Spent     float64 `json:"lifetime_spent_cents"`
	}
	e.as(e.Token, "GET", "/api/balance", nil).json(t, &bal)
	if bal.Deposited != 301 || bal.Spent != 0 {
		t.Fatalf("lifetime sums %+v", bal)
	}
}

// TestLLMAPIKey_SecretAtRest: a bring-your-own key is stored encrypted and never returned;
// the endpoint JSON only says that there is one.
func TestLLMAPIKey_SecretAtRest(t *testing.T) {
	t.Parallel()
	forKinds(t, func(t *testing.T, kind string) {
		e := newEnv(t, kind)
		const key = "sk-byok-0123456789abcdef-secret"
		ep := e.endpoint(map[string]any{"llm_api_key": key})
		plain := e.endpoint(map[string]any{"name": "no key"})
		check := func(what string, r response, want bool) {
			t.Helper()
			if r.Status/100 != 2 || bytes.Contains(r.Body, []byte(key)) || bytes.Contains(r.Body, []byte(`"llm_api_key"`)) {
				t.Fatalf("%s leaks the key or its field: %d %s", what, r.Status, r.Body)
			}
			if want && !bytes.Contains(r.Body, []byte(`"has_llm_api_key":true`)) {
				t.Fatalf("%s: has_llm_api_key is not true: %s", what, r.Body)
			}
		}
		if ep.Endpoint["has_llm_api_key"] != true || plain.Endpoint["has_llm_api_key"] != false {
			t.Fatalf("create answers has_llm_api_key %v / %v", ep.Endpoint["has_llm_api_key"], plain.Endpoint["has_llm_api_key"])
		}
		if _, ok := ep.Endpoint["llm_api_key"]; ok {
			t.Fatal("create answer has llm_api_key")
		}
		check("GET endpoint", e.as(e.Token, "GET", "/api/agent-endpoints/"+ep.ID(), nil), true)
		check("list endpoints", e.as(e.Token, "GET", "/api/agent-endpoints", nil), true)
		check("PATCH endpoint", e.as(e.Token, "PATCH", "/api/agent-endpoints/"+ep.ID(), map[string]any{"description": "d"}), true)
		// At rest: the column holds ciphertext, not the key.
		var stored string
		q := e.Store.Rebind(`SELECT llm_api_key FROM endpoints WHERE id = ?`)
		if err := e.Store.DB().QueryRowContext(context.Background(), q, ep.ID()).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if stored == "" || strings.Contains(stored, key) || strings.Contains(stored, "sk-byok") {
			t.Fatalf("stored llm_api_key %q is not encrypted", stored)
		}
		// And the key still works: the model is called with it.
		if r := e.run(ep, `{"input":"byok"}`); r.Status != 200 {
			t.Fatalf("run: %d %s", r.Status, r.Body)
		}
		reqs := e.LLM.Requests()
		if got := reqs[len(reqs)-1].Authorization; got != "Bearer "+key {
			t.Fatalf("model saw %q", got)
		}
		// PATCH null removes it.
		r := e.as(e.Token, "PATCH", "/api/agent-endpoints/"+ep.ID(), map[string]any{"llm_api_key": nil})
		if r.Status != 200 || !bytes.Contains(r.Body, []byte(`"has_llm_api_key":false`)) {
			t.Fatalf("PATCH null: %d %s", r.Status, r.Body)
		}
	})
}
