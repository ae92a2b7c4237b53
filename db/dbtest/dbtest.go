// Package dbtest opens real, throwaway db.Store instances for tests of any
// package: SQLite in a temporary directory, and PostgreSQL in a fresh schema
// that is dropped when the test ends. It owns nothing else and imports only
// db and libraries.
//
// The PostgreSQL server is taken from AGENTGATE_TEST_POSTGRES, else
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable (then the same as
// user root). When none answers, the "postgres" kind is skipped, unless
// CI=true, where that is a test failure.
package dbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/agentgate/agentgate/db"
	_ "github.com/lib/pq" // the "postgres" driver for schema setup
)

// Kinds of database Open accepts.
const (
	// SQLite is a Store on a file in tb.TempDir().
	SQLite = db.DialectSQLite
	// Postgres is a Store in a fresh schema of the test PostgreSQL.
	Postgres = db.DialectPostgres
)

// EnvPostgres names the variable holding the PostgreSQL URL for tests.
const EnvPostgres = "AGENTGATE_TEST_POSTGRES"

// defaultDSNs are tried in order when EnvPostgres is unset (trust auth).
var defaultDSNs = []string{
	"postgres://postgres@127.0.0.1:5432/test?sslmode=disable",
	"postgres://root@127.0.0.1:5432/test?sslmode=disable",
}

var probe struct {
	once sync.Once
	dsn  string // "" = unreachable
	err  error
}

// postgresDSN returns a reachable PostgreSQL URL, probing once per process.
func postgresDSN() (string, error) {
	probe.once.Do(func() {
		cands := defaultDSNs
		if v := os.Getenv(EnvPostgres); v != "" {
			cands = []string{v}
		}
		for _, dsn := range cands {
			if err := ping(dsn); err != nil {
				probe.err = err
				continue
			}
			probe.dsn, probe.err = dsn, nil
			return
		}
	})
	return probe.dsn, probe.err
}

func ping(dsn string) error {
	d, err := sql.Open("postgres", dsn)
	if err != nil {
		return err
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return d.PingContext(ctx)
}

// Kinds returns the database kinds available to this test run: always
// "sqlite", plus "postgres" when it is reachable (required when CI=true).
func Kinds(tb testing.TB) []string {
	tb.Helper()
	kinds := []string{SQLite}
	if _, err := postgresDSN(); err == nil {
		kinds = append(kinds, Postgres)
	} else if os.Getenv("CI") == "true" {
		tb.Fatalf("dbtest: PostgreSQL unreachable with CI=true (set %s): %v", EnvPostgres, err)
	}
	return kinds
}

// SecretKey is the AES key every Store opened by Open uses.
var SecretKey = []byte("agentgate-dbtest-secret-key-32b!")

// Open returns a migrated, empty Store of the given kind that lives until
// the test ends. For "postgres" it skips the test when PostgreSQL is
// unreachable (fails when CI=true).
func Open(tb testing.TB, kind string) *db.Store {
	tb.Helper()
	return OpenWith(tb, kind, db.Options{})
}

// OpenWith is Open with options (Logger, MaxOpenConns, SecretKey); URL and
// DataDir are chosen by dbtest and a nil SecretKey becomes SecretKey. To test
// a Store without a key, call db.Open directly.
func OpenWith(tb testing.TB, kind string, opts db.Options) *db.Store {
	tb.Helper()
	if opts.SecretKey == nil {
		opts.SecretKey = SecretKey
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	switch kind {
	case SQLite:
		opts.URL, opts.DataDir = "", tb.TempDir()
	case Postgres:
		url, cleanup := Schema(tb)
		opts.URL = url
		if opts.MaxOpenConns == 0 {
			opts.MaxOpenConns = 8
		}
		s, err := db.Open(ctx, opts)
		if err != nil {
			cleanup()
			tb.Fatalf("dbtest: open postgres: %v", err)
		}
		// Cleanups run last-in first-out: close the pool, then drop the schema.
		tb.Cleanup(cleanup)
		tb.Cleanup(func() { _ = s.Close() })
		return s
	default:
		tb.Fatalf("dbtest: unknown kind %q (want %q or %q)", kind, SQLite, Postgres)
	}
	s, err := db.Open(ctx, opts)
	if err != nil {
		tb.Fatalf("dbtest: open %s: %v", kind, err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// Schema creates a fresh PostgreSQL schema and returns a URL whose
// search_path is that schema, plus a function that drops it (Schema does not
// register it: the caller orders it after closing its own pools). It skips
// the test when PostgreSQL is unreachable (fails when CI=true).
func Schema(tb testing.TB) (string, func()) {
	tb.Helper()
	base, err := postgresDSN()
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("dbtest: PostgreSQL unreachable with CI=true (set %s): %v", EnvPostgres, err)
		}
		tb.Skipf("dbtest: PostgreSQL unreachable: %v", err)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	if err := admin(base, `CREATE SCHEMA `+schema); err != nil {
		tb.Fatalf("dbtest: create schema: %v", err)
	}
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("dbtest: parse %s: %v", EnvPostgres, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	// Throwaway data: skip the commit fsync (locking semantics are unchanged).
	q.Set("synchronous_commit", "off")
	u.RawQuery = q.Encode()
	drop := func() {
		if err := admin(base, `DROP SCHEMA IF EXISTS `+schema+` CASCADE`); err != nil {
			tb.Errorf("dbtest: drop schema %s: %v", schema, err)
		}
	}
	return u.String(), drop
}

// admin runs one statement on a short-lived connection, so no pool (and no
// pool goroutine) outlives the test.
func admin(dsn, stmt string) error {
	d, err := sql.Open("postgres", dsn)
	if err != nil {
		return err
	}
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = d.ExecContext(ctx, stmt)
	return err
}
