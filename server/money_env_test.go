package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/agentgate/agentgate/agent"
	"github.com/agentgate/agentgate/db"
)

// peerGateway starts a second gateway over e's store with e's config (model server, secrets,
// limiter) as a replica behind a load balancer would be; opts apply on top. Its Token and User
// are e's.
func (e *testEnv) peerGateway(opts ...envOption) *testEnv {
	e.tb.Helper()
	return e.replica(e.Store, opts...)
}

// envRedis names the Redis the limiter tests use (the Makefile exports it).
const envRedis = "AGENTGATE_TEST_REDIS"

// testRedis returns the test Redis URL and a key prefix of its own for this test, whose keys
// are deleted when it ends. It skips the test when Redis does not answer, unless CI=true.
func testRedis(tb testing.TB) (url, prefix string) {
	tb.Helper()
	url = os.Getenv(envRedis)
	if url == "" {
		url = "redis://127.0.0.1:6379/15"
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		tb.Fatalf("%s: %v", envRedis, err)
	}
	rdb := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		_ = rdb.Close()
		if os.Getenv("CI") == "true" {
			tb.Fatalf("Redis unreachable with CI=true (%s=%s): %v", envRedis, url, err)
		}
		tb.Skipf("Redis unreachable (%s=%s): %v", envRedis, url, err)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	prefix = "agentgate-test:" + hex.EncodeToString(b[:]) + ":"
	tb.Cleanup(func() {
		defer rdb.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := rdb.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			rdb.Del(ctx, iter.Val())
		}
	})
	return url, prefix
}

// closedRedisURL is a redis:// URL on a loopback port nothing listens on (a Redis outage).
func closedRedisURL(tb testing.TB) string {
	tb.Helper()
	return "redis://" + closedAddr(tb) + "/0"
}

// closedAddr is a loopback host:port nothing listens on right now.
func closedAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		tb.Fatal(err)
	}
	return addr
}

// withRedis points the gateway's limiter at url with key prefix.
func withRedis(url, prefix string, failOpen bool) envOption {
	return func(c *Config) {
		c.RedisURL, c.RedisKeyPrefix, c.RateLimitFailOpen = url, prefix, failOpen
	}
}

// account is a user of its own on a test gateway, so money cases that share a gateway do not
// share a wallet.
type account struct {
	e         *testEnv
	id, token string
}

// newAccount creates a user directly in the store (no bcrypt: it never logs in) and a JWT.
func (e *testEnv) newAccount() account {
	e.tb.Helper()
	u := &db.User{Email: db.NewID("acct_") + "@example.com", PasswordHash: "-"}
	if err := e.Store.CreateUser(context.Background(), u); err != nil {
		e.tb.Fatal(err)
	}
	tok, err := IssueToken(e.Srv.cfg.JWTSecret, u.ID, time.Hour)
	if err != nil {
		e.tb.Fatal(err)
	}
	return account{e: e, id: u.ID, token: tok}
}

// endpoint creates an endpoint owned by the account.
func (a account) endpoint(fields map[string]any) createdEndpoint {
	a.e.tb.Helper()
	body := map[string]any{"name": "priced", "system_prompt": "You answer."}
	for k, v := range fields {
		body[k] = v
	}
	r := a.e.as(a.token, "POST", "/api/agent-endpoints", body)
	if r.Status != 201 {
		a.e.tb.Fatalf("create endpoint: %d %s", r.Status, r.Body)
	}
	var out createdEndpoint
	r.json(a.e.tb, &out)
	return out
}

// deposit credits the account's wallet.
func (a account) deposit(cents int64) {
	a.e.tb.Helper()
	if err := a.e.Store.Deposit(context.Background(), a.id, cents*microPerCent, "deposit:"+db.NewID("t_")); err != nil {
		a.e.tb.Fatal(err)
	}
}

// balance returns the wallet's balance in micro-cents after checking that it equals the sum
// of the ledger table and what GET /api/balance answers.
func (a account) balance() int64 {
	a.e.tb.Helper()
	b, err := a.e.Store.Balance(context.Background(), a.id)
	if err != nil {
		a.e.tb.Fatal(err)
	}
	if sum := a.ledgerSum(); sum != b.BalanceMicroCents {
		a.e.tb.Fatalf("ledger sum %d != balance %d", sum, b.BalanceMicroCents)
	}
	r := a.e.as(a.token, "GET", "/api/balance", nil)
	var got struct {
		Balance  float64 `json:"balance_cents"`
		Currency string  `json:"currency"`
	}
	r.json(a.e.tb, &got)
	if r.Status != 200 || got.Balance != agent.MicroToCents(b.BalanceMicroCents) || got.Currency != "usd" {
		a.e.tb.Fatalf("GET /api/balance %d %s, want %v cents", r.Status, r.Body, agent.MicroToCents(b.BalanceMicroCents))
	}
	return b.BalanceMicroCents
}

// ledgerSum reads the ledger table itself.
func (a account) ledgerSum() int64 {
	a.e.tb.Helper()
	var sum int64
	q := a.e.Store.Rebind(`SELECT COALESCE(SUM(amount_micro_cents), 0) FROM ledger WHERE user_id = ?`)
	if err := a.e.Store.DB().QueryRowContext(context.Background(), q, a.id).Scan(&sum); err != nil {
		a.e.tb.Fatal(err)
	}
	return sum
}

// ledgerKinds lists the kinds of the account's ledger rows, oldest first.
func (a account) ledgerKinds() []string {
	a.e.tb.Helper()
	var kinds []string
	q := a.e.Store.Rebind(`SELECT kind FROM ledger WHERE user_id = ? ORDER BY id`)
	if err := a.e.Store.DB().SelectContext(context.Background(), &kinds, q, a.id); err != nil {
		a.e.tb.Fatal(err)
	}
	return kinds
}

// tryRun is run for goroutines other than the test's: it returns errors instead of failing.
func (e *testEnv) tryRun(ep createdEndpoint, body string) (response, error) {
	req, err := http.NewRequest("POST", e.URL+"/api/run/"+ep.Slug(), strings.NewReader(body))
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+ep.APIKey)
	res, err := e.HTTP.Do(req)
	if err != nil {
		return response{}, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	return response{Status: res.StatusCode, Header: res.Header, Body: raw}, err
}
