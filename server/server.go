// Package server is the HTTP face of agentgate: the Fiber app, its route table, auth, limits,
// the run lifecycle (runner) and the SSE handlers. It is the hub of the dependency star: it
// imports agent, tools, stream, db and web, and nothing imports it but main.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/agentgate/agentgate/agent"
	"github.com/agentgate/agentgate/db"
	"github.com/agentgate/agentgate/stream"
	"github.com/agentgate/agentgate/tools"
)

// Config is every server setting. main fills it from DefaultConfig, the environment and flags.
type Config struct {
	JWTSecret          []byte
	JWTTTL             time.Duration
	AllowPrivateEgress bool
	BillingMode        string // postpaid | prepaid
	AdminToken         string
	BodyLimit          int // bytes
	Heartbeat          time.Duration
	RetryMs            int // the SSE retry: field
	RunsPerMinute      int // per endpoint
	PublicIPPerMinute  int // per client IP, public endpoints
	TestPerMinute      int // per endpoint, the test route
	TrustedProxies     []string
	Providers          map[string]agent.Provider
	Prices             agent.Prices
	DemoPace           time.Duration
	ToolTimeout        time.Duration
	ToolListTTL        time.Duration
	EndpointCacheTTL   time.Duration // how long a run-path endpoint lookup is reused; 0: never
	EventRetention     time.Duration
	HubLinger          time.Duration // how long a finished run's events stay in memory (0: the hub's default)
	DrainTimeout       time.Duration
	FollowPoll         time.Duration // how often a stream of another instance's run polls the event log
	OperatorServers    []tools.ServerConfig
	RedisURL           string // empty: in-memory rate limits
	RateLimitFailOpen  bool   // a Redis outage lets requests through (logged)
	RedisKeyPrefix     string // rate-limit keys in Redis start with it
	// ModelOptions tunes the shared upstream HTTP client.
	ModelOptions agent.ModelOptions
}

// DefaultConfig returns the defaults of every server setting (SPEC §10).
func DefaultConfig() Config {
	return Config{
		JWTTTL:            24 * time.Hour,
		BillingMode:       "postpaid",
		BodyLimit:         1 << 20,
		Heartbeat:         15 * time.Second,
		RetryMs:           3000,
		RunsPerMinute:     60,
		PublicIPPerMinute: 20,
		TestPerMinute:     10,
		Providers:         agent.DefaultProviders(),
		Prices:            agent.DefaultPrices(),
		DemoPace:          40 * time.Millisecond,
		ToolTimeout:       30 * time.Second,
		ToolListTTL:       5 * time.Minute,
		EndpointCacheTTL:  time.Second,
		EventRetention:    24 * time.Hour,
		DrainTimeout:      10 * time.Second,
		FollowPoll:        500 * time.Millisecond,
		RateLimitFailOpen: true,
		RedisKeyPrefix:    "agentgate:rl:",
	}
}

// errShutdown is the cause given to runs and streams still open when the drain period ends.
var errShutdown = stream.Errorf(stream.CodeUnavailable, "server shutting down")

// Server is one gateway instance.
type Server struct {
	cfg    Config
	store  *db.Store
	log    *slog.Logger
	app    *fiber.App
	models *agent.Models
	tools  *tools.Manager
	runner *runner
	limits *limits
	// metrics is the Prometheus registry behind GET /metrics (metrics.go).
	metrics *metrics
	follow  *follower
	// endpoints caches the run path's endpoint lookups (endpointcache.go).
	endpoints *endpointCache

	// ctx is the base of every run and stream; cancelled (with errShutdown) before Fiber's
	// Shutdown, so open streams end and shutdown cannot hang.
	ctx      context.Context
	cancel   context.CancelCauseFunc
	draining atomic.Bool
	// openStreams counts SSE responses being written.
	openStreams atomic.Int64
	// hijacked counts streams written on hijacked connections (hijack.go), which fasthttp's
	// shutdown does not wait for.
	hijacked activeCount
	// kept are idle connections given back to fasthttp after their stream (hijack.go).
	kept keptConns
	// hangups watches open streams' connections for clients that left (hangups.go).
	hangups  hangups
	closing  sync.Once
	closeErr error
	// unpriced remembers models without a price, so the log says so once per model.
	unpriced sync.Map
}

// New builds a server over an open store. Call Serve, then Shutdown.
func New(cfg Config, store *db.Store, log *slog.Logger) (*Server, error) {
	if len(cfg.JWTSecret) < 16 {
		return nil, errors.New("server: JWT secret must be at least 16 bytes")
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Server{cfg: cfg, store: store, log: log, endpoints: newEndpointCache(store, cfg.EndpointCacheTTL)}
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	s.models = agent.NewModels(cfg.Providers, cfg.ModelOptions)
	s.tools = tools.NewManager(tools.Options{
		ToolTimeout: cfg.ToolTimeout, ListTTL: cfg.ToolListTTL, AllowPrivate: cfg.AllowPrivateEgress,
		Logger: log, ClientName: "agentgate", ClientVersion: Version,
	})
	lim, err := newLimiter(cfg, log)
	if err != nil {
		return nil, err
	}
	s.limits = newLimits(cfg, lim, log, cfg.RateLimitFailOpen)
	s.runner = newRunner(s.ctx, store, log, cfg.EventRetention, cfg.HubLinger)
	s.metrics = newMetrics(s)
	s.runner.rlog.observe = s.metrics.runLogBatch // set before any request can queue a record
	s.follow = newFollower(s.ctx, store, log, cfg.FollowPoll, s.endpoints.clear)
	s.finishInterrupted()
	s.app = fiber.New(fiber.Config{
		AppName: "agentgate",
		// fasthttp drops the connection on a body over its limit, so a client still sending
		// never sees an answer. Read bodies up to a larger hard cap and answer 413 cleanly
		// for anything over the configured limit (checkBodyLimit).
		BodyLimit:             hardBodyLimit(cfg.BodyLimit),
		ErrorHandler:          s.errorHandler,
		DisableStartupMessage: true,
		ReadTimeout:           60 * time.Second,
		IdleTimeout:           120 * time.Second,
		// Streams are long-lived: no WriteTimeout, the heartbeat and the disconnect watcher
		// bound a dead client instead.
		// An open stream or an idle keep-alive connection then holds no read buffer, and no
		// write buffer between responses (a pool round trip per request), and an open stream's
		// write buffer is 1 KiB, not 4: SSE frames are small, a larger frame costs a syscall
		// or two more, and JSON answers larger than the buffer go out with one writev. Together
		// about 7 KiB less per open stream (bench/, scenario 3).
		ReduceMemoryUsage:       true,
		WriteBufferSize:         1 << 10,
		EnableTrustedProxyCheck: len(cfg.TrustedProxies) > 0,
		TrustedProxies:          cfg.TrustedProxies,
		ProxyHeader:             proxyHeader(cfg.TrustedProxies),
	})
	// Streams are written on hijacked connections, which are then given back (hijack.go).
	s.app.Server().KeepHijackedConns = true
	// fasthttp's worker goroutines now serve short requests only (a stream leaves its worker at
	// once), so a burst of new streams leaves many idle workers, each with an 8 KiB stack:
	// 1,500 of them 2 s after opening 10,000 streams. Let them go after 1 s, not 10.
	s.app.Server().MaxIdleWorkerDuration = time.Second
	s.routes()
	return s, nil
}

func hardBodyLimit(limit int) int {
	return max(4*limit, 8<<20)
}

// checkBodyLimit answers 413 PAYLOAD_TOO_LARGE for a body over the configured limit.
func (s *Server) checkBodyLimit(c *fiber.Ctx) error {
	if len(c.Body()) > s.cfg.BodyLimit {
		return stream.Errorf(stream.CodePayloadTooLarge, "request body is larger than %d bytes", s.cfg.BodyLimit)
	}
	return c.Next()
}

func proxyHeader(trusted []string) string {
	if len(trusted) > 0 {
		return fiber.HeaderXForwardedFor
	}
	return ""
}

// Version is the build's version, set by main.
var Version = "dev"

// App exposes the Fiber app (tests use app.Test for JSON routes).
func (s *Server) App() *fiber.App { return s.app }

// Serve accepts connections on ln until Shutdown.
func (s *Server) Serve(ln net.Listener) error { return s.app.Listener(ln) }

// Shutdown stops accepting connections, lets running runs finish for the drain period,
// cancels the rest (their streams get an UNAVAILABLE error event), then closes the server,
// flushes the run log and closes tool sessions. The store stays open (main owns it).
// Idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Do(func() {
		s.draining.Store(true)
		s.kept.closeAll()
		// Fiber's shutdown closes the listener at once and then waits for open connections;
		// run it beside the drain so no new connection is accepted meanwhile.
		shut := make(chan error, 1)
		go func() { shut <- s.app.ShutdownWithContext(ctx) }()

		drain, cancel := context.WithTimeout(ctx, s.cfg.DrainTimeout)
		s.runner.wait(drain)
		cancel()
		s.cancel(errShutdown)
		s.runner.wait(ctx)
		s.hijacked.wait(ctx.Done()) // every stream has written its terminal event

		select {
		case err := <-shut:
			if err != nil && !errors.Is(err, context.Canceled) {
				s.closeErr = err
			}
		case <-ctx.Done():
			s.closeErr = ctx.Err()
		}
		if err := s.runner.close(ctx); err != nil && s.closeErr == nil {
			s.closeErr = err
		}
		s.finishLeftovers()
		s.follow.close()
		if err := s.tools.Close(); err != nil && s.closeErr == nil {
			s.closeErr = err
		}
		s.limits.close()
	})
	return s.closeErr
}
