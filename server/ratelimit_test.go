package server

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/agentgate/agentgate/stream"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// freezeClock stops the clock of e's in-memory limiter, so budgets do not refill while a
// test counts them down.
func freezeClock(tb testing.TB, e *testEnv) *fakeClock {
	tb.Helper()
	m, ok := e.Srv.limits.lim.(*memLimiter)
	if !ok {
		tb.Fatalf("limiter is %T, want the in-memory one", e.Srv.limits.lim)
	}
	clk := &fakeClock{t: time.Now()}
	m.mu.Lock()
	m.now = clk.Now
	m.mu.Unlock()
	return clk
}

// mustAllow takes one request and checks the decision.
func mustAllow(tb testing.TB, l Limiter, key string, limit int, wantAllowed bool, wantRemaining int) Decision {
	tb.Helper()
	d, err := l.Allow(context.Background(), key, limit, time.Minute)
	if err != nil {
		tb.Fatal(err)
	}
	if d.Allowed != wantAllowed || d.Remaining != wantRemaining || d.Limit != limit {
		tb.Fatalf("decision %+v, want allowed=%v remaining=%d limit=%d", d, wantAllowed, wantRemaining, limit)
	}
	return d
}

// TestMemLimiter_SmoothAfterBurst: GCRA lets the whole budget through at once, then exactly one
// request per interval (window/limit) — no second burst at a window edge.
func TestMemLimiter_SmoothAfterBurst(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	m := newMemLimiter()
	m.now = clk.Now
	t.Cleanup(func() { _ = m.Close() })
	const limit = 60 // one per second
	for i := 0; i < limit; i++ {
		mustAllow(t, m, "k", limit, true, limit-1-i)
	}
	d := mustAllow(t, m, "k", limit, false, 0)
	if d.RetryAfter != time.Second || !d.Reset.Equal(clk.Now().Add(time.Minute)) {
		t.Fatalf("refusal %+v, want retry after 1s, reset in 1m", d)
	}
	clk.advance(500 * time.Millisecond)
	if d := mustAllow(t, m, "k", limit, false, 0); d.RetryAfter != 500*time.Millisecond {
		t.Fatalf("retry after %v, want 500ms", d.RetryAfter)
	}
	// From here on, one request per second, never two in one interval.
	clk.advance(500 * time.Millisecond)
	for s := 0; s < 10; s++ {
		mustAllow(t, m, "k", limit, true, 0)
		mustAllow(t, m, "k", limit, false, 0)
		clk.advance(time.Second)
	}
	// Quiet for a whole window: the budget is whole again, and not more than whole.
	clk.advance(time.Minute)
	for i := 0; i < limit; i++ {
		mustAllow(t, m, "k", limit, true, limit-1-i)
	}
	mustAllow(t, m, "k", limit, false, 0)
	// Keys are independent.
	mustAllow(t, m, "other", limit, true, limit-1)
}

// TestRedisLimiter_SmoothAfterBurst: the Redis limiter makes the same decisions as the
// in-memory one (on Redis's clock: one request per 10 s at 6/min).
func TestRedisLimiter_SmoothAfterBurst(t *testing.T) {
	t.Parallel()
	url, prefix := testRedis(t)
	r, err := newRedisLimiter(url, prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	const limit = 6
	for i := 0; i < limit; i++ {
		d := mustAllow(t, r, "k", limit, true, limit-1-i)
		if until := time.Until(d.Reset); until < time.Duration(i)*10*time.Second || until > time.Duration(i+2)*10*time.Second {
			t.Fatalf("request %d: reset in %v", i, until)
		}
	}
	d := mustAllow(t, r, "k", limit, false, 0)
	if d.RetryAfter <= 9*time.Second || d.RetryAfter > 10*time.Second {
		t.Fatalf("retry after %v, want just under 10s", d.RetryAfter)
	}
	mustAllow(t, r, "other", limit, true, limit-1)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil { // idempotent
		t.Fatal(err)
	}
}

// checkLimitHeaders asserts the X-RateLimit-* headers of a run answer; now is the limiter's
// clock.
func checkLimitHeaders(tb testing.TB, now func() time.Time, r response, limit, remaining int) {
	tb.Helper()
	if got := r.Header.Get("X-RateLimit-Limit"); got != strconv.Itoa(limit) {
		tb.Fatalf("X-RateLimit-Limit %q, want %d (status %d %s)", got, limit, r.Status, r.Body)
	}
	if got := r.Header.Get("X-RateLimit-Remaining"); got != strconv.Itoa(remaining) {
		tb.Fatalf("X-RateLimit-Remaining %q, want %d (status %d %s)", got, remaining, r.Status, r.Body)
	}
	reset, err := strconv.ParseInt(r.Header.Get("X-RateLimit-Reset"), 10, 64)
	if now := now().Unix(); err != nil || reset < now || reset > now+61 {
		tb.Fatalf("X-RateLimit-Reset %q (limiter's now %d)", r.Header.Get("X-RateLimit-Reset"), now)
	}
}

// checkRefused asserts a 429 answer: envelope, message, Retry-After and headers.
func checkRefused(tb testing.TB, now func() time.Time, r response, limit int) {
	tb.Helper()
	if r.Status != 429 || r.errCode() != stream.CodeRateLimited {
		tb.Fatalf("want 429 RATE_LIMIT_EXCEEDED, got %d %s", r.Status, r.Body)
	}
	secs, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || secs < 1 || secs > 60 {
		tb.Fatalf("Retry-After %q", r.Header.Get("Retry-After"))
	}
	if want := fmt.Sprintf("Rate limit exceeded. Try again in %d seconds.", secs); r.errMessage() != want {
		tb.Fatalf("message %q, want %q", r.errMessage(), want)
	}
	checkLimitHeaders(tb, now, r, limit, 0)
}

// TestRateLimit_EachLimit: each limit lets exactly its budget through, counting down in the
// headers, then refuses with 429.
func TestRateLimit_EachLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite", func(c *Config) { c.TrustedProxies = []string{"127.0.0.1"} })
	now := freezeClock(t, e).Now
	type sender func(ep createdEndpoint) response
	byKey := func(ep createdEndpoint) response { return e.run(ep, `{"input":"a"}`) }
	fromIP := func(ip string) sender {
		return func(ep createdEndpoint) response {
			return e.do("POST", "/api/run/"+ep.Slug(), `{"input":"a"}`, "X-Forwarded-For", ip)
		}
	}
	testRoute := func(ep createdEndpoint) response {
		return e.as(e.Token, "POST", "/api/agent-endpoints/"+ep.ID()+"/test", `{"input":"a"}`)
	}
	cases := []struct {
		name   string
		fields map[string]any
		send   sender
		limit  int
		// after, when set, checks what still passes once the limit is spent.
		after func(t *testing.T, ep createdEndpoint)
	}{
		{name: "per endpoint, default 60", send: byKey, limit: 60},
		{name: "per endpoint, its own limit", fields: map[string]any{"rate_limit_per_minute": 5}, send: byKey, limit: 5},
		{name: "per client IP on public endpoints, 20", fields: map[string]any{"auth_mode": "public"}, send: fromIP("203.0.113.7"), limit: 20,
			after: func(t *testing.T, ep createdEndpoint) {
				// Another client of the same endpoint still has its whole budget.
				r := fromIP("203.0.113.8")(ep)
				if r.Status != 200 {
					t.Fatalf("other client: %d %s", r.Status, r.Body)
				}
				checkLimitHeaders(t, now, r, 20, 19)
			}},
		{name: "test route, 10 per endpoint", send: testRoute, limit: 10,
			after: func(t *testing.T, ep createdEndpoint) {
				// The test route's budget is its own: keyed runs still pass.
				if r := byKey(ep); r.Status != 200 {
					t.Fatalf("run after the test budget: %d %s", r.Status, r.Body)
				}
			}},
	}
	for i, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fields := map[string]any{"name": fmt.Sprintf("limited %d", i)}
			for k, v := range tt.fields {
				fields[k] = v
			}
			ep := e.endpoint(fields)
			for n := 0; n < tt.limit; n++ {
				r := tt.send(ep)
				if r.Status != 200 {
					t.Fatalf("request %d: %d %s", n+1, r.Status, r.Body)
				}
				checkLimitHeaders(t, now, r, tt.limit, tt.limit-1-n)
			}
			checkRefused(t, now, tt.send(ep), tt.limit)
			if tt.after != nil {
				tt.after(t, ep)
			}
		})
	}
}

// TestRateLimit_ClientIP: X-Forwarded-For names the client only when the socket's peer is a
// trusted proxy, and then it is read from the right, so a client cannot pick its address.
func TestRateLimit_ClientIP(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		trusted []string
		first   string // X-Forwarded-For of the first request, which spends the 1/min budget
		second  string // of the second request
		same    bool   // whether both count as one client (the second is refused)
	}{
		{"no trusted proxies: header ignored", nil, "203.0.113.1", "203.0.113.2", true},
		{"trusted proxy: header believed", []string{"127.0.0.1"}, "203.0.113.1", "203.0.113.2", false},
		{"trusted proxy: forged left entry ignored", []string{"127.0.0.1"}, "203.0.113.1", "198.51.100.9, 203.0.113.1", true},
		{"trusted CIDR hops skipped", []string{"127.0.0.0/8", "10.0.0.0/8"}, "203.0.113.1, 10.1.2.3", "203.0.113.2, 10.1.2.3", false},
		{"peer not in the trusted list", []string{"10.0.0.0/8"}, "203.0.113.1", "203.0.113.2", true},
		{"garbage header: the peer counts", []string{"127.0.0.1"}, "not-an-ip", "also not", true},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, "sqlite", func(c *Config) { c.TrustedProxies, c.PublicIPPerMinute = tt.trusted, 1 })
			now := time.Now
			ep := e.endpoint(map[string]any{"auth_mode": "public"})
			if r := e.do("POST", "/api/run/"+ep.Slug(), `{"input":"a"}`, "X-Forwarded-For", tt.first); r.Status != 200 {
				t.Fatalf("first: %d %s", r.Status, r.Body)
			}
			r := e.do("POST", "/api/run/"+ep.Slug(), `{"input":"a"}`, "X-Forwarded-For", tt.second)
			if tt.same {
				checkRefused(t, now, r, 1)
			} else if r.Status != 200 {
				t.Fatalf("second client refused: %d %s", r.Status, r.Body)
			}
		})
	}
}

// TestRateLimit_HeadersOnEveryAnswer: JSON, stream, async, 402 and 429 answers of the run
// route all carry the X-RateLimit-* headers.
func TestRateLimit_HeadersOnEveryAnswer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite", func(c *Config) { c.BillingMode = "prepaid" })
	now := freezeClock(t, e).Now
	free := map[string]any{"llm_model": "free-model"}
	cases := []struct {
		name    string
		fields  map[string]any
		headers []string
		status  int
	}{
		{"json", free, nil, 200},
		{"stream", free, []string{"Accept", "text/event-stream"}, 200},
		{"async", free, []string{"Prefer", "respond-async"}, 202},
		{"insufficient funds", map[string]any{"llm_model": "free-model", "price_per_run_cents": 5}, nil, 402},
	}
	for i, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fields := map[string]any{"name": fmt.Sprintf("h%d", i), "rate_limit_per_minute": 2}
			for k, v := range tt.fields {
				fields[k] = v
			}
			ep := e.endpoint(fields)
			r := e.run(ep, `{"input":"a"}`, tt.headers...)
			if r.Status != tt.status {
				t.Fatalf("status %d %s", r.Status, r.Body)
			}
			checkLimitHeaders(t, now, r, 2, 1)
			e.run(ep, `{"input":"a"}`, tt.headers...)
			checkRefused(t, now, e.run(ep, `{"input":"a"}`, tt.headers...), 2)
		})
	}
}

// TestRedisLimiter_SharedByReplicas: two gateways on one Redis count one budget per endpoint:
// the second sees what the first spent.
func TestRedisLimiter_SharedByReplicas(t *testing.T) {
	t.Parallel()
	url, prefix := testRedis(t)
	now := time.Now
	a := newEnv(t, "sqlite", withRedis(url, prefix, false))
	b := a.peerGateway() // the same Redis and key prefix
	ep := a.endpoint(map[string]any{"rate_limit_per_minute": 4})
	steps := []struct {
		env       *testEnv
		remaining int
	}{{a, 3}, {a, 2}, {b, 1}, {b, 0}}
	for i, s := range steps {
		r := s.env.run(ep, `{"input":"a"}`)
		if r.Status != 200 {
			t.Fatalf("step %d: %d %s", i, r.Status, r.Body)
		}
		checkLimitHeaders(t, now, r, 4, s.remaining)
	}
	checkRefused(t, now, a.run(ep, `{"input":"a"}`), 4)
	checkRefused(t, now, b.run(ep, `{"input":"a"}`), 4)
}

// TestRedisLimiter_Outage: with Redis down, runs pass (fail open) or answer 503 (fail closed).
func TestRedisLimiter_Outage(t *testing.T) {
	t.Parallel()
	for _, failOpen := range []bool{true, false} {
		t.Run("fail open "+strconv.FormatBool(failOpen), func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, "sqlite", withRedis(closedRedisURL(t), "x:", failOpen))
			now := time.Now
			ep := e.endpoint(nil)
			r := e.run(ep, `{"input":"a"}`)
			if failOpen {
				if r.Status != 200 {
					t.Fatalf("fail open: %d %s", r.Status, r.Body)
				}
				checkLimitHeaders(t, now, r, 60, 60)
				return
			}
			if r.Status != 503 || r.errCode() != stream.CodeUnavailable {
				t.Fatalf("fail closed: %d %s", r.Status, r.Body)
			}
			if len(e.LLM.Requests()) != 0 {
				t.Fatal("a refused run reached the model")
			}
		})
	}
}
