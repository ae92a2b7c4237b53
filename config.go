package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/agentgate/agentgate/server"
)

// Config is every setting of the agentgate binary. DefaultConfig holds every default; the
// environment overrides it and flags override both (SPEC §10). The README's configuration
// table lists each one.
type Config struct {
	Addr               string
	DataDir            string
	DatabaseURL        string
	JWTSecret          string
	SecretKey          string
	AllowPrivateEgress bool
	BillingMode        string
	RedisURL           string
	RateLimitFailOpen  bool
	AdminToken         string
	ConfigFile         string
	LogFormat          string
	LogLevel           string
	PprofAddr          string
	Heartbeat          time.Duration
	DrainTimeout       time.Duration
	ToolTimeout        time.Duration
	EventRetention     time.Duration
	FollowPoll         time.Duration
	EndpointCache      time.Duration
	DemoPace           time.Duration
	BodyLimit          int
	RunsPerMinute      int
	PublicIPPerMinute  int
	TestPerMinute      int
	TrustedProxies     string
}

// DefaultConfig returns the defaults of every setting.
func DefaultConfig() Config {
	sd := server.DefaultConfig()
	return Config{
		Addr:              "127.0.0.1:8080",
		DataDir:           "./data",
		BillingMode:       sd.BillingMode,
		RateLimitFailOpen: true,
		LogFormat:         "json",
		LogLevel:          "info",
		Heartbeat:         sd.Heartbeat,
		DrainTimeout:      sd.DrainTimeout,
		ToolTimeout:       sd.ToolTimeout,
		EventRetention:    sd.EventRetention,
		FollowPoll:        sd.FollowPoll,
		EndpointCache:     sd.EndpointCacheTTL,
		DemoPace:          sd.DemoPace,
		BodyLimit:         sd.BodyLimit,
		RunsPerMinute:     sd.RunsPerMinute,
		PublicIPPerMinute: sd.PublicIPPerMinute,
		TestPerMinute:     sd.TestPerMinute,
	}
}

// setting binds one Config field to its flag and environment variable.
type setting struct {
	flag, env, usage string
	bind             func(fs *flag.FlagSet, name, usage string)
	fromEnv          func(string) error
}

// settings lists every setting; storage settings are shared by every command.
func (c *Config) settings(storageOnly bool) []setting {
	str := func(p *string, flagName, env, usage string) setting {
		return setting{flagName, env, usage,
			func(fs *flag.FlagSet, n, u string) { fs.StringVar(p, n, *p, u) },
			func(v string) error { *p = v; return nil }}
	}
	boolean := func(p *bool, flagName, env, usage string) setting {
		return setting{flagName, env, usage,
			func(fs *flag.FlagSet, n, u string) { fs.BoolVar(p, n, *p, u) },
			func(v string) error {
				b, err := strconv.ParseBool(v)
				if err != nil {
					return fmt.Errorf("%s: want true or false, got %q", env, v)
				}
				*p = b
				return nil
			}}
	}
	dur := func(p *time.Duration, flagName, env, usage string) setting {
		return setting{flagName, env, usage,
			func(fs *flag.FlagSet, n, u string) { fs.DurationVar(p, n, *p, u) },
			func(v string) error {
				d, err := time.ParseDuration(v)
				if err != nil {
					return fmt.Errorf("%s: want a duration like 15s, got %q", env, v)
				}
				*p = d
				return nil
			}}
	}
	integer := func(p *int, flagName, env, usage string) setting {
		return setting{flagName, env, usage,
			func(fs *flag.FlagSet, n, u string) { fs.IntVar(p, n, *p, u) },
			func(v string) error {
				n, err := strconv.Atoi(v)
				if err != nil {
					return fmt.Errorf("%s: want an integer, got %q", env, v)
				}
				*p = n
				return nil
			}}
	}
	s := []setting{
		str(&c.DataDir, "data", "AGENTGATE_DATA", "data directory (SQLite file, generated secrets)"),
		str(&c.DatabaseURL, "database-url", "DATABASE_URL", "postgres:// URL; empty → SQLite in the data directory"),
		str(&c.SecretKey, "secret-key", "AGENTGATE_SECRET_KEY", "64 hex chars (AES-256) for secrets at rest; empty → generated into the data directory"),
		str(&c.LogFormat, "log-format", "AGENTGATE_LOG_FORMAT", "json or text"),
		str(&c.LogLevel, "log-level", "AGENTGATE_LOG_LEVEL", "debug, info, warn or error"),
	}
	if storageOnly {
		return s
	}
	return append(s,
		str(&c.Addr, "addr", "AGENTGATE_ADDR", "listen address"),
		str(&c.JWTSecret, "jwt-secret", "AGENTGATE_JWT_SECRET", "JWT signing secret; empty → generated into the data directory"),
		boolean(&c.AllowPrivateEgress, "allow-private-egress", "AGENTGATE_ALLOW_PRIVATE_EGRESS", "allow MCP URLs on loopback and private ranges"),
		str(&c.BillingMode, "billing-mode", "AGENTGATE_BILLING_MODE", "postpaid or prepaid"),
		str(&c.RedisURL, "redis-url", "AGENTGATE_REDIS_URL", "redis:// URL for shared rate limits; empty → in memory"),
		boolean(&c.RateLimitFailOpen, "rate-limit-fail-open", "AGENTGATE_RATE_LIMIT_FAIL_OPEN", "allow requests when the Redis limiter is down"),
		str(&c.AdminToken, "admin-token", "AGENTGATE_ADMIN_TOKEN", "bearer token for operator HTTP routes; empty → off"),
		str(&c.ConfigFile, "config", "AGENTGATE_CONFIG", "JSON file: providers, prices, stdio MCP servers"),
		str(&c.PprofAddr, "pprof-addr", "AGENTGATE_PPROF_ADDR", "listen address for pprof; empty → off"),
		dur(&c.Heartbeat, "heartbeat", "AGENTGATE_HEARTBEAT", "SSE ': ping' interval"),
		dur(&c.DrainTimeout, "drain-timeout", "AGENTGATE_DRAIN_TIMEOUT", "how long shutdown lets runs finish"),
		dur(&c.ToolTimeout, "tool-timeout", "AGENTGATE_TOOL_TIMEOUT", "timeout of one MCP tool call"),
		dur(&c.EventRetention, "event-retention", "AGENTGATE_EVENT_RETENTION", "how long async runs' events are kept for resume"),
		dur(&c.FollowPoll, "follow-poll", "AGENTGATE_FOLLOW_POLL", "how often a stream of another replica's run polls the event log (PostgreSQL: notifications, polling ×10 as a safety net)"),
		dur(&c.EndpointCache, "endpoint-cache", "AGENTGATE_ENDPOINT_CACHE", "how long the run path reuses an endpoint read from the database (another replica's change is seen within it); 0 → read every run"),
		dur(&c.DemoPace, "demo-pace", "AGENTGATE_DEMO_PACE", "the demo model's pause between words"),
		integer(&c.BodyLimit, "body-limit", "AGENTGATE_BODY_LIMIT", "largest request body in bytes"),
		integer(&c.RunsPerMinute, "runs-per-minute", "AGENTGATE_RUNS_PER_MINUTE", "runs per minute per endpoint"),
		integer(&c.PublicIPPerMinute, "public-ip-per-minute", "AGENTGATE_PUBLIC_IP_PER_MINUTE", "runs per minute per client IP on public endpoints"),
		integer(&c.TestPerMinute, "test-per-minute", "AGENTGATE_TEST_PER_MINUTE", "test-route runs per minute per endpoint"),
		str(&c.TrustedProxies, "trusted-proxies", "AGENTGATE_TRUSTED_PROXIES", "comma-separated proxy IPs/CIDRs whose X-Forwarded-For is believed"),
	)
}

// parse layers the environment, then flags, over c.
func (c *Config) parse(name string, args []string, getenv func(string) string, storageOnly bool, extra func(*flag.FlagSet)) ([]string, error) {
	fs := flag.NewFlagSet("agentgate "+name, flag.ContinueOnError)
	for _, s := range c.settings(storageOnly) {
		if v := getenv(s.env); v != "" {
			if err := s.fromEnv(v); err != nil {
				return nil, err
			}
		}
		usage := s.usage
		if s.env != "" {
			usage += " ($" + s.env + ")"
		}
		s.bind(fs, s.flag, usage)
	}
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return fs.Args(), nil
}

// serverConfig builds the server's Config from c, the environment and the config file.
func (c *Config) serverConfig(getenv func(string) string, jwtSecret []byte) (server.Config, error) {
	sc := server.DefaultConfig()
	sc.JWTSecret = jwtSecret
	sc.AllowPrivateEgress = c.AllowPrivateEgress
	switch c.BillingMode {
	case "postpaid", "prepaid":
		sc.BillingMode = c.BillingMode
	default:
		return sc, fmt.Errorf("billing mode must be postpaid or prepaid, got %q", c.BillingMode)
	}
	sc.AdminToken = c.AdminToken
	sc.Heartbeat, sc.DrainTimeout, sc.ToolTimeout = c.Heartbeat, c.DrainTimeout, c.ToolTimeout
	sc.EventRetention, sc.DemoPace, sc.BodyLimit = c.EventRetention, c.DemoPace, c.BodyLimit
	sc.RunsPerMinute, sc.PublicIPPerMinute, sc.TestPerMinute = c.RunsPerMinute, c.PublicIPPerMinute, c.TestPerMinute
	sc.ModelOptions.DemoPace = c.DemoPace
	sc.FollowPoll = c.FollowPoll
	sc.EndpointCacheTTL = c.EndpointCache
	if sc.EndpointCacheTTL < 0 {
		return sc, errors.New("endpoint cache must not be negative")
	}
	sc.RedisURL, sc.RateLimitFailOpen = c.RedisURL, c.RateLimitFailOpen
	if sc.Heartbeat <= 0 || sc.BodyLimit <= 0 || sc.RunsPerMinute <= 0 || sc.PublicIPPerMinute <= 0 || sc.TestPerMinute <= 0 {
		return sc, errors.New("heartbeat, body limit and rate limits must be positive")
	}
	for _, p := range strings.Split(c.TrustedProxies, ",") {
		if p = strings.TrimSpace(p); p != "" {
			sc.TrustedProxies = append(sc.TrustedProxies, p)
		}
	}
	sc.ApplyEnvironment(getenv)
	if c.ConfigFile != "" {
		if err := sc.ApplyConfigFile(c.ConfigFile); err != nil {
			return sc, err
		}
	}
	return sc, nil
}

// loadOrCreateSecret returns the secret in value, or the one kept in dataDir/name, creating it
// (n random bytes, hex) on first use.
func loadOrCreateSecret(value, dataDir, name string, n int) ([]byte, error) {
	if value != "" {
		return []byte(value), nil
	}
	path := filepath.Join(dataDir, name)
	if b, err := os.ReadFile(path); err == nil {
		return []byte(strings.TrimSpace(string(b))), nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		return nil, err
	}
	secret := hex.EncodeToString(buf)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return loadOrCreateSecret("", dataDir, name, n) // another process won the race
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.WriteString(secret + "\n"); err != nil {
		return nil, err
	}
	return []byte(secret), nil
}

// secretKey returns the 32-byte AES key for secrets at rest.
func (c *Config) secretKey() ([]byte, error) {
	hexKey, err := loadOrCreateSecret(c.SecretKey, c.DataDir, "secret.key", 32)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	key, err := hex.DecodeString(string(hexKey))
	if err != nil || len(key) != 32 {
		return nil, errors.New("secret key must be 64 hex characters (32 bytes)")
	}
	return key, nil
}
