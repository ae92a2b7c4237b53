package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/agentgate/agentgate/agent"
)

// replica starts a second gateway over e's store and scripted LLM, as a replica behind a load
// balancer would be; opts apply to its config. Its Token and User are e's.
func (e *testEnv) replica(opts ...envOption) *testEnv {
	e.tb.Helper()
	cfg := DefaultConfig()
	cfg.JWTSecret = []byte("test-secret-test-secret-test-secret")
	cfg.AllowPrivateEgress = true
	cfg.DemoPace = 0
	cfg.ModelOptions.DemoPace = 0
	cfg.Providers = agent.DefaultProviders()
	p := cfg.Providers["openai"]
	p.BaseURL, p.APIKey = e.LLM.URL(), "sk-test"
	cfg.Providers["openai"] = p
	cfg.DrainTimeout = 5 * time.Second
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := New(cfg, e.Store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		e.tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.tb.Fatal(err)
	}
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve(ln) }()
	e.tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-served
	})
	return &testEnv{tb: e.tb, kind: e.kind, Store: e.Store, Srv: srv, URL: "http://" + ln.Addr().String(),
		LLM: e.LLM, Token: e.Token, User: e.User}
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		tb.Fatal(err)
	}
	return "redis://" + addr + "/0"
}

// withRedis points the gateway's limiter at url with key prefix.
func withRedis(url, prefix string, failOpen bool) envOption {
	return func(c *Config) {
		c.RedisURL, c.RedisKeyPrefix, c.RateLimitFailOpen = url, prefix, failOpen
	}
}
