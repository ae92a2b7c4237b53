package db_test

import (
	"context"
	"errors"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/agentgate/agentgate/db"
	"github.com/agentgate/agentgate/db/dbtest"
)

func TestNewID(t *testing.T) {
	t.Parallel()
	re := regexp.MustCompile(`^run_[0-9a-f]{18}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := db.NewID("run_")
		if !re.MatchString(id) {
			t.Fatalf("NewID = %q, want run_ + 18 lowercase hex", id)
		}
		if seen[id] {
			t.Fatalf("NewID repeated %q", id)
		}
		seen[id] = true
	}
}

func TestSlugify(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("ab", 40)
	tests := []struct{ in, want string }{
		{"My Agent", "my-agent"},
		{"  Hello,   World!! ", "hello-world"},
		{"Ünïcödé", "n-c-d"},
		{"---", "fallback"},
		{"", "fallback"},
		{"a_b.c", "a-b-c"},
		{long, long[:60]},
		{strings.Repeat("a", 59) + " b", strings.Repeat("a", 59)},
	}
	re := regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,59}$`)
	for _, tt := range tests {
		got := db.Slugify(tt.in, "fallback")
		if got != tt.want {
			t.Errorf("Slugify(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if !re.MatchString(got) {
			t.Errorf("Slugify(%q) = %q breaks the slug rule", tt.in, got)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts db.Options
		want string
	}{
		{"unknown scheme", db.Options{URL: "mysql://u:hunter2@h/db"}, "unsupported database URL"},
		{"no data dir", db.Options{}, "data directory is empty"},
		{"short key", db.Options{DataDir: t.TempDir(), SecretKey: []byte("short")}, "32 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := db.Open(ctxOf(t), tt.opts)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded, want error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open error = %q, want it to mention %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("Open error leaks the password: %q", err)
			}
		})
	}
}

func TestStoreBasics(t *testing.T) {
	eachKind(t, func(t *testing.T, s *db.Store) {
		ctx := ctxOf(t)
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
		kinds := map[string]bool{db.DialectSQLite: true, db.DialectPostgres: true}
		if !kinds[s.Dialect()] {
			t.Fatalf("Dialect = %q", s.Dialect())
		}
	})
}

func TestCloseIdempotent(t *testing.T) {
	t.Parallel()
	s, err := db.Open(ctxOf(t), db.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Ping(ctxOf(t)); err == nil {
		t.Fatal("Ping after Close succeeded")
	}
}

func migrationFiles(t *testing.T) int64 {
	t.Helper()
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no migrations found: %v", err)
	}
	return int64(len(files))
}

func TestMigrateTwiceIsNoop(t *testing.T) {
	want := migrationFiles(t)
	eachKind(t, func(t *testing.T, s *db.Store) {
		ctx := ctxOf(t)
		u := mustUser(t, s, "keep@example.com")
		for i := range 2 {
			applied, err := db.Migrate(ctx, s)
			if err != nil {
				t.Fatalf("Migrate #%d: %v", i, err)
			}
			if len(applied) != 0 {
				t.Fatalf("Migrate #%d applied %v on a current schema", i, applied)
			}
		}
		if n := rawInt(t, s, `SELECT COUNT(*) FROM schema_migrations`); n != want {
			t.Fatalf("schema_migrations has %d rows, want %d", n, want)
		}
		if _, err := s.UserByID(ctx, u.ID); err != nil {
			t.Fatalf("data lost after re-migrate: %v", err)
		}
	})
}

func TestSQLiteReopenKeepsData(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := ctxOf(t)
	s1, err := db.Open(ctx, db.Options{DataDir: dir, SecretKey: dbtest.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	u := mustUser(t, s1, "persist@example.com")
	must(t, s1.Close(), "close")

	s2, err := db.Open(ctx, db.Options{DataDir: dir, SecretKey: dbtest.SecretKey})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s2.Close()
	if _, err := s2.UserByID(ctx, u.ID); err != nil {
		t.Fatalf("user lost after reopen: %v", err)
	}
	if n := rawInt(t, s2, `SELECT COUNT(*) FROM schema_migrations`); n != migrationFiles(t) {
		t.Fatalf("schema_migrations has %d rows after reopen", n)
	}
	if mode := rawString(t, s2, `PRAGMA journal_mode`); mode != "wal" {
		t.Fatalf("journal_mode = %q, want wal", mode)
	}
}

// Several processes opening the same fresh PostgreSQL schema at once must
// apply each migration exactly once (advisory lock).
func TestPostgresConcurrentMigrate(t *testing.T) {
	t.Parallel()
	url, drop := dbtest.Schema(t)
	t.Cleanup(drop)
	const n = 4
	stores := make([]*db.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			stores[i], errs[i] = db.Open(context.Background(), db.Options{URL: url, MaxOpenConns: 2})
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Open #%d: %v", i, errs[i])
		}
		defer stores[i].Close()
	}
	if got := rawInt(t, stores[0], `SELECT COUNT(*) FROM schema_migrations`); got != migrationFiles(t) {
		t.Fatalf("schema_migrations has %d rows, want %d", got, migrationFiles(t))
	}
}

func TestNoSecretKey(t *testing.T) {
	t.Parallel()
	ctx := ctxOf(t)
	s, err := db.Open(ctx, db.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u := mustUser(t, s, "nokey@example.com")
	e := newEndpoint(u.ID, "Keyless", "keyless")
	must(t, s.CreateEndpoint(ctx, e), "endpoint without a secret")

	e2 := newEndpoint(u.ID, "Secret", "secret")
	e2.LLMAPIKey = "sk-plain"
	if err := s.CreateEndpoint(ctx, e2); !errors.Is(err, db.ErrNoSecretKey) {
		t.Fatalf("CreateEndpoint with a secret and no key = %v, want ErrNoSecretKey", err)
	}
	w := mustWorkspace(t, s, u.ID, "ws")
	err = s.CreateMCPServer(ctx, &db.MCPServer{WorkspaceID: w.ID, Name: "x", Transport: "sse", URL: "http://x",
		Headers: map[string]string{"Authorization": "Bearer t"}})
	if !errors.Is(err, db.ErrNoSecretKey) {
		t.Fatalf("CreateMCPServer with headers and no key = %v, want ErrNoSecretKey", err)
	}
}

func TestWrongSecretKeyCannotRead(t *testing.T) {
	t.Parallel()
	ctx := ctxOf(t)
	dir := t.TempDir()
	s1, err := db.Open(ctx, db.Options{DataDir: dir, SecretKey: dbtest.SecretKey})
	if err != nil {
		t.Fatal(err)
	}
	u := mustUser(t, s1, "k@example.com")
	e := newEndpoint(u.ID, "E", "e")
	e.LLMAPIKey = "sk-123"
	must(t, s1.CreateEndpoint(ctx, e), "create")
	must(t, s1.Close(), "close")

	s2, err := db.Open(ctx, db.Options{DataDir: dir, SecretKey: []byte(strings.Repeat("x", 32))})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s2.Endpoint(ctx, u.ID, e.ID, false); err == nil || !strings.Contains(err.Error(), "decrypt") {
		t.Fatalf("Endpoint with the wrong key = %v, want a decrypt error", err)
	}
}
