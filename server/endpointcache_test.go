package server

import (
	"context"
	"testing"
	"time"

	"github.com/agentgate/agentgate/db"
)

// TestEndpointCache_Replicas: two gateways on one database. The run path reuses an endpoint
// read from the database for --endpoint-cache: a change made through the same gateway applies
// at once, one made through another gateway within the TTL, never later.
func TestEndpointCache_Replicas(t *testing.T) {
	t.Parallel()
	forKinds(t, func(t *testing.T, kind string) {
		const ttl = 300 * time.Millisecond
		a := newEnv(t, kind, func(c *Config) { c.EndpointCacheTTL, c.RunsPerMinute = ttl, 1_000_000 })
		b := a.replica(a.Store)
		ep := a.endpoint(map[string]any{"llm_provider": "demo"})
		a.run(ep, map[string]any{"input": "hello"}).want(t, 200, "")
		b.run(ep, map[string]any{"input": "hello"}).want(t, 200, "") // b now holds ep

		// A key regenerated through b is refused by b at once …
		r := b.as(b.Token, "POST", "/api/agent-endpoints/"+ep.ID()+"/regenerate-key", nil)
		r.want(t, 200, "")
		var out struct {
			APIKey string `json:"api_key"`
		}
		r.json(t, &out)
		b.run(ep, map[string]any{"input": "hello"}).want(t, 401, "UNAUTHORIZED")
		// … and by a once a's cached copy is older than the TTL.
		untilStatus(t, a, ep, 401, ttl)
		fresh := ep
		fresh.APIKey = out.APIKey
		a.run(fresh, map[string]any{"input": "hello"}).want(t, 200, "")

		// Deleted through a: a answers 404 at once; b within the TTL.
		b.run(fresh, map[string]any{"input": "hello"}).want(t, 200, "")
		a.as(a.Token, "DELETE", "/api/agent-endpoints/"+ep.ID(), nil).want(t, 204, "")
		a.run(fresh, map[string]any{"input": "hello"}).want(t, 404, "NOT_FOUND")
		untilStatus(t, b, fresh, 404, ttl)
	})
}

// untilStatus runs ep on e until the answer has status want, failing on any status but 200
// and want, or after 20 TTLs.
func untilStatus(t *testing.T, e *testEnv, ep createdEndpoint, want int, ttl time.Duration) {
	t.Helper()
	deadline := time.Now().Add(20 * ttl)
	for {
		st := e.run(ep, map[string]any{"input": "hello"}).Status
		if st == want {
			return
		}
		if st != 200 || time.Now().After(deadline) {
			t.Fatalf("status %d, want %d within %v", st, want, 20*ttl)
		}
	}
}

// TestEndpointCache_RacingWrite: a lookup that read the database before a write cleared the
// cache does not put its stale copy back; a lookup with no write meanwhile is kept.
func TestEndpointCache_RacingWrite(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	ep := e.endpoint(map[string]any{"llm_provider": "demo"})
	for _, racing := range []bool{false, true} {
		c := newEndpointCache(e.Store, time.Hour)
		c.load = func(ctx context.Context, slug string) (*db.Endpoint, error) {
			got, err := e.Store.EndpointBySlug(ctx, slug)
			if racing {
				c.clear() // a write lands after the read, before the lookup stores its copy
			}
			return got, err
		}
		if _, err := c.bySlug(t.Context(), ep.Slug()); err != nil {
			t.Fatal(err)
		}
		c.mu.RLock()
		n := len(c.m)
		c.mu.RUnlock()
		if want := map[bool]int{false: 1, true: 0}[racing]; n != want {
			t.Fatalf("racing %v: cache holds %d endpoints, want %d", racing, n, want)
		}
	}
}
