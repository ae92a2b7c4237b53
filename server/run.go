package server

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/agentgate/agentgate/agent"
	"github.com/agentgate/agentgate/db"
	"github.com/agentgate/agentgate/stream"
)

// runMode is how a run answers.
type runMode int

const (
	modeJSON runMode = iota
	modeStream
	modeAsync
)

// negotiate picks the answer mode of a run request (SPEC §5, §6).
func negotiate(c *fiber.Ctx, e *db.Endpoint) runMode {
	if q := c.Query("async"); q == "true" || q == "1" || (q == "" && e.AsyncMode) ||
		strings.Contains(strings.ToLower(c.Get("Prefer")), "respond-async") {
		if q != "false" && q != "0" {
			return modeAsync
		}
	}
	switch c.Query("stream") {
	case "true", "1":
		return modeStream
	case "false", "0":
		return modeJSON
	}
	if strings.Contains(c.Get(fiber.HeaderAccept), "text/event-stream") || e.EnableStreaming {
		return modeStream
	}
	return modeJSON
}

// runEndpoint is POST /api/run/:slug.
func (s *Server) runEndpoint(c *fiber.Ctx) error {
	key := c.Get("X-API-Key")
	if key == "" {
		key, _ = bearer(c)
	}
	e, ok, err := s.endpoints.forKey(c.UserContext(), strings.Clone(c.Params("slug")), key)
	if err != nil {
		return notFoundAs(err, "endpoint")
	}
	if !ok && key == "" {
		return errUnauthorized("missing API key: send Authorization: Bearer aek_… or X-API-Key")
	}
	if !ok {
		s.log.Info("run refused: invalid API key", slog.String("endpoint_id", e.ID), slog.String("slug", e.Slug),
			slog.String("request_id", requestID(c)))
		return errUnauthorized("invalid API key")
	}
	if err := s.limits.allowRun(c, e); err != nil {
		s.metrics.rejected(e.Slug, err)
		return err
	}
	return s.startRun(c, e, "running")
}

// testEndpoint is POST /api/agent-endpoints/:id/test: the owner runs the endpoint with a JWT.
func (s *Server) testEndpoint(c *fiber.Ctx) error {
	e, err := s.endpoint(c, false)
	if err != nil {
		return err
	}
	if err := s.limits.allowTest(c, e); err != nil {
		s.metrics.rejected(e.Slug, err)
		return err
	}
	return s.startRun(c, e, "test")
}

// startRun prepares and starts a run, then answers in the negotiated mode.
func (s *Server) startRun(c *fiber.Ctx, e *db.Endpoint, status string) error {
	input, err := extractInput(c.Body())
	if err != nil {
		return err
	}
	mode := negotiate(c, e)
	lr, sub, err := s.launchRun(c, e, status, input, mode)
	if err != nil {
		return err
	}
	switch mode {
	case modeStream:
		return s.sse(c, lr.id, s.hubEvents(lr.id, sub), func() { lr.cancel(errClientGone) })
	case modeAsync:
		// The record is in the database before the client learns the run id, so another
		// replica can serve its status and events at once.
		s.runner.rlog.sync(c.UserContext())
		tok, err := s.streamToken(lr.id)
		if err != nil {
			return err
		}
		return c.Status(fiber.StatusAccepted).JSON(fiber.Map{
			"run_id": lr.id, "status": "running", "events_url": "/api/runs/" + lr.id + "/events",
			"status_url": "/api/runs/" + lr.id, "stream_token": tok,
		})
	}
	return s.answerJSON(c, lr)
}

// launchRun resolves the endpoint into a run spec, creates the run record, prepares billing,
// starts the run on the runner and sets X-Run-Id. A stream (mode modeStream) gets a
// subscription that follows the run's events from the first one; the others get nil. Every way of running an endpoint (the run route, the test route, the
// OpenAI facade) goes through here, so all are logged, billed and observed alike.
func (s *Server) launchRun(c *fiber.Ctx, e *db.Endpoint, status, input string, mode runMode) (*liveRun, *stream.Subscription, error) {
	async := mode == modeAsync
	if s.draining.Load() {
		return nil, nil, stream.Errorf(stream.CodeUnavailable, "server shutting down")
	}
	ctx := c.UserContext()
	spec, byok, err := s.buildSpec(ctx, e)
	if err != nil {
		return nil, nil, err
	}
	rec := &db.Run{
		ID: db.NewID("run_"), EndpointID: e.ID, OwnerID: e.OwnerID, Status: status, Input: input,
		Async: async, CreatedAt: time.Now().UTC(),
	}
	spec.RunID, spec.Input = rec.ID, input
	bill, err := s.billing(ctx, e, rec, spec.Cost, byok, status == "test")
	if err != nil {
		return nil, nil, err
	}
	lr, sub := s.runner.start(startReq{
		rec: rec, spec: spec, timeout: time.Duration(e.TimeoutMs) * time.Millisecond, async: async,
		settle: bill, onFinish: s.observeRun(e), follow: mode == modeStream, here: mode == modeJSON,
	})
	c.Set("X-Run-Id", lr.id)
	return lr, sub, nil
}

// answerJSON waits for the run's terminal event and answers it as one JSON document.
func (s *Server) answerJSON(c *fiber.Ctx, lr *liveRun) error {
	ans, rerr := s.awaitResult(lr)
	s.setOverhead(c, lr)
	if rerr != nil {
		return c.Status(statusOf(rerr.Code)).JSON(errorBody{Error: rerr})
	}
	return c.JSON(ans)
}

// awaitResult waits until the run has ended and returns its answer (the done event's payload),
// or the error (with the run id) that ended it. It reads the terminal event once the run is
// over instead of following every event: a JSON caller needs nothing else, and its goroutine
// is woken once per run, not once per token.
func (s *Server) awaitResult(lr *liveRun) (stream.Answer, *stream.Error) {
	if lr.runHere != nil {
		lr.runHere()
	}
	<-lr.ran // closed after the run's terminal event was published
	var agg stream.Aggregator
	if last, ok := lr.topic.Last(); ok {
		agg.Add(last)
	}
	ans, rerr := agg.Result()
	if rerr != nil {
		rerr.RunID = lr.id
	}
	return ans, rerr
}

// buildSpec resolves an endpoint's model, format, tools and pricing into a run spec.
func (s *Server) buildSpec(ctx context.Context, e *db.Endpoint) (agent.Spec, bool, error) {
	baseURL := ""
	if e.LLMBaseURL != nil {
		baseURL = *e.LLMBaseURL
	}
	model, err := s.models.For(e.LLMProvider, baseURL, e.LLMAPIKey)
	if err != nil {
		return agent.Spec{}, false, err
	}
	format, err := agent.NewFormat(e.OutputFormat, e.OutputSchema)
	if err != nil {
		return agent.Spec{}, false, errValidation("%s", err.Error())
	}
	spec := agent.Spec{
		Model: model, ModelName: e.LLMModel, SystemPrompt: e.SystemPrompt, MaxTokens: e.MaxTokens,
		Temperature: e.Temperature, Format: format, MaxToolCalls: e.MaxToolCalls,
		ToolResultLimit: agent.DefaultToolResultLimit,
	}
	spec.Cost = s.tokenCost(e)
	if e.WorkspaceID != nil {
		tb, err := s.toolbox(ctx, *e.WorkspaceID)
		if err != nil {
			return agent.Spec{}, false, err
		}
		if tb != nil {
			spec.Tools = agentTools{tb}
		}
	}
	return spec, e.LLMAPIKey != "", nil
}

// runJSON is the public shape of a run record.
type runJSON struct {
	ID           string        `json:"id"`
	EndpointID   string        `json:"endpoint_id"`
	Status       string        `json:"status"`
	Input        string        `json:"input"`
	Output       string        `json:"output"`
	ToolCalls    any           `json:"tool_calls"`
	Error        *stream.Error `json:"error"`
	TokensInput  int64         `json:"tokens_input"`
	TokensOutput int64         `json:"tokens_output"`
	CostCents    float64       `json:"cost_cents"`
	LatencyMs    int64         `json:"latency_ms"`
	TTFTMs       int64         `json:"ttft_ms"`
	Iterations   int           `json:"iterations"`
	ChargedCents float64       `json:"charged_cents"`
	Async        bool          `json:"async"`
	CreatedAt    string        `json:"created_at"`
	FinishedAt   *string       `json:"finished_at"`
}

func toRunJSON(r *db.Run) *runJSON {
	j := &runJSON{
		ID: r.ID, EndpointID: r.EndpointID, Status: r.Status, Input: r.Input, Output: r.Output,
		ToolCalls: rawOrArray(r.ToolCalls), TokensInput: r.TokensInput, TokensOutput: r.TokensOutput,
		CostCents: agent.MicroToCents(r.CostMicroCents), LatencyMs: r.LatencyMs, TTFTMs: r.TTFTMs,
		Iterations: r.Iterations, ChargedCents: agent.MicroToCents(r.ChargedMicroCents), Async: r.Async,
		CreatedAt: rfc3339(r.CreatedAt),
	}
	if r.ErrorCode != "" {
		j.Error = &stream.Error{RunID: r.ID, Code: r.ErrorCode, Message: r.ErrorMessage}
	}
	if r.FinishedAt != nil {
		f := rfc3339(*r.FinishedAt)
		j.FinishedAt = &f
	}
	return j
}

func rawOrArray(raw []byte) any {
	if len(raw) == 0 || string(raw) == "null" {
		return []any{}
	}
	return rawJSON(raw)
}

// rawJSON renders stored JSON as is.
type rawJSON []byte

// MarshalJSON returns the stored document.
func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }

var runStatuses = []string{"running", "success", "error", "timeout", "cancelled", "test"}

func (s *Server) listRuns(c *fiber.Ctx) error {
	e, err := s.endpoint(c, true)
	if err != nil {
		return err
	}
	limit := 50
	if q := c.Query("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > 200 {
			return errValidation("limit must be an integer between 1 and 200")
		}
		limit = n
	}
	status := c.Query("status")
	if status != "" && !contains(runStatuses, status) {
		return errValidation("status must be one of %s", strings.Join(runStatuses, ", "))
	}
	s.runner.rlog.sync(c.UserContext())
	runs, next, err := s.store.ListRuns(c.UserContext(), db.RunFilter{
		EndpointID: e.ID, OwnerID: userID(c), Status: status, Limit: limit, Cursor: c.Query("cursor"),
	})
	if err != nil {
		return err
	}
	out := make([]*runJSON, 0, len(runs))
	for _, r := range runs {
		out = append(out, toRunJSON(r))
	}
	var nc any
	if next != "" {
		nc = next
	}
	return c.JSON(fiber.Map{"runs": out, "next_cursor": nc})
}

func (s *Server) getRun(c *fiber.Ctx) error {
	e, err := s.endpoint(c, true)
	if err != nil {
		return err
	}
	s.runner.rlog.sync(c.UserContext())
	r, err := s.store.Run(c.UserContext(), c.Params("run_id"))
	if err != nil || r.EndpointID != e.ID {
		return errNotFound("run")
	}
	return c.JSON(fiber.Map{"run": toRunJSON(r)})
}
