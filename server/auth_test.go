package server

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"
)

// prodPasswordCost is the bcrypt cost the server uses outside tests.
var prodPasswordCost int

func init() {
	prodPasswordCost = passwordCost
	// One bcrypt hash at the default cost takes seconds under -race on a shared machine;
	// TestAuth_PasswordHash checks the production cost separately.
	passwordCost = bcrypt.MinCost
}

// testSecret is the JWT secret startEnv configures.
var testSecret = []byte("test-secret-test-secret-test-secret")

var (
	userIDRe = regexp.MustCompile(`^usr_[0-9a-f]{18}$`)
	rfc3339Z = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`)
)

// authAnswer is the answer of register and login.
type authAnswer struct {
	User struct {
		ID        string `json:"id"`
		Email     string `json:"email"`
		CreatedAt string `json:"created_at"`
	} `json:"user"`
	Token string `json:"token"`
}

// checkAuthAnswer checks the shape of a register/login answer and returns it.
func checkAuthAnswer(tb testing.TB, r response, status int, email string) authAnswer {
	tb.Helper()
	if r.Status != status {
		tb.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
	var a authAnswer
	r.json(tb, &a)
	var raw map[string]map[string]any
	_ = json.Unmarshal(r.Body, &raw)
	if len(raw["user"]) != 3 {
		tb.Fatalf("user must have exactly id, email, created_at: %s", r.Body)
	}
	if !userIDRe.MatchString(a.User.ID) || a.User.Email != email || !rfc3339Z.MatchString(a.User.CreatedAt) {
		tb.Fatalf("user %+v", a.User)
	}
	claims, err := parseToken(testSecret, a.Token, "")
	if err != nil || claims.Subject != a.User.ID {
		tb.Fatalf("token %q: %v %+v", a.Token, err, claims)
	}
	if ttl := time.Until(claims.ExpiresAt.Time); ttl < 23*time.Hour || ttl > 25*time.Hour {
		tb.Fatalf("token expiry in %v, want 24h", ttl)
	}
	return a
}

func TestAuth_RegisterLoginMe(t *testing.T) {
	t.Parallel()
	forKinds(t, func(t *testing.T, kind string) {
		e := newEnv(t, kind)
		reg := checkAuthAnswer(t, e.do("POST", "/api/auth/register",
			map[string]string{"email": " Alice@Example.com ", "password": "12345678"}), 201, "alice@example.com")

		// The token works on /api/me, which answers the same user.
		me := e.as(reg.Token, "GET", "/api/me", nil)
		var m struct {
			User map[string]any `json:"user"`
		}
		me.json(t, &m)
		if me.Status != 200 || m.User["id"] != reg.User.ID || m.User["email"] != "alice@example.com" || len(m.User) != 3 {
			t.Fatalf("me %d %s", me.Status, me.Body)
		}
		if strings.Contains(string(me.Body), "password") || strings.Contains(string(me.Body), "$2") {
			t.Fatalf("me leaks the password hash: %s", me.Body)
		}

		// Login, case-insensitive email.
		login := checkAuthAnswer(t, e.do("POST", "/api/auth/login",
			map[string]string{"email": "ALICE@example.com", "password": "12345678"}), 200, "alice@example.com")
		if login.User.ID != reg.User.ID || login.User.CreatedAt != reg.User.CreatedAt {
			t.Fatalf("login user %+v, register user %+v", login.User, reg.User)
		}

		// Duplicate email (any case) → 400 VALIDATION_ERROR, nothing created.
		dup := e.do("POST", "/api/auth/register", map[string]string{"email": "alice@EXAMPLE.com", "password": "another-password"})
		if dup.Status != 400 || dup.errCode() != "VALIDATION_ERROR" || !strings.Contains(dup.errMessage(), "email") {
			t.Fatalf("duplicate: %d %s", dup.Status, dup.Body)
		}
		// The first password still works: the duplicate changed nothing.
		if r := e.do("POST", "/api/auth/login", map[string]string{"email": "alice@example.com", "password": "another-password"}); r.Status != 401 {
			t.Fatalf("duplicate registration changed the password: %d", r.Status)
		}
	})
}

func TestAuth_RegisterValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	long := strings.Repeat("a", 250) + "@example.com"
	cases := []struct {
		name  string
		body  any
		field string // expected in the message ("" = any)
	}{
		{"empty body", "", ""},
		{"not json", "email=a@b.c&password=12345678", ""},
		{"json array", `[{"email":"a@example.com","password":"12345678"}]`, ""},
		{"json null", "null", ""},
		{"json string", `"hello"`, ""},
		{"truncated", `{"email":"a@example.com",`, ""},
		{"unknown field", map[string]any{"email": "a@example.com", "password": "12345678", "admin": true}, "admin"},
		{"email missing", map[string]any{"password": "12345678"}, "email"},
		{"email empty", map[string]any{"email": "", "password": "12345678"}, "email"},
		{"email number", map[string]any{"email": 42, "password": "12345678"}, "email"},
		{"email null", map[string]any{"email": nil, "password": "12345678"}, "email"},
		{"email no at", map[string]any{"email": "alice.example.com", "password": "12345678"}, "email"},
		{"email display name", map[string]any{"email": "Alice <a@example.com>", "password": "12345678"}, "email"},
		{"email too long", map[string]any{"email": long, "password": "12345678"}, "email"},
		{"password missing", map[string]any{"email": "a@example.com"}, "password"},
		{"password short", map[string]any{"email": "a@example.com", "password": "1234567"}, "password"},
		{"password number", map[string]any{"email": "a@example.com", "password": 12345678}, "password"},
		{"password null", map[string]any{"email": "a@example.com", "password": nil}, "password"},
		{"password object", map[string]any{"email": "a@example.com", "password": map[string]any{}}, "password"},
		{"password too long", map[string]any{"email": "a@example.com", "password": strings.Repeat("p", 73)}, "password"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := e.do("POST", "/api/auth/register", tc.body)
			if r.Status != 400 || r.errCode() != "VALIDATION_ERROR" {
				t.Fatalf("status %d %s, want 400 VALIDATION_ERROR", r.Status, r.Body)
			}
			if tc.field != "" && !strings.Contains(r.errMessage(), tc.field) {
				t.Fatalf("message %q does not name %s", r.errMessage(), tc.field)
			}
		})
	}
	// Nothing was half-created: a login with any of those emails fails.
	if r := e.do("POST", "/api/auth/login", map[string]string{"email": "a@example.com", "password": "12345678"}); r.Status != 401 {
		t.Fatalf("a refused registration created a user: %d %s", r.Status, r.Body)
	}
}

func TestAuth_LoginErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite") // owner@example.com / "correct horse"
	cases := []struct {
		name   string
		body   any
		status int
		code   string
	}{
		{"wrong password", map[string]any{"email": "owner@example.com", "password": "wrong horse"}, 401, "UNAUTHORIZED"},
		{"empty password", map[string]any{"email": "owner@example.com", "password": ""}, 401, "UNAUTHORIZED"},
		{"unknown email", map[string]any{"email": "nobody@example.com", "password": "correct horse"}, 401, "UNAUTHORIZED"},
		{"bad email", map[string]any{"email": "nobody", "password": "correct horse"}, 400, "VALIDATION_ERROR"},
		{"not json", "{", 400, "VALIDATION_ERROR"},
		{"array", "[]", 400, "VALIDATION_ERROR"},
		{"unknown field", map[string]any{"email": "owner@example.com", "password": "correct horse", "remember": true}, 400, "VALIDATION_ERROR"},
		{"password type", map[string]any{"email": "owner@example.com", "password": true}, 400, "VALIDATION_ERROR"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := e.do("POST", "/api/auth/login", tc.body)
			if r.Status != tc.status || r.errCode() != tc.code {
				t.Fatalf("status %d %s, want %d %s", r.Status, r.Body, tc.status, tc.code)
			}
		})
	}
	// Wrong password and unknown email say the same thing (no account enumeration).
	a := e.do("POST", "/api/auth/login", map[string]any{"email": "owner@example.com", "password": "wrong horse"})
	b := e.do("POST", "/api/auth/login", map[string]any{"email": "nobody@example.com", "password": "wrong horse"})
	if a.errMessage() != b.errMessage() {
		t.Fatalf("messages differ: %q vs %q", a.errMessage(), b.errMessage())
	}
}

func TestAuth_TokenChecks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	claims := func(sub string, exp time.Duration) jwt.RegisteredClaims {
		now := time.Now()
		return jwt.RegisteredClaims{Subject: sub, Issuer: "agentgate", IssuedAt: jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(exp))}
	}
	sign := func(m jwt.SigningMethod, key any, c jwt.Claims) string {
		t.Helper()
		s, err := jwt.NewWithClaims(m, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	expired, err := IssueToken(testSecret, e.User, -time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	noExp := jwt.RegisteredClaims{Subject: e.User, Issuer: "agentgate"}
	otherIss := claims(e.User, time.Hour)
	otherIss.Issuer = "someone-else"
	scoped := claims(e.User, time.Hour)
	scoped.Audience = jwt.ClaimStrings{"run:run_000000000000000000"}
	// The happy path signs like IssueToken does: proves the failures below are the checks.
	if r := e.as(sign(jwt.SigningMethodHS256, testSecret, claims(e.User, time.Hour)), "GET", "/api/me", nil); r.Status != 200 {
		t.Fatalf("hand-signed valid token refused: %d %s", r.Status, r.Body)
	}
	cases := []struct {
		name    string
		headers []string
	}{
		{"no header", nil},
		{"empty bearer", []string{"Authorization", "Bearer "}},
		{"basic auth", []string{"Authorization", "Basic b3duZXI6cGFzcw=="}},
		{"garbage", []string{"Authorization", "Bearer not.a.jwt"}},
		{"endpoint key", []string{"Authorization", "Bearer aek_00000000000000000000000000000000"}},
		{"expired", []string{"Authorization", "Bearer " + expired}},
		{"other secret", []string{"Authorization", "Bearer " + sign(jwt.SigningMethodHS256, []byte("another-secret-another-secret!!"), claims(e.User, time.Hour))}},
		{"alg none", []string{"Authorization", "Bearer " + sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(e.User, time.Hour))}},
		{"HS512 same secret", []string{"Authorization", "Bearer " + sign(jwt.SigningMethodHS512, testSecret, claims(e.User, time.Hour))}},
		{"no expiry", []string{"Authorization", "Bearer " + sign(jwt.SigningMethodHS256, testSecret, noExp)}},
		{"other issuer", []string{"Authorization", "Bearer " + sign(jwt.SigningMethodHS256, testSecret, otherIss)}},
		{"stream token audience", []string{"Authorization", "Bearer " + sign(jwt.SigningMethodHS256, testSecret, scoped)}},
		{"no subject", []string{"Authorization", "Bearer " + sign(jwt.SigningMethodHS256, testSecret, claims("", time.Hour))}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, path := range []string{"/api/me", "/api/workspaces", "/api/agent-endpoints", "/api/balance"} {
				r := e.do("GET", path, nil, tc.headers...)
				if r.Status != 401 || r.errCode() != "UNAUTHORIZED" {
					t.Fatalf("GET %s: %d %s, want 401 UNAUTHORIZED", path, r.Status, r.Body)
				}
			}
		})
	}
	// A valid signature for a user that does not exist (e.g. a reset database) is not a 500.
	ghost := sign(jwt.SigningMethodHS256, testSecret, claims("usr_000000000000000000", time.Hour))
	for _, probe := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/api/me", nil},
		{"POST", "/api/workspaces", map[string]any{"name": "ghost"}},
		{"POST", "/api/agent-endpoints", map[string]any{"name": "ghost", "system_prompt": "x"}},
	} {
		r := e.as(ghost, probe.method, probe.path, probe.body)
		if r.Status >= 500 || r.Status < 400 {
			t.Fatalf("%s %s with a token for an unknown user: %d %s", probe.method, probe.path, r.Status, r.Body)
		}
	}
}

func TestAuth_PasswordHash(t *testing.T) {
	t.Parallel()
	if prodPasswordCost < bcrypt.DefaultCost {
		t.Fatalf("production bcrypt cost %d, want at least %d", prodPasswordCost, bcrypt.DefaultCost)
	}
	e := newEnv(t, "sqlite")
	u, err := e.Store.UserByEmail(context.Background(), "owner@example.com")
	if err != nil {
		t.Fatal(err)
	}
	// Stored as a bcrypt hash of the password, never the password itself.
	if u.PasswordHash == "correct horse" || bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte("correct horse")) != nil {
		t.Fatalf("stored hash %q", u.PasswordHash)
	}
	if cost, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil || cost != passwordCost {
		t.Fatalf("hash cost %d (%v), want %d", cost, err, passwordCost)
	}
}
