package server

import (
	"context"
	"testing"
	"time"
	"unsafe"

	"github.com/agentgate/agentgate/db"
)

// TestEndpointCache_Replicas: two gateways on one database. The run path reuses an endpoint
// read from the database for --endpoint-cache: a change made through the same gateway applies
// at once; one made through the other gateway applies when its PostgreSQL notification
// arrives (the TTL here is an hour), or on SQLite within the TTL.
func TestEndpointCache_Replicas(t *testing.T) {
	t.Parallel()
	forKinds(t, func(t *testing.T, kind string) {
		ttl, within := 300*time.Millisecond, 6*time.Second
		if kind == "postgres" {
			ttl = time.Hour
		}
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
		// … and by a soon after.
		untilStatus(t, a, ep, 401, within)
		fresh := ep
		fresh.APIKey = out.APIKey
		a.run(fresh, map[string]any{"input": "hello"}).want(t, 200, "")

		// Deleted through a: a answers 404 at once; b within the TTL.
		b.run(fresh, map[string]any{"input": "hello"}).want(t, 200, "")
		a.as(a.Token, "DELETE", "/api/agent-endpoints/"+ep.ID(), nil).want(t, 204, "")
		a.run(fresh, map[string]any{"input": "hello"}).want(t, 404, "NOT_FOUND")
		untilStatus(t, b, fresh, 404, within)
	})
}

// untilStatus runs ep on e until the answer has status want, failing on any status but 200
// and want, or after within.
func untilStatus(t *testing.T, e *testEnv, ep createdEndpoint, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st := e.run(ep, map[string]any{"input": "hello"}).Status
		if st == want {
			return
		}
		if st != 200 || time.Now().After(deadline) {
			t.Fatalf("status %d, want %d within %v", st, want, within)
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

// TestEndpointCache_KeyIsNotTheArgument: the run path passes c.Params("slug"), which aliases
// fasthttp's request buffer and is overwritten by the connection's next request. The cache must
// not keep that string as its key: here its bytes change after the lookup, as they do when the
// buffer is reused, and the same slug must still be served from the cache.
func TestEndpointCache_KeyIsNotTheArgument(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	a := e.endpoint(map[string]any{"llm_provider": "demo", "slug": "alias-aaaa"})
	c := newEndpointCache(e.Store, time.Hour)
	loads := 0
	c.load = func(ctx context.Context, slug string) (*db.Endpoint, error) {
		loads++
		return e.Store.EndpointBySlug(ctx, slug)
	}
	buf := []byte(a.Slug())
	if _, err := c.bySlug(t.Context(), unsafe.String(&buf[0], len(buf))); err != nil {
		t.Fatal(err)
	}
	copy(buf, "alias-bbbb") // the connection's next request
	got, err := c.bySlug(t.Context(), "alias-aaaa")
	if err != nil {
		t.Fatal(err)
	}
	if loads != 1 || got.ID != a.ID() {
		t.Fatalf("second lookup: %d loads, endpoint %s; want 1 load (cached), endpoint %s", loads, got.ID, a.ID())
	}
}

// TestEndpointCache_NewKeyAtOnce: a key regenerated elsewhere (here: written to the database
// behind the cache's back, as another instance does) opens the endpoint at once: a key that
// does not match the cached copy is checked against the database before it is refused. A wrong
// key is still refused, and a key that matches the cached copy needs no database read.
func TestEndpointCache_NewKeyAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	ep := e.endpoint(map[string]any{"llm_provider": "demo"})
	c := newEndpointCache(e.Store, time.Hour)
	loads := 0
	c.load = func(ctx context.Context, slug string) (*db.Endpoint, error) {
		loads++
		return e.Store.EndpointBySlug(ctx, slug)
	}
	check := func(key string, wantOK bool, wantLoads int) {
		t.Helper()
		got, ok, err := c.forKey(t.Context(), ep.Slug(), key)
		if err != nil || ok != wantOK || got.ID != ep.ID() || loads != wantLoads {
			t.Fatalf("forKey(%.8s…): ok %v err %v loads %d; want ok %v, %d loads", key, ok, err, loads, wantOK, wantLoads)
		}
	}
	check(ep.APIKey, true, 1)
	check(ep.APIKey, true, 1) // cached

	stored, err := e.Store.Endpoint(t.Context(), e.User, ep.ID(), false)
	if err != nil {
		t.Fatal(err)
	}
	const newKey = "aek_0123456789abcdef0123456789abcdef"
	stored.APIKeyHash = hashKey(newKey)
	if err := e.Store.UpdateEndpoint(t.Context(), stored); err != nil {
		t.Fatal(err)
	}
	check(newKey, true, 2)     // the cached copy has the old hash: read again, and kept
	check(newKey, true, 2)     // cached now
	check(ep.APIKey, false, 3) // the old key: cached copy says no, so does the database
	check("", false, 3)        // no key: refused without a read
}
