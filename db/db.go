// Package db owns agentgate's storage: users, workspaces and their MCP
// servers, agent endpoints, the run log, the run event replay log and the
// wallet ledger, over one sqlx handle for either embedded SQLite
// (modernc.org/sqlite, the default) or PostgreSQL (lib/pq). It also owns the
// schema (embedded, ordered migrations) and the encryption at rest of secret
// columns.
//
// db imports only libraries: never agent, tools, stream, server or web.
//
// Conventions: every time is stored as BIGINT unix microseconds UTC (it sorts
// correctly and is portable) and handed out as time.Time in UTC; money is
// integer micro-cents (1 cent = 1_000_000); structs carry plaintext and the
// secret columns carry AES-256-GCM ciphertext.
package db

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"modernc.org/sqlite"
)

func init() {
	// modernc registers itself as "sqlite"; sqlx does not know that name.
	sqlx.BindDriver("sqlite", sqlx.QUESTION)
}

// Dialect names returned by (*Store).Dialect.
const (
	// DialectSQLite is the embedded SQLite store (modernc.org/sqlite).
	DialectSQLite = "sqlite"
	// DialectPostgres is PostgreSQL (lib/pq).
	DialectPostgres = "postgres"
)

// SQLiteFileName is the database file created in Options.DataDir.
const SQLiteFileName = "agentgate.db"

// Sentinel errors. Callers test them with errors.Is.
var (
	// ErrNotFound means the row does not exist or belongs to another owner.
	ErrNotFound = errors.New("not found")
	// ErrSlugTaken means a slug is already used where it must be unique.
	ErrSlugTaken = errors.New("slug taken")
	// ErrEmailTaken means another user already has that email.
	ErrEmailTaken = errors.New("email taken")
	// ErrInsufficientFunds means a hold would take the balance below zero.
	ErrInsufficientFunds = errors.New("insufficient funds")
	// ErrInvalidCursor means a pagination cursor was not produced by ListRuns.
	ErrInvalidCursor = errors.New("invalid cursor")
	// ErrNoSecretKey means a secret had to be encrypted or decrypted but the
	// Store was opened without Options.SecretKey.
	ErrNoSecretKey = errors.New("no secret key configured: cannot store or read encrypted secrets")
)

// Options configure Open.
type Options struct {
	// URL selects the database: empty → SQLite in DataDir;
	// postgres:// or postgresql:// → PostgreSQL; sqlite://<path> → SQLite at path.
	URL string
	// DataDir holds the SQLite file (created if missing). Ignored for PostgreSQL.
	DataDir string
	// SecretKey is the 32-byte AES-256 key for secret columns. Nil is allowed,
	// but then writing or reading a non-empty secret fails with ErrNoSecretKey.
	SecretKey []byte
	// Logger receives migration and lifecycle logs; nil discards them.
	Logger *slog.Logger
	// MaxOpenConns bounds the PostgreSQL pool (and the SQLite read pool);
	// 0 picks a default. SQLite always has exactly one writer connection.
	MaxOpenConns int
}

// Store is the storage handle. It is safe for concurrent use.
//
// For SQLite it holds two pools over the same file: one writer connection
// (every write and every transaction goes through it, so writers queue in Go
// instead of spinning on SQLITE_BUSY) and a read-only pool (WAL lets readers
// run beside the writer). For PostgreSQL both are the same pool.
type Store struct {
	dialect string
	w       *sqlx.DB // writes and transactions
	r       *sqlx.DB // reads
	aead    cipher.AEAD
	log     *slog.Logger
	dsn     string // PostgreSQL only: for the LISTEN connection (notify.go)

	// bySlug is EndpointBySlug's prepared statement (stmt.go).
	bySlug lazyStmt
	// saveRun is SaveRuns' single-row upsert on SQLite, prepared on the writer.
	saveRun lazyStmt

	closeOnce sync.Once
	closeErr  error
}

// Open connects to the database chosen by opts.URL, configures the pool and
// applies pending migrations.
func Open(ctx context.Context, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	aead, err := newAEAD(opts.SecretKey)
	if err != nil {
		return nil, err
	}
	s := &Store{aead: aead, log: log}

	u := strings.TrimSpace(opts.URL)
	switch {
	case u == "":
		if opts.DataDir == "" {
			return nil, errors.New("db: open sqlite: data directory is empty")
		}
		if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("db: create data directory: %w", err)
		}
		err = s.openSQLite(filepath.Join(opts.DataDir, SQLiteFileName), opts.MaxOpenConns)
	case strings.HasPrefix(u, "sqlite://"):
		path := strings.TrimPrefix(u, "sqlite://")
		if path == "" {
			return nil, errors.New("db: open sqlite: empty path in sqlite:// URL")
		}
		if dir := filepath.Dir(path); dir != "" {
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return nil, fmt.Errorf("db: create database directory: %w", err)
			}
		}
		err = s.openSQLite(path, opts.MaxOpenConns)
	case strings.HasPrefix(u, "postgres://"), strings.HasPrefix(u, "postgresql://"):
		err = s.openPostgres(u, opts.MaxOpenConns)
	default:
		scheme := u
		if pu, perr := url.Parse(u); perr == nil && pu.Scheme != "" {
			scheme = pu.Scheme + "://"
		}
		return nil, fmt.Errorf("db: unsupported database URL %q: want empty (SQLite in the data directory), sqlite://, postgres:// or postgresql://", redactScheme(scheme))
	}
	if err != nil {
		return nil, err
	}
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if _, err := Migrate(ctx, s); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// redactScheme keeps only something short of a URL for error messages, so a
// password never lands in a log.
func redactScheme(s string) string {
	if i := strings.Index(s, "://"); i >= 0 {
		return s[:i+3]
	}
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}

func (s *Store) openSQLite(path string, maxOpen int) error {
	s.dialect = DialectSQLite
	// Pragmas shared by both pools. busy_timeout covers other processes
	// (the CLI) writing the same file; WAL lets readers run beside the writer.
	common := "_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)"
	w, err := sqlx.Open("sqlite", path+"?"+common+"&_pragma=journal_mode(WAL)&_txlock=immediate")
	if err != nil {
		return fmt.Errorf("db: open sqlite writer: %w", err)
	}
	// One writer: transactions are serialised in Go, BEGIN IMMEDIATE means a
	// transaction never has to upgrade a read lock (no SQLITE_BUSY deadlock).
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	// The writer must exist (and switch the file to WAL) before readers open it.
	if err := w.Ping(); err != nil {
		w.Close()
		return fmt.Errorf("db: open sqlite %s: %w", path, err)
	}
	r, err := sqlx.Open("sqlite", path+"?"+common+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return fmt.Errorf("db: open sqlite reader: %w", err)
	}
	if maxOpen <= 0 {
		maxOpen = max(4, runtime.GOMAXPROCS(0))
	}
	r.SetMaxOpenConns(maxOpen)
	r.SetMaxIdleConns(maxOpen)
	r.SetConnMaxIdleTime(5 * time.Minute)
	s.w, s.r = w, r
	return nil
}

func (s *Store) openPostgres(dsn string, maxOpen int) error {
	s.dialect = DialectPostgres
	s.dsn = dsn
	d, err := sqlx.Open("postgres", dsn)
	if err != nil {
		return fmt.Errorf("db: open postgres: %w", err)
	}
	if maxOpen <= 0 {
		maxOpen = 16
	}
	d.SetMaxOpenConns(maxOpen)
	d.SetMaxIdleConns(maxOpen)
	d.SetConnMaxIdleTime(5 * time.Minute)
	d.SetConnMaxLifetime(time.Hour)
	s.w, s.r = d, d
	return nil
}

// Dialect reports "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.dialect }

// DB returns the underlying write handle, for tests and operator tooling
// that need raw SQL. Queries must be written with ? and passed through Rebind.
func (s *Store) DB() *sqlx.DB { return s.w }

// Rebind converts a query written with ? placeholders to the dialect's form.
func (s *Store) Rebind(q string) string { return s.w.Rebind(q) }

// Ping checks that the database answers (readiness).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("db: ping: %w", err)
	}
	if s.r != s.w {
		if err := s.r.PingContext(ctx); err != nil {
			return fmt.Errorf("db: ping reader: %w", err)
		}
	}
	return nil
}

// Close closes the pools, waiting for connections in use to be returned.
// It is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		errs := []error{s.bySlug.close(), s.saveRun.close()}
		if s.r != nil && s.r != s.w {
			errs = append(errs, s.r.Close())
		}
		if s.w != nil {
			errs = append(errs, s.w.Close())
		}
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("db: close: %w", err)
		}
	})
	return s.closeErr
}

// NewID returns prefix followed by 18 lowercase hex digits from crypto/rand,
// e.g. NewID("run_") → "run_0a1b2c3d4e5f607182".
func NewID(prefix string) string {
	var b [9]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return prefix + hex.EncodeToString(b[:])
}

// now is the current time at the precision the database keeps.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// norm brings a caller-supplied time to stored precision, or now if zero.
func norm(t time.Time) time.Time {
	if t.IsZero() {
		return now()
	}
	return t.UTC().Truncate(time.Microsecond)
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

// constraint kinds recognised in driver errors.
const (
	violationNone = iota
	violationUnique
	violationForeignKey
)

// violation classifies a driver error and returns the constraint text
// (PostgreSQL constraint/index name, SQLite message) for unique violations.
func violation(err error) (kind int, detail string) {
	var pe *pq.Error
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505":
			return violationUnique, pe.Constraint // never Detail: it quotes the values
		case "23503":
			return violationForeignKey, pe.Constraint
		}
		return violationNone, ""
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		msg := se.Error()
		switch {
		case se.Code() == 2067 || se.Code() == 1555 || strings.Contains(msg, "UNIQUE constraint failed"):
			return violationUnique, msg
		case se.Code() == 787 || strings.Contains(msg, "FOREIGN KEY constraint failed"):
			return violationForeignKey, msg
		}
	}
	return violationNone, ""
}

// mapErr turns unique violations on slug/email into sentinels and foreign
// key violations into ErrNotFound; anything else is wrapped with what.
func mapErr(err error, what string) error {
	if err == nil {
		return nil
	}
	kind, detail := violation(err)
	switch kind {
	case violationUnique:
		d := strings.ToLower(detail)
		switch {
		case strings.Contains(d, "slug"):
			return ErrSlugTaken
		case strings.Contains(d, "email"):
			return ErrEmailTaken
		}
	case violationForeignKey:
		return fmt.Errorf("%s: referenced row does not exist: %w", what, ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// inTx runs fn in a write transaction (BEGIN IMMEDIATE on SQLite) and
// commits if it returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx *sqlx.Tx) error) error {
	tx, err := s.w.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
