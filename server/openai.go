package server

// The OpenAI-compatible facade (SPEC §9): POST /v1/chat/completions and GET /v1/models, so
// OpenAI SDKs call agent endpoints unchanged. model = the endpoint's slug, the bearer token =
// the endpoint's key. A facade run is an ordinary run (launchRun): logged, rate limited and
// billed like one on /api/run/:slug. Only the rendering differs: chat.completion JSON, or
// chat.completion.chunk SSE ending in "data: [DONE]", and errors in OpenAI's error shape.
//
// The agent's tool activity is not exposed as OpenAI tool calls: the agent runs its tools
// itself, and the caller sees the final answer.

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/agentgate/agentgate/agent"
	"github.com/agentgate/agentgate/db"
	"github.com/agentgate/agentgate/stream"
)

// facadePrefix is the path prefix of the facade's routes; errors under it are answered in
// OpenAI's error shape (errorHandler).
const facadePrefix = "/v1/"

// chatRequest is the part of a chat-completions request the facade reads. Sampling fields
// (temperature, max_tokens, tools, response_format …) are ignored: the endpoint decides.
type chatRequest struct {
	Model         string        `json:"model"`
	Messages      []chatMessage `json:"messages"`
	Stream        bool          `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	N *int `json:"n"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// facadeError is an error the facade answers with OpenAI's param and code fields set.
// Unwrap gives the application error, so every other mapping still applies.
type facadeError struct {
	err   *stream.Error
	param string // "" → null
	code  string // "" → derived from err.Code
}

func (e *facadeError) Error() string { return e.err.Error() }
func (e *facadeError) Unwrap() error { return e.err }

func badRequest(param, format string, args ...any) *facadeError {
	return &facadeError{err: errValidation(format, args...), param: param}
}

// openAIError is OpenAI's error document.
type openAIError struct {
	Error openAIErrorBody `json:"error"`
}

type openAIErrorBody struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// toOpenAIError renders an error in OpenAI's shape; se is err as the application error.
func toOpenAIError(err error, se *stream.Error) (int, openAIError) {
	status := statusOf(se.Code)
	body := openAIErrorBody{Message: se.Message}
	code := strings.ToLower(se.Code)
	switch {
	case status == fiber.StatusUnauthorized:
		body.Type, code = "invalid_request_error", "invalid_api_key"
	case status == fiber.StatusPaymentRequired:
		body.Type = "insufficient_quota"
	case status == fiber.StatusTooManyRequests:
		body.Type = "requests" // as OpenAI's own rate-limit errors
	case status >= 500:
		body.Type = "server_error"
	default:
		body.Type = "invalid_request_error"
	}
	var fe *facadeError
	if errors.As(err, &fe) {
		if fe.param != "" {
			body.Param = &fe.param
		}
		if fe.code != "" {
			code = fe.code
		}
	}
	body.Code = &code
	return status, openAIError{Error: body}
}

// writeOpenAIError answers err in OpenAI's shape.
func writeOpenAIError(c *fiber.Ctx, err error, se *stream.Error) error {
	status, body := toOpenAIError(err, se)
	return c.Status(status).JSON(body)
}

func isFacadePath(path string) bool { return strings.HasPrefix(path, facadePrefix) }

// facadeEndpoint resolves the model (an endpoint slug) and checks the caller's key against it.
func (s *Server) facadeEndpoint(c *fiber.Ctx, model string) (*db.Endpoint, error) {
	key := facadeKey(c)
	e, ok, err := s.endpoints.forKey(c.UserContext(), model, key)
	if errors.Is(err, db.ErrNotFound) {
		return nil, &facadeError{
			err:   stream.Errorf(stream.CodeNotFound, "The model `%s` does not exist or you do not have access to it.", model),
			param: "model", code: "model_not_found",
		}
	}
	if err != nil {
		return nil, err
	}
	if !ok && key == "" {
		return nil, errUnauthorized("You didn't provide an API key. Send the endpoint's key as Authorization: Bearer aek_…")
	}
	if !ok {
		return nil, errUnauthorized("Incorrect API key provided.")
	}
	return e, nil
}

// facadeKey is the endpoint key of a facade request: the bearer token, or X-API-Key.
func facadeKey(c *fiber.Ctx) string {
	if key, ok := bearer(c); ok {
		return key
	}
	return c.Get("X-API-Key")
}

// chatInput returns the run input of a chat request: the last user message's text (a string,
// or the text parts of an array joined by new lines).
func chatInput(msgs []chatMessage) (string, error) {
	if len(msgs) == 0 {
		return "", badRequest("messages", "messages must be a non-empty array")
	}
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role != "user" {
			continue
		}
		text, err := messageText(msgs[i].Content)
		if err != nil {
			return "", err
		}
		if strings.TrimSpace(text) == "" {
			return "", badRequest("messages", "the last user message is empty")
		}
		return text, nil
	}
	return "", badRequest("messages", "messages must contain a user message")
}

func messageText(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", badRequest("messages", "message content is not a valid string")
		}
		return s, nil
	}
	if len(raw) == 0 || raw[0] != '[' {
		return "", badRequest("messages", "message content must be a string or an array of text parts")
	}
	var parts []struct {
		Type string  `json:"type"`
		Text *string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", badRequest("messages", "message content must be a string or an array of text parts")
	}
	texts := make([]string, 0, len(parts))
	for _, p := range parts {
		if p.Type != "text" || p.Text == nil {
			return "", badRequest("messages", "only text content parts are supported, got %q", p.Type)
		}
		texts = append(texts, *p.Text)
	}
	return strings.Join(texts, "\n"), nil
}

// chatCompletions is POST /v1/chat/completions.
func (s *Server) chatCompletions(c *fiber.Ctx) error {
	var req chatRequest
	if err := json.Unmarshal(c.Body(), &req); err != nil {
		return badRequest("", "We could not parse the JSON body of your request: %s", firstErrLine(err))
	}
	if req.Model == "" {
		return badRequest("model", "you must provide a model parameter (the endpoint's slug)")
	}
	if req.N != nil && *req.N != 1 {
		return badRequest("n", "n must be 1: an agent endpoint gives one answer")
	}
	e, err := s.facadeEndpoint(c, req.Model)
	if err != nil {
		return err
	}
	input, err := chatInput(req.Messages)
	if err != nil {
		return err
	}
	if err := s.limits.allowRun(c, e); err != nil {
		return err
	}
	mode := modeJSON
	if req.Stream {
		mode = modeStream
	}
	lr, sub, err := s.launchRun(c, e, "running", input, mode)
	if err != nil {
		return err
	}
	ch := &chunker{
		id: lr.id, model: e.Slug, created: time.Now().Unix(),
		// json output is validated at the end (and may be retried): send it whole, once valid.
		whole:        e.OutputFormat == agent.OutputJSON,
		includeUsage: req.StreamOptions != nil && req.StreamOptions.IncludeUsage,
	}
	if req.Stream {
		return s.chatStream(c, lr, sub, ch)
	}
	ans, rerr := s.awaitResult(lr)
	if rerr != nil {
		return writeOpenAIError(c, rerr, rerr)
	}
	return c.JSON(chatCompletion{
		ID: ch.id, Object: "chat.completion", Created: ch.created, Model: ch.model,
		Choices: []chatChoice{{Message: chatAnswerMessage{Role: "assistant", Content: answerContent(&ans)}, FinishReason: "stop"}},
		Usage:   usageOf(&ans),
	})
}

func firstErrLine(err error) string {
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	return msg
}

// answerContent is the assistant message of a finished run: the validated JSON (fences
// stripped) for json endpoints, the output as produced otherwise.
func answerContent(a *stream.Answer) string {
	if len(a.OutputParsed) > 0 {
		return string(a.OutputParsed)
	}
	return a.Output
}

// chatCompletion is OpenAI's chat.completion object.
type chatCompletion struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   chatUsage    `json:"usage"`
}

type chatChoice struct {
	Index        int               `json:"index"`
	Message      chatAnswerMessage `json:"message"`
	Logprobs     *struct{}         `json:"logprobs"`
	FinishReason string            `json:"finish_reason"`
}

type chatAnswerMessage struct {
	Role    string  `json:"role"`
	Content string  `json:"content"`
	Refusal *string `json:"refusal"`
}

type chatUsage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
	TotalTokens      int64 `json:"total_tokens"`
}

func usageOf(a *stream.Answer) chatUsage {
	return chatUsage{
		PromptTokens: a.Usage.TokensInput, CompletionTokens: a.Usage.TokensOutput,
		TotalTokens: a.Usage.TokensInput + a.Usage.TokensOutput,
	}
}

// chatChunk is OpenAI's chat.completion.chunk object.
type chatChunk struct {
	ID      string            `json:"id"`
	Object  string            `json:"object"`
	Created int64             `json:"created"`
	Model   string            `json:"model"`
	Choices []chatChunkChoice `json:"choices"`
	Usage   *chatUsage        `json:"usage,omitempty"`
}

type chatChunkChoice struct {
	Index        int       `json:"index"`
	Delta        chatDelta `json:"delta"`
	Logprobs     *struct{} `json:"logprobs"`
	FinishReason *string   `json:"finish_reason"`
}

type chatDelta struct {
	Role    string  `json:"role,omitempty"`
	Content *string `json:"content,omitempty"`
}

// chunker writes a run's events as chat.completion.chunk frames (the frameWriter of
// chatStream).
type chunker struct {
	id, model    string
	created      int64
	whole        bool // send the content once, from done, instead of token by token
	includeUsage bool
	w            stream.Flusher
}

// pingFrame is the heartbeat, an SSE comment.
var pingFrame = []byte(": ping\n\n")

// doneFrame is the stream's last data line.
var doneFrame = []byte("data: [DONE]\n\n")

func (k *chunker) frame(choices []chatChunkChoice, usage *chatUsage) []byte {
	body, _ := json.Marshal(chatChunk{ID: k.id, Object: "chat.completion.chunk", Created: k.created, Model: k.model, Choices: choices, Usage: usage})
	return append(append([]byte("data: "), body...), "\n\n"...)
}

func (k *chunker) content(text string) []byte {
	return k.frame([]chatChunkChoice{{Delta: chatDelta{Content: &text}}}, nil)
}

// first is the opening chunk: the assistant role and empty content.
func (k *chunker) first() []byte {
	empty := ""
	return k.frame([]chatChunkChoice{{Delta: chatDelta{Role: "assistant", Content: &empty}}}, nil)
}

// open starts the stream on w with the opening chunk.
func (k *chunker) open(w stream.Flusher) error {
	k.w = w
	return k.write(k.first())
}

// event writes ev's frames; wrote is false for events OpenAI's stream has no frame for.
func (k *chunker) event(ev stream.Event) (bool, error) {
	frames := k.frames(ev)
	if len(frames) == 0 {
		return false, nil
	}
	return true, k.write(frames...)
}

// ping writes the heartbeat.
func (k *chunker) ping() error { return k.write(pingFrame) }

// cut ends a stream whose run events stopped short (shutdown) with an in-band error.
func (k *chunker) cut(int64, bool) error { return k.write(errorFrame(errShutdown)) }

// write writes frames and flushes.
func (k *chunker) write(frames ...[]byte) error {
	for _, fr := range frames {
		if _, err := k.w.Write(fr); err != nil {
			return err
		}
	}
	return k.w.Flush()
}

// frames renders one event: nothing, content, or the closing frames of done or error (the
// terminal events).
func (k *chunker) frames(ev stream.Event) (out [][]byte) {
	switch ev.Type {
	case stream.TypeToken:
		if !k.whole && ev.Token.Delta != "" {
			out = append(out, k.content(ev.Token.Delta))
		}
	case stream.TypeDone:
		if k.whole {
			if text := answerContent(ev.Done); text != "" {
				out = append(out, k.content(text))
			}
		}
		stop := "stop"
		out = append(out, k.frame([]chatChunkChoice{{Delta: chatDelta{}, FinishReason: &stop}}, nil))
		if k.includeUsage {
			u := usageOf(ev.Done)
			out = append(out, k.frame([]chatChunkChoice{}, &u))
		}
		return append(out, doneFrame)
	case stream.TypeError:
		return [][]byte{errorFrame(ev.Error)}
	case stream.TypeThinking, stream.TypeToolCall, stream.TypeToolResult, stream.TypeUsage:
		// The agent's own progress and tool activity: not part of OpenAI's stream.
	}
	return out
}

// errorFrame is an in-band error, as OpenAI sends one once a stream has started (the SDKs
// raise it).
func errorFrame(se *stream.Error) []byte {
	_, body := toOpenAIError(se, se)
	data, _ := json.Marshal(body)
	return append(append([]byte("data: "), data...), "\n\n"...)
}

// chatStream answers with chat.completion.chunk SSE. Before committing to a 200 stream it
// waits (at most one heartbeat interval) for the first content or the run's end, so a run that
// fails before answering gets an HTTP error status like OpenAI's (401/429/502 …), which the
// SDKs map to their error classes. After that, the stream loop (serveStream) sends chunks,
// pings and notices a client that left, which cancels the run like the native stream.
func (s *Server) chatStream(c *fiber.Ctx, lr *liveRun, sub *stream.Subscription, ch *chunker) error {
	h := s.hubEvents(lr.id, sub)
	gone := func() { lr.cancel(errClientGone) }
	conn := c.Context().Conn()

	wait := time.NewTimer(s.cfg.Heartbeat)
	defer wait.Stop()
	watch := time.NewTicker(watchInterval)
	defer watch.Stop()
	shutdown := s.ctx.Done()
waiting:
	for {
		select {
		case <-h.ready():
			// Events may be left unread when this loop ends: the stream loop reads before it waits.
			for {
				ev, ok := h.next()
				if !ok {
					break
				}
				if ev.Type == stream.TypeError {
					h.close()
					return writeOpenAIError(c, ev.Error, ev.Error)
				}
				h.pending = append(h.pending, ev)
				if ev.Type == stream.TypeDone || (ev.Type == stream.TypeToken && !ch.whole) {
					break waiting
				}
			}
			if h.ended() {
				break waiting
			}
		case <-wait.C:
			break waiting
		case <-watch.C:
			if peerClosed(conn) {
				h.close()
				gone()
				return nil
			}
		case <-shutdown:
			break waiting
		}
	}

	setStreamHeaders(c)
	s.serveStream(c, h, ch, gone)
	return nil
}

// modelObject is OpenAI's model object; an endpoint is one model.
type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func toModelObject(e *db.Endpoint) modelObject {
	return modelObject{ID: e.Slug, Object: "model", Created: e.CreatedAt.Unix(), OwnedBy: "agentgate"}
}

// listModels is GET /v1/models: the endpoint whose key is presented.
func (s *Server) listModels(c *fiber.Ctx) error {
	key := facadeKey(c)
	if key == "" {
		return errUnauthorized("You didn't provide an API key. Send the endpoint's key as Authorization: Bearer aek_…")
	}
	e, err := s.store.EndpointByKeyHash(c.UserContext(), hashKey(key))
	if errors.Is(err, db.ErrNotFound) {
		return errUnauthorized("Incorrect API key provided.")
	}
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"object": "list", "data": []modelObject{toModelObject(e)}})
}

// getModel is GET /v1/models/:model: the endpoint with that slug, to a caller that may run it.
func (s *Server) getModel(c *fiber.Ctx) error {
	e, err := s.facadeEndpoint(c, c.Params("model"))
	if err != nil {
		return err
	}
	return c.JSON(toModelObject(e))
}
