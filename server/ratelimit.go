package server

import (
	"context"
	"log/slog"
	"math"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/agentgate/agentgate/db"
	"github.com/agentgate/agentgate/stream"
)

// Decision is a rate limiter's answer for one request.
type Decision struct {
	Allowed    bool
	Limit      int
	Remaining  int
	Reset      time.Time     // when the budget is whole again
	RetryAfter time.Duration // when refused: how long until one request would pass
}

// Limiter counts requests per key. Allow takes one request from key's budget of limit per
// window, smoothly (GCRA: no burst at window edges beyond limit). Safe for concurrent use; an
// error means the limiter's store failed (the caller decides to fail open or closed).
type Limiter interface {
	Allow(ctx context.Context, key string, limit int, window time.Duration) (Decision, error)
	Close() error
}

// memLimiter is the in-memory GCRA limiter of a single instance.
type memLimiter struct {
	mu   sync.Mutex
	tat  map[string]time.Time // theoretical arrival time per key
	now  func() time.Time     // the clock (tests set a fake one)
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

var _ Limiter = (*memLimiter)(nil)

func newMemLimiter() *memLimiter {
	m := &memLimiter{tat: make(map[string]time.Time), now: time.Now, stop: make(chan struct{}), done: make(chan struct{})}
	go m.janitor()
	return m
}

// Allow implements Limiter.
func (m *memLimiter) Allow(_ context.Context, key string, limit int, window time.Duration) (Decision, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	d, newTAT := gcra(now, m.tat[key], limit, window)
	if d.Allowed {
		m.tat[key] = newTAT
	}
	return d, nil
}

// gcra decides one request at now for a key whose theoretical arrival time is tat.
func gcra(now, tat time.Time, limit int, window time.Duration) (Decision, time.Time) {
	if limit < 1 {
		limit = 1
	}
	interval := window / time.Duration(limit)
	if tat.Before(now) {
		tat = now
	}
	newTAT := tat.Add(interval)
	d := Decision{Limit: limit}
	if ahead := newTAT.Sub(now); ahead > window {
		d.RetryAfter = ahead - window
		d.Reset = tat
		d.Remaining = 0
		return d, tat
	}
	d.Allowed = true
	d.Reset = newTAT
	d.Remaining = int((window - newTAT.Sub(now)) / interval)
	return d, newTAT
}

func (m *memLimiter) janitor() {
	defer close(m.done)
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.mu.Lock()
			now := m.now()
			for k, tat := range m.tat {
				if tat.Before(now) {
					delete(m.tat, k)
				}
			}
			m.mu.Unlock()
		}
	}
}

// Close implements Limiter.
func (m *memLimiter) Close() error {
	m.once.Do(func() { close(m.stop) })
	<-m.done
	return nil
}

// limits applies the gateway's rate limits to run requests.
type limits struct {
	cfg      Config
	lim      Limiter
	log      *slog.Logger
	failOpen bool
	trusted  []netip.Prefix // proxies whose X-Forwarded-For is believed
}

func newLimits(cfg Config, lim Limiter, log *slog.Logger, failOpen bool) *limits {
	if lim == nil {
		lim = newMemLimiter()
	}
	return &limits{cfg: cfg, lim: lim, log: log, failOpen: failOpen, trusted: parseTrusted(cfg.TrustedProxies)}
}

func (l *limits) close() { _ = l.lim.Close() }

// allowRun applies the per-endpoint limit and, for public endpoints, the per-IP limit.
func (l *limits) allowRun(c *fiber.Ctx, e *db.Endpoint) error {
	limit := l.cfg.RunsPerMinute
	if e.RateLimitPerMin != nil {
		limit = *e.RateLimitPerMin
	}
	d, err := l.check(c, "run:"+e.ID, limit)
	if err != nil {
		return err
	}
	if e.AuthMode == "public" {
		ipd, err := l.check(c, "ip:"+e.ID+":"+l.clientIP(c), l.cfg.PublicIPPerMinute)
		if err != nil {
			return err
		}
		if ipd.Remaining < d.Remaining {
			d = ipd
		}
	}
	setLimitHeaders(c, d)
	return nil
}

// allowTest applies the test route's per-endpoint limit.
func (l *limits) allowTest(c *fiber.Ctx, e *db.Endpoint) error {
	d, err := l.check(c, "test:"+e.ID, l.cfg.TestPerMinute)
	if err != nil {
		return err
	}
	setLimitHeaders(c, d)
	return nil
}

// check takes one request from key; a refusal sets the headers and returns the 429 error.
func (l *limits) check(c *fiber.Ctx, key string, limit int) (Decision, error) {
	d, err := l.lim.Allow(c.UserContext(), key, limit, time.Minute)
	if err != nil {
		l.log.Warn("rate limiter unavailable", slog.Bool("fail_open", l.failOpen), slog.Any("err", err))
		if l.failOpen {
			return Decision{Allowed: true, Limit: limit, Remaining: limit, Reset: time.Now()}, nil
		}
		return d, stream.Errorf(stream.CodeUnavailable, "rate limiter unavailable")
	}
	if !d.Allowed {
		setLimitHeaders(c, d)
		secs := int(math.Ceil(d.RetryAfter.Seconds()))
		if secs < 1 {
			secs = 1
		}
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(secs))
		return d, stream.Errorf(stream.CodeRateLimited, "Rate limit exceeded. Try again in %d seconds.", secs)
	}
	return d, nil
}

func setLimitHeaders(c *fiber.Ctx, d Decision) {
	c.Set("X-RateLimit-Limit", strconv.Itoa(d.Limit))
	c.Set("X-RateLimit-Remaining", strconv.Itoa(d.Remaining))
	c.Set("X-RateLimit-Reset", strconv.FormatInt(int64(math.Ceil(float64(d.Reset.UnixNano())/1e9)), 10))
}
