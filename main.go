// Command agentgate is a self-hosted gateway for AI agent endpoints. main is thin: it parses
// the command line and configuration (config.go) and wires storage and the server.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/agentgate/agentgate/db"
	"github.com/agentgate/agentgate/server"
)

// version is set at build time (-ldflags "-X main.version=…").
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "agentgate:", err)
		}
		os.Exit(2)
	}
}

const usage = `agentgate — a gateway for AI agent endpoints

Usage:
  agentgate [serve] [flags]                         run the gateway (default)
  agentgate migrate [flags]                         apply database migrations
  agentgate user create --email E --password P      create a user
  agentgate token --email E                         print a management JWT for a user
  agentgate wallet deposit --email E --cents N      add money to a user's wallet
  agentgate version                                 print the version

Every command takes --data and --database-url; run "agentgate serve -h" for all settings.
`

// Run executes one command line. Tests call it directly.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	cfg := DefaultConfig()
	switch cmd {
	case "serve":
		if _, err := cfg.parse("serve", args, getenv, false, nil); err != nil {
			return err
		}
		return serve(ctx, cfg, getenv, stderr)
	case "migrate":
		if _, err := cfg.parse("migrate", args, getenv, true, nil); err != nil {
			return err
		}
		store, err := openStore(ctx, cfg, newLogger(cfg, stderr))
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, "migrations applied")
		return store.Close()
	case "user":
		return userCmd(ctx, cfg, args, getenv, stdout, stderr)
	case "token":
		var email string
		if _, err := cfg.parse("token", args, getenv, false, func(fs *flag.FlagSet) {
			fs.StringVar(&email, "email", "", "the user's email")
		}); err != nil {
			return err
		}
		if email == "" {
			return errors.New("token: --email is required")
		}
		return withStore(ctx, cfg, stderr, func(store *db.Store) error {
			u, err := store.UserByEmail(ctx, strings.ToLower(email))
			if err != nil {
				return fmt.Errorf("token: no user %s: %w", email, err)
			}
			secret, err := loadOrCreateSecret(cfg.JWTSecret, cfg.DataDir, "jwt.secret", 32)
			if err != nil {
				return err
			}
			tok, err := server.IssueToken(secret, u.ID, server.DefaultConfig().JWTTTL)
			if err != nil {
				return err
			}
			fmt.Fprintln(stdout, tok)
			return nil
		})
	case "wallet":
		return walletCmd(ctx, cfg, args, getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "agentgate", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

func userCmd(ctx context.Context, cfg Config, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return errors.New(`user: the only subcommand is "create"`)
	}
	var email, password string
	if _, err := cfg.parse("user create", args[1:], getenv, true, func(fs *flag.FlagSet) {
		fs.StringVar(&email, "email", "", "the user's email")
		fs.StringVar(&password, "password", "", "the user's password (at least 8 characters)")
	}); err != nil {
		return err
	}
	if email == "" || len(password) < 8 {
		return errors.New("user create: --email and a --password of at least 8 characters are required")
	}
	return withStore(ctx, cfg, stderr, func(store *db.Store) error {
		u, err := server.CreateUser(ctx, store, email, password)
		if err != nil {
			return fmt.Errorf("user create: %w", err)
		}
		fmt.Fprintf(stdout, "created user %s (%s)\n", u.ID, u.Email)
		return nil
	})
}

func walletCmd(ctx context.Context, cfg Config, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "deposit" {
		return errors.New(`wallet: the only subcommand is "deposit"`)
	}
	var email, key string
	var cents int64
	if _, err := cfg.parse("wallet deposit", args[1:], getenv, true, func(fs *flag.FlagSet) {
		fs.StringVar(&email, "email", "", "the user's email")
		fs.Int64Var(&cents, "cents", 0, "amount in cents (> 0)")
		fs.StringVar(&key, "key", "", "idempotency key: a deposit with a key already used is not repeated")
	}); err != nil {
		return err
	}
	if email == "" || cents <= 0 {
		return errors.New("wallet deposit: --email and --cents > 0 are required")
	}
	return withStore(ctx, cfg, stderr, func(store *db.Store) error {
		u, err := store.UserByEmail(ctx, strings.ToLower(email))
		if err != nil {
			return fmt.Errorf("wallet deposit: no user %s: %w", email, err)
		}
		if key == "" {
			key = db.NewID("cli_")
		}
		if err := store.Deposit(ctx, u.ID, cents*1_000_000, "deposit:"+key); err != nil {
			return err
		}
		b, err := store.Balance(ctx, u.ID)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deposited %d cents to %s; balance %.4f cents\n", cents, u.Email, float64(b.BalanceMicroCents)/1e6)
		return nil
	})
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func openStore(ctx context.Context, cfg Config, log *slog.Logger) (*db.Store, error) {
	key, err := cfg.secretKey()
	if err != nil {
		return nil, err
	}
	return db.Open(ctx, db.Options{URL: cfg.DatabaseURL, DataDir: cfg.DataDir, SecretKey: key, Logger: log})
}

func withStore(ctx context.Context, cfg Config, stderr io.Writer, fn func(*db.Store) error) error {
	store, err := openStore(ctx, cfg, newLogger(cfg, stderr))
	if err != nil {
		return err
	}
	defer store.Close()
	return fn(store)
}

// serve runs the gateway until ctx is cancelled (SIGINT/SIGTERM), then shuts down gracefully.
func serve(ctx context.Context, cfg Config, getenv func(string) string, stderr io.Writer) error {
	log := newLogger(cfg, stderr)
	defer startGCTuner(getenv, time.Second)()
	secret, err := loadOrCreateSecret(cfg.JWTSecret, cfg.DataDir, "jwt.secret", 32)
	if err != nil {
		return fmt.Errorf("jwt secret: %w", err)
	}
	sc, err := cfg.serverConfig(getenv, secret)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer store.Close()
	// Listen before building the server: a bad or busy address must not leave the server's
	// goroutines running against a store this function is about to close.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	server.Version = version
	srv, err := server.New(sc, store, log)
	if err != nil {
		_ = ln.Close()
		return err
	}
	// Shutdown is idempotent: this also stops the server when Serve fails, before the store closes.
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), sc.DrainTimeout+15*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if cfg.PprofAddr != "" {
		stopPprof := startPprof(cfg.PprofAddr, log)
		defer stopPprof()
	}
	log.Info("agentgate listening", slog.String("addr", ln.Addr().String()), slog.String("version", version),
		slog.String("database", store.Dialect()))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", slog.Duration("drain", sc.DrainTimeout))
	sctx, cancel := context.WithTimeout(context.Background(), sc.DrainTimeout+15*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Error("shutdown", slog.Any("err", err))
	}
	<-errc
	log.Info("stopped")
	return nil
}

// startPprof serves net/http/pprof on its own listener (operator switch, off by default).
func startPprof(addr string, log *slog.Logger) func() {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := hs.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("pprof listener", slog.Any("err", err))
		}
	}()
	log.Info("pprof listening", slog.String("addr", addr))
	return func() { _ = hs.Close() }
}
