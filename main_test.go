package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/agentgate/agentgate/db"
)

// env is a fake environment: Run never reads the process environment in tests.
type env map[string]string

func (e env) get(k string) string { return e[k] }

// run calls Run with a fake environment and returns stdout, stderr and the error.
func run(tb testing.TB, ctx context.Context, e env, args ...string) (string, string, error) {
	tb.Helper()
	var out, errOut bytes.Buffer
	err := Run(ctx, args, e.get, &out, &errOut)
	return out.String(), errOut.String(), err
}

// mustRun is run that fails the test on an error.
func mustRun(tb testing.TB, e env, args ...string) string {
	tb.Helper()
	out, errOut, err := run(tb, context.Background(), e, args...)
	if err != nil {
		tb.Fatalf("agentgate %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

func TestRun_Version(t *testing.T) {
	t.Parallel()
	out := mustRun(t, env{}, "version")
	if out != "agentgate "+version+"\n" {
		t.Fatalf("version printed %q", out)
	}
	help := mustRun(t, env{}, "help")
	for _, cmd := range []string{"serve", "migrate", "user create", "token", "wallet deposit", "version"} {
		if !strings.Contains(help, cmd) {
			t.Errorf("help does not mention %q", cmd)
		}
	}
}

func TestRun_Errors(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	mustRun(t, env{}, "migrate", "--data", data)
	cases := []struct {
		name string
		env  env
		args []string
		want string // in the error
	}{
		{"unknown command", nil, []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown serve flag", nil, []string{"serve", "--nope"}, "flag provided but not defined"},
		{"unknown flag, no command", nil, []string{"--nope"}, "flag provided but not defined"},
		{"unknown migrate flag", nil, []string{"migrate", "--addr", "x"}, "flag provided but not defined"},
		{"user without subcommand", nil, []string{"user"}, "create"},
		{"user delete", nil, []string{"user", "delete", "--email", "a@example.com"}, "create"},
		{"user create no email", nil, []string{"user", "create", "--data", data, "--password", "12345678"}, "--email"},
		{"user create short password", nil, []string{"user", "create", "--data", data, "--email", "a@example.com", "--password", "short"}, "8 characters"},
		{"user create bad email", nil, []string{"user", "create", "--data", data, "--email", "not-an-email", "--password", "12345678"}, "email"},
		{"token without email", nil, []string{"token", "--data", data}, "--email"},
		{"token unknown user", nil, []string{"token", "--data", data, "--email", "nobody@example.com"}, "nobody@example.com"},
		{"wallet without subcommand", nil, []string{"wallet"}, "deposit"},
		{"wallet withdraw", nil, []string{"wallet", "withdraw"}, "deposit"},
		{"wallet zero cents", nil, []string{"wallet", "deposit", "--data", data, "--email", "a@example.com", "--cents", "0"}, "--cents"},
		{"wallet cents not a number", nil, []string{"wallet", "deposit", "--data", data, "--email", "a@example.com", "--cents", "ten"}, "invalid value"},
		{"wallet unknown user", nil, []string{"wallet", "deposit", "--data", data, "--email", "nobody@example.com", "--cents", "5"}, "nobody@example.com"},
		{"serve bad billing mode", nil, []string{"serve", "--data", data, "--billing-mode", "free"}, "billing mode"},
		{"serve bad duration env", env{"AGENTGATE_HEARTBEAT": "soon"}, []string{"serve", "--data", data}, "AGENTGATE_HEARTBEAT"},
		{"serve bad bool env", env{"AGENTGATE_ALLOW_PRIVATE_EGRESS": "maybe"}, []string{"serve", "--data", data}, "AGENTGATE_ALLOW_PRIVATE_EGRESS"},
		{"serve zero body limit", nil, []string{"serve", "--data", data, "--body-limit", "0"}, "positive"},
		{"serve bad address", nil, []string{"serve", "--data", data, "--addr", "127.0.0.1:99999"}, "99999"},
		{"serve missing config file", nil, []string{"serve", "--data", data, "--config", filepath.Join(data, "nope.json")}, "config file"},
		{"bad secret key", nil, []string{"migrate", "--data", t.TempDir(), "--secret-key", "abc"}, "secret key"},
		{"bad database url", nil, []string{"migrate", "--data", data, "--database-url", "mysql://x"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			e := tc.env
			if e == nil {
				e = env{}
			}
			_, _, err := run(t, ctx, e, tc.args...)
			if err == nil {
				t.Fatalf("agentgate %s: no error", strings.Join(tc.args, " "))
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
	// -h is not an error worth printing, but it is not a success either.
	if _, _, err := run(t, context.Background(), env{}, "serve", "-h"); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("serve -h: %v", err)
	}
}

// freeAddr returns a loopback address nobody listens on right now.
func freeAddr(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		tb.Fatal(err)
	}
	return addr
}

// getJSON does a GET with an optional bearer token.
func getJSON(tb testing.TB, url, token string, v any) int {
	tb.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if v != nil && res.StatusCode == 200 {
		if err := json.Unmarshal(body, v); err != nil {
			tb.Fatalf("GET %s: %v: %s", url, err, body)
		}
	}
	return res.StatusCode
}

func TestRun_EndToEnd(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "data")
	// The data directory comes from the environment here; flags are tested below.
	e := env{"AGENTGATE_DATA": data, "AGENTGATE_LOG_LEVEL": "warn"}

	if out := mustRun(t, e, "migrate"); out != "migrations applied\n" {
		t.Fatalf("migrate printed %q", out)
	}
	if _, err := os.Stat(filepath.Join(data, db.SQLiteFileName)); err != nil {
		t.Fatalf("migrate did not create the SQLite file: %v", err)
	}
	mustRun(t, e, "migrate") // idempotent

	out := mustRun(t, e, "user", "create", "--email", "Alice@Example.com", "--password", "correct horse")
	if !regexp.MustCompile(`^created user usr_[0-9a-f]{18} \(alice@example\.com\)\n$`).MatchString(out) {
		t.Fatalf("user create printed %q", out)
	}
	if _, _, err := run(t, context.Background(), e, "user", "create", "--email", "alice@example.com", "--password", "another one"); err == nil {
		t.Fatal("a second user with the same email was created")
	}

	tok := strings.TrimSpace(mustRun(t, e, "token", "--email", "ALICE@example.com"))
	if strings.Count(tok, ".") != 2 {
		t.Fatalf("token printed %q", tok)
	}

	// Deposits: the balance is printed; a repeated --key is not applied twice.
	balanceRe := regexp.MustCompile(`balance (\d+\.\d{4}) cents`)
	balance := func(out string) string {
		t.Helper()
		m := balanceRe.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("deposit printed %q", out)
		}
		return m[1]
	}
	if b := balance(mustRun(t, e, "wallet", "deposit", "--email", "alice@example.com", "--cents", "500", "--key", "k1")); b != "500.0000" {
		t.Fatalf("balance after first deposit %s", b)
	}
	if b := balance(mustRun(t, e, "wallet", "deposit", "--email", "alice@example.com", "--cents", "500", "--key", "k1")); b != "500.0000" {
		t.Fatalf("balance after a repeated key %s", b)
	}
	if b := balance(mustRun(t, e, "wallet", "deposit", "--email", "alice@example.com", "--cents", "250")); b != "750.0000" {
		t.Fatalf("balance after a keyless deposit %s", b)
	}

	// serve: starts, accepts the CLI's token, stops when its context ends.
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var serveErr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"serve", "--addr", addr, "--drain-timeout", "1s"}, e.get, io.Discard, &serveErr)
	}()
	base := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get(base + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited early: %v\n%s", err, serveErr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not answer /healthz: %v\n%s", err, serveErr.String())
		}
		select {
		case <-time.After(20 * time.Millisecond): // polling an external effect with a deadline
		case err := <-done:
			t.Fatalf("serve exited early: %v\n%s", err, serveErr.String())
		}
	}
	var me struct {
		User struct {
			Email string `json:"email"`
		} `json:"user"`
	}
	if st := getJSON(t, base+"/api/me", tok, &me); st != 200 || me.User.Email != "alice@example.com" {
		t.Fatalf("/api/me with the CLI token: %d %+v", st, me)
	}
	var bal struct {
		BalanceCents float64 `json:"balance_cents"`
	}
	if st := getJSON(t, base+"/api/balance", tok, &bal); st != 200 || bal.BalanceCents != 750 {
		t.Fatalf("/api/balance: %d %+v", st, bal)
	}
	if st := getJSON(t, base+"/api/me", tok+"x", nil); st != 401 {
		t.Fatalf("a tampered token: %d", st)
	}
	if st := getJSON(t, base+"/readyz", "", nil); st != 200 {
		t.Fatalf("/readyz: %d", st)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop after its context was cancelled")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("still listening after serve returned")
	}

	// A token from another data directory (another JWT secret) is not accepted by this one:
	// the secret is kept in the data directory, not regenerated per command.
	secret, err := os.ReadFile(filepath.Join(data, "jwt.secret"))
	if err != nil || len(strings.TrimSpace(string(secret))) != 64 {
		t.Fatalf("jwt.secret: %q %v", secret, err)
	}
	if again := strings.TrimSpace(mustRun(t, e, "token", "--email", "alice@example.com")); again == "" {
		t.Fatal("second token empty")
	}
	if s2, _ := os.ReadFile(filepath.Join(data, "jwt.secret")); !bytes.Equal(secret, s2) {
		t.Fatal("jwt.secret changed between commands")
	}
}

// TestRun_FlagsOverrideEnv: --data wins over AGENTGATE_DATA.
func TestRun_FlagsOverrideEnv(t *testing.T) {
	t.Parallel()
	envDir, flagDir := t.TempDir(), t.TempDir()
	mustRun(t, env{"AGENTGATE_DATA": envDir}, "migrate", "--data", flagDir)
	if _, err := os.Stat(filepath.Join(flagDir, db.SQLiteFileName)); err != nil {
		t.Fatalf("--data ignored: %v", err)
	}
	if _, err := os.Stat(filepath.Join(envDir, db.SQLiteFileName)); err == nil {
		t.Fatal("AGENTGATE_DATA used although --data was given")
	}
}
