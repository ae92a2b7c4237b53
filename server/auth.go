package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/agentgate/agentgate/db"
)

// userJSON is the public shape of a user.
type userJSON struct {
	ID        string `json:"id"`
	Email     string `json:"email"`
	CreatedAt string `json:"created_at"`
}

func toUserJSON(u *db.User) userJSON {
	return userJSON{ID: u.ID, Email: u.Email, CreatedAt: rfc3339(u.CreatedAt)}
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// credentials parses and checks {"email","password"}.
func credentials(c *fiber.Ctx) (email, password string, err error) {
	f, err := decodeObject(c.Body(), "email", "password")
	if err != nil {
		return "", "", err
	}
	email, _, err = f.str("email")
	if err != nil {
		return "", "", err
	}
	password, _, err = f.str("password")
	if err != nil {
		return "", "", err
	}
	email, err = normalizeEmail(email)
	return email, password, err
}

// normalizeEmail lower-cases and trims an email and checks it is a plain address.
func normalizeEmail(email string) (string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if email == "" {
		return "", errValidation("email is required")
	}
	if a, perr := mail.ParseAddress(email); perr != nil || a.Address != email || len(email) > 254 {
		return "", errValidation("email is not a valid address")
	}
	return email, nil
}

// checkPassword applies the password rules (SPEC §2; bcrypt reads at most 72 bytes).
func checkPassword(password string) error {
	if len([]rune(password)) < 8 {
		return errValidation("password must be at least 8 characters")
	}
	if len(password) > 72 {
		return errValidation("password must be at most 72 bytes")
	}
	return nil
}

func (s *Server) register(c *fiber.Ctx) error {
	email, password, err := credentials(c)
	if err != nil {
		return err
	}
	if err := checkPassword(password); err != nil {
		return err
	}
	u, err := CreateUser(c.UserContext(), s.store, email, password)
	if err != nil {
		return err
	}
	return s.sendToken(c.Status(fiber.StatusCreated), u)
}

// CreateUser checks the email and password like registration does, hashes the password and
// stores a new user (also used by the CLI).
func CreateUser(ctx context.Context, store *db.Store, email, password string) (*db.User, error) {
	email, err := normalizeEmail(email)
	if err != nil {
		return nil, err
	}
	if err := checkPassword(password); err != nil {
		return nil, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), passwordCost)
	if err != nil {
		return nil, err
	}
	u := &db.User{Email: email, PasswordHash: string(hash)}
	if err := store.CreateUser(ctx, u); err != nil {
		return nil, err
	}
	return u, nil
}

// passwordCost is bcrypt's work factor. Tests lower it: under the race detector one hash at the
// default cost takes seconds.
var passwordCost = bcrypt.DefaultCost

// dummyHash makes a login for an unknown email cost as much as a wrong password. Computed on
// first use, so that starting the server (and every test binary) does not pay for it.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("agentgate-dummy-password"), passwordCost)
	return h
})

func (s *Server) login(c *fiber.Ctx) error {
	email, password, err := credentials(c)
	if err != nil {
		return err
	}
	u, err := s.store.UserByEmail(c.UserContext(), email)
	if errors.Is(err, db.ErrNotFound) {
		_ = bcrypt.CompareHashAndPassword(dummyHash(), []byte(password))
		return errUnauthorized("wrong email or password")
	}
	if err != nil {
		return err
	}
	if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
		return errUnauthorized("wrong email or password")
	}
	return s.sendToken(c, u)
}

func (s *Server) sendToken(c *fiber.Ctx, u *db.User) error {
	tok, err := IssueToken(s.cfg.JWTSecret, u.ID, s.cfg.JWTTTL)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"user": toUserJSON(u), "token": tok})
}

func (s *Server) me(c *fiber.Ctx) error {
	u, err := s.store.UserByID(c.UserContext(), userID(c))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"user": toUserJSON(u)})
}

// IssueToken signs a management JWT (HS256) for a user.
func IssueToken(secret []byte, userID string, ttl time.Duration) (string, error) {
	now := time.Now()
	claims := jwt.RegisteredClaims{
		Subject:   userID,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(ttl)),
		Issuer:    "agentgate",
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
}

// parseToken verifies a JWT and returns its claims; only HS256 is accepted.
func parseToken(secret []byte, tok string, audience string) (*jwt.RegisteredClaims, error) {
	claims := &jwt.RegisteredClaims{}
	opts := []jwt.ParserOption{jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithIssuer("agentgate")}
	if audience != "" {
		opts = append(opts, jwt.WithAudience(audience))
	}
	_, err := jwt.ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return secret, nil }, opts...)
	if err != nil {
		return nil, err
	}
	if audience == "" && len(claims.Audience) > 0 {
		return nil, errors.New("token is scoped to another use")
	}
	return claims, nil
}

// requireUser is the management auth middleware: a valid JWT in Authorization: Bearer.
func (s *Server) requireUser(c *fiber.Ctx) error {
	tok, ok := bearer(c)
	if !ok || strings.HasPrefix(tok, "aek_") {
		return errUnauthorized("missing or invalid Authorization: Bearer token")
	}
	claims, err := parseToken(s.cfg.JWTSecret, tok, "")
	if err != nil || claims.Subject == "" {
		return errUnauthorized("invalid or expired token")
	}
	c.Locals(localUser, claims.Subject)
	return c.Next()
}

const localUser = "agentgate.user"

func userID(c *fiber.Ctx) string {
	id, _ := c.Locals(localUser).(string)
	return id
}

// bearer returns the token of an Authorization: Bearer header.
func bearer(c *fiber.Ctx) (string, bool) {
	h := c.Get(fiber.HeaderAuthorization)
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:]), true
	}
	return "", false
}

// hashKey is how endpoint API keys are stored: hex SHA-256 (keys are 128 random bits, so a
// fast hash is enough).
func hashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// keyMatches compares a presented key with a stored hash in constant time.
func keyMatches(key, storedHash string) bool {
	got := hashKey(key)
	return subtle.ConstantTimeCompare([]byte(got), []byte(storedHash)) == 1
}
