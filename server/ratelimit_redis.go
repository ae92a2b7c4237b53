package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// gcraScript is the whole GCRA decision in one atomic step. The clock is Redis's own TIME, so
// replicas with skewed clocks still agree. The key holds the theoretical arrival time (TAT) in
// microseconds and expires when it is in the past (the budget is whole again).
//
// KEYS[1] the key; ARGV[1] the emission interval in µs; ARGV[2] the window in µs.
// Returns {allowed (0|1), now µs, tat µs (the new one when allowed), retry after µs}.
const gcraScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local newtat = tat + interval
local ahead = newtat - now
if ahead > window then
  return {0, now, tat, ahead - window}
end
redis.call('SET', KEYS[1], newtat, 'PX', math.ceil(ahead / 1000))
return {1, now, newtat, 0}
`

// redisLimiter is the GCRA limiter shared by every gateway replica through one Redis.
type redisLimiter struct {
	rdb    *redis.Client
	prefix string
	script *redis.Script
	once   sync.Once
	err    error
}

var _ Limiter = (*redisLimiter)(nil)

// redisCallTimeout bounds one limiter decision: a slow Redis must not stall every run.
const redisCallTimeout = 2 * time.Second

// newRedisLimiter connects lazily to the Redis at url (redis:// or rediss://); keys start with
// prefix. Timeouts not given in the URL are kept short: the limiter sits in front of every run.
func newRedisLimiter(url, prefix string) (*redisLimiter, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("server: redis url: %w", err)
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = time.Second
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = 500 * time.Millisecond
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = 500 * time.Millisecond
	}
	if opts.MaxRetries == 0 {
		opts.MaxRetries = 1
	}
	if opts.DialerRetries == 0 {
		opts.DialerRetries = 1
	}
	return &redisLimiter{rdb: redis.NewClient(opts), prefix: prefix, script: redis.NewScript(gcraScript)}, nil
}

// Allow implements Limiter.
func (r *redisLimiter) Allow(ctx context.Context, key string, limit int, window time.Duration) (Decision, error) {
	if limit < 1 {
		limit = 1
	}
	interval := window / time.Duration(limit)
	ctx, cancel := context.WithTimeout(ctx, redisCallTimeout)
	defer cancel()
	res, err := r.script.Run(ctx, r.rdb, []string{r.prefix + key},
		interval.Microseconds(), window.Microseconds()).Int64Slice()
	if err != nil {
		return Decision{Limit: limit}, fmt.Errorf("redis limiter: %w", err)
	}
	if len(res) != 4 {
		return Decision{Limit: limit}, errors.New("redis limiter: unexpected script answer")
	}
	now, tat := time.UnixMicro(res[1]), time.UnixMicro(res[2])
	return gcraDecision(res[0] == 1, now, tat, time.Duration(res[3])*time.Microsecond, limit, window), nil
}

// gcraDecision builds the Decision for a request decided at now; tat is the key's theoretical
// arrival time after the decision.
func gcraDecision(allowed bool, now, tat time.Time, retry time.Duration, limit int, window time.Duration) Decision {
	d := Decision{Allowed: allowed, Limit: limit, Reset: tat}
	if !allowed {
		d.RetryAfter = retry
		return d
	}
	interval := window / time.Duration(limit)
	d.Remaining = int((window - tat.Sub(now)) / interval)
	return d
}

// Close implements Limiter: it closes the connection pool. Idempotent.
func (r *redisLimiter) Close() error {
	r.once.Do(func() { r.err = r.rdb.Close() })
	return r.err
}

// newLimiter picks the limiter the config asks for: Redis when RedisURL is set, else nil (the
// in-memory one of this instance).
func newLimiter(cfg Config, log *slog.Logger) (Limiter, error) {
	if cfg.RedisURL == "" {
		return nil, nil
	}
	r, err := newRedisLimiter(cfg.RedisURL, cfg.RedisKeyPrefix)
	if err != nil {
		return nil, err
	}
	redisLogOnce.Do(func() { redis.SetLogger(redisLog{log}) })
	log.Info("rate limits shared through Redis", slog.String("addr", r.rdb.Options().Addr),
		slog.Bool("fail_open", cfg.RateLimitFailOpen))
	return r, nil
}

// redisLogOnce routes go-redis's own log lines (a process-wide setting) to the first limiter's
// logger, at debug level: an outage is already logged, once per refused decision, by limits.check.
var redisLogOnce sync.Once

// redisLog adapts slog to go-redis's logger.
type redisLog struct{ log *slog.Logger }

// Printf implements go-redis's internal.Logging.
func (l redisLog) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...), slog.String("component", "redis"))
}
