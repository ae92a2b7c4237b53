package server

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/agentgate/agentgate/db"
)

// endpointCache keeps endpoints looked up by slug for a short time (--endpoint-cache), so the
// run path does not read the database on every run: on PostgreSQL that lookup was a tenth of
// the gateway's CPU per run, plus a round trip. Every endpoint or workspace write through this
// instance clears it; another instance's write (a deleted endpoint, a regenerated key) is seen
// here as soon as its PostgreSQL notification arrives (endpointsChanged), and within the TTL
// at the latest (SQLite shared by several instances, a lost notification). Lookups that find
// nothing are not cached, so a new endpoint answers at once everywhere, and creating one needs
// no invalidation.
type endpointCache struct {
	ttl  time.Duration // 0: no caching
	load func(ctx context.Context, slug string) (*db.Endpoint, error)

	mu  sync.RWMutex
	m   map[string]cachedEndpoint // by slug
	gen uint64                    // bumped by clear: a lookup that raced a write is not kept
}

type cachedEndpoint struct {
	e       *db.Endpoint // never handed out: callers get copies
	expires time.Time
}

// maxCachedEndpoints bounds the cache; past it, it starts over.
const maxCachedEndpoints = 10_000

func newEndpointCache(store *db.Store, ttl time.Duration) *endpointCache {
	return &endpointCache{ttl: ttl, load: store.EndpointBySlug, m: make(map[string]cachedEndpoint)}
}

// bySlug returns a copy of the live endpoint with slug, from the cache when fresh; errors as
// db.Store.EndpointBySlug.
func (c *endpointCache) bySlug(ctx context.Context, slug string) (*db.Endpoint, error) {
	e, _, err := c.get(ctx, slug)
	return e, err
}

// forKey returns the live endpoint with slug and whether key opens it (always true for a
// public endpoint; key is "" when the caller sent none). A key that does not match a cached
// copy is checked once more against the database before it is refused: the copy may predate
// a key regenerated on another instance, whose new key then works everywhere at once (an old
// key is refused elsewhere when the change is announced, or within the TTL).
func (c *endpointCache) forKey(ctx context.Context, slug, key string) (*db.Endpoint, bool, error) {
	e, cached, err := c.get(ctx, slug)
	if err != nil {
		return nil, false, err
	}
	if e.AuthMode == "public" {
		return e, true, nil
	}
	if key == "" {
		return e, false, nil
	}
	if keyMatches(key, e.APIKeyHash) {
		return e, true, nil
	}
	if !cached {
		return e, false, nil
	}
	e, err = c.fetch(ctx, slug)
	if err != nil {
		return nil, false, err
	}
	return e, e.AuthMode == "public" || keyMatches(key, e.APIKeyHash), nil
}

// get is bySlug that also reports whether the endpoint came from the cache.
func (c *endpointCache) get(ctx context.Context, slug string) (*db.Endpoint, bool, error) {
	if c.ttl <= 0 {
		e, err := c.load(ctx, slug)
		return e, false, err
	}
	c.mu.RLock()
	ce, ok := c.m[slug]
	c.mu.RUnlock()
	if ok && time.Now().Before(ce.expires) {
		cp := *ce.e
		return &cp, true, nil
	}
	e, err := c.fetch(ctx, slug)
	return e, false, err
}

// fetch reads the endpoint from the database and keeps a copy, unless a write cleared the
// cache meanwhile (the copy may then be stale).
func (c *endpointCache) fetch(ctx context.Context, slug string) (*db.Endpoint, error) {
	if c.ttl <= 0 {
		return c.load(ctx, slug)
	}
	c.mu.RLock()
	gen := c.gen
	c.mu.RUnlock()
	e, err := c.load(ctx, slug)
	if err != nil {
		return nil, err
	}
	kept := *e
	c.mu.Lock()
	if c.gen == gen {
		if len(c.m) >= maxCachedEndpoints {
			clear(c.m)
		}
		// Keyed by the stored slug, never by the argument: that is usually c.Params("slug"),
		// which points into fasthttp's request buffer and changes with the connection's next
		// request. (A key that changed under the map gave one endpoint's record to another
		// slug: a 401 "invalid API key" for a valid key, once in a CI run.)
		c.m[kept.Slug] = cachedEndpoint{e: &kept, expires: time.Now().Add(c.ttl)}
	}
	c.mu.Unlock()
	return e, nil
}

// clear forgets every cached endpoint: called after any write to endpoints or workspaces.
func (c *endpointCache) clear() {
	c.mu.Lock()
	clear(c.m)
	c.gen++
	c.mu.Unlock()
}

// endpointsChanged is called after every write to endpoints or workspaces: this instance's
// cache is cleared at once, and other instances are told (PostgreSQL NOTIFY; they clear theirs
// when it arrives; on SQLite they rely on the TTL).
func (s *Server) endpointsChanged(ctx context.Context) {
	s.endpoints.clear()
	if err := s.store.NotifyEndpointsChanged(context.WithoutCancel(ctx)); err != nil {
		s.log.Warn("endpoint change not announced: other instances see it within --endpoint-cache", slog.Any("err", err))
	}
}
