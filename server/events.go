package server

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"

	"github.com/agentgate/agentgate/db"
)

// streamTokenTTL bounds a stream token: long enough for a run and its resumes, short enough
// that a leaked URL soon stops working.
const streamTokenTTL = time.Hour

// streamToken signs a token that grants reading one run's events (for EventSource, which
// cannot send headers).
func (s *Server) streamToken(runID string) (string, error) {
	now := time.Now()
	claims := jwt.RegisteredClaims{
		Subject: runID, Audience: jwt.ClaimStrings{"run-events"}, Issuer: "agentgate",
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(streamTokenTTL)),
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(s.cfg.JWTSecret)
}

// authorizeRun checks that the caller may read run r: its endpoint's key, a stream token for
// this run, or the owner's JWT.
func (s *Server) authorizeRun(c *fiber.Ctx, r *db.Run) error {
	if tok := c.Query("token"); tok != "" {
		claims, err := parseToken(s.cfg.JWTSecret, tok, "run-events")
		if err != nil || claims.Subject != r.ID {
			return errUnauthorized("invalid or expired stream token")
		}
		return nil
	}
	key := c.Get("X-API-Key")
	b, hasBearer := bearer(c)
	if key == "" && strings.HasPrefix(b, "aek_") {
		key = b
	}
	if key != "" {
		e, err := s.store.Endpoint(c.UserContext(), r.OwnerID, r.EndpointID, true)
		if err != nil || e.DeletedAt != nil || !keyMatches(key, e.APIKeyHash) {
			return errUnauthorized("invalid API key")
		}
		return nil
	}
	if hasBearer {
		claims, err := parseToken(s.cfg.JWTSecret, b, "")
		if err == nil && claims.Subject == r.OwnerID {
			return nil
		}
		return errUnauthorized("invalid or expired token")
	}
	return errUnauthorized("missing credentials: the endpoint key, ?token=<stream_token>, or the owner's token")
}

// loadRun finds a run by id, live or stored.
func (s *Server) loadRun(ctx context.Context, id string) (*db.Run, error) {
	r, err := s.store.Run(ctx, id)
	if errors.Is(err, db.ErrNotFound) {
		// It may have started an instant ago and not be written yet.
		if _, live := s.runner.lookup(id); live {
			s.runner.rlog.sync(ctx)
			r, err = s.store.Run(ctx, id)
		}
	}
	if err != nil {
		return nil, notFoundAs(err, "run")
	}
	return r, nil
}

// runStatus is GET /api/runs/:id.
func (s *Server) runStatus(c *fiber.Ctx) error {
	if _, live := s.runner.lookup(c.Params("id")); !live {
		s.runner.rlog.sync(c.UserContext())
	}
	r, err := s.loadRun(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	if err := s.authorizeRun(c, r); err != nil {
		return err
	}
	return c.JSON(fiber.Map{"run": toRunJSON(r)})
}

// lastEventID reads Last-Event-ID (header, or ?last_event_id= for clients that cannot set it).
func lastEventID(c *fiber.Ctx) (int64, error) {
	v := c.Get("Last-Event-ID")
	if v == "" {
		v = c.Query("last_event_id")
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return 0, errValidation("Last-Event-ID must be a non-negative integer")
	}
	return n, nil
}

// runEvents is GET /api/runs/:id/events: replay after Last-Event-ID, then follow live.
//
// A run live on this instance is served by the hub (memory). Every other run is served from
// the stored event log: one that finished here (its events are written before its record), one
// from before a restart, or one in progress on another instance, followed as its batches are
// stored (sseFollow). Last-Event-ID equal to the last event of a finished run answers 204,
// which tells EventSource to stop reconnecting; beyond the last event it is a 400.
func (s *Server) runEvents(c *fiber.Ctx) error {
	// Params point into fasthttp's request buffer, which is reused once the handler returns;
	// the stream writer outlives it.
	id := strings.Clone(c.Params("id"))
	ctx := c.UserContext()
	r, err := s.loadRun(ctx, id)
	if err != nil {
		return err
	}
	if err := s.authorizeRun(c, r); err != nil {
		return err
	}
	after, err := lastEventID(c)
	if err != nil {
		return err
	}
	if lr, live := s.runner.lookup(id); live {
		if seq := lr.topic.Seq(); after > seq {
			return errValidation("Last-Event-ID %d is beyond the last event of the run (%d)", after, seq)
		}
		if sub, ok := s.runner.hub.Subscribe(id, after); ok {
			src := s.hubEvents(id, sub)
			if r.Async {
				// Its events are stored: a reader that falls behind after the run left
				// memory goes on from the log.
				src.stored = func(after int64) eventSource { return s.logEvents(id, after) }
			}
			return s.sse(c, id, src, nil)
		}
	}
	// Not live here: what this instance still queues must be in the log before it is read,
	// and the record may have finished meanwhile.
	s.runner.rlog.sync(ctx)
	if r, err = s.store.Run(ctx, id); err != nil {
		return notFoundAs(err, "run")
	}
	last, err := s.store.LastEventSeq(ctx, id)
	if err != nil {
		return err
	}
	finished := r.FinishedAt != nil
	switch {
	case !r.Async || (finished && last == 0):
		return errNotFound("events of this run (only async runs keep their events, for the retention period)")
	case finished && after == last:
		return c.SendStatus(fiber.StatusNoContent)
	case finished && after > last:
		return errValidation("Last-Event-ID %d is beyond the last event of the run (%d)", after, last)
	}
	return s.sseFollow(c, id, after)
}
