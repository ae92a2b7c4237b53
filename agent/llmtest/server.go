// Package llmtest owns a scripted OpenAI-compatible chat-completions server: real HTTP on a
// loopback port, the real wire format (SSE chunks or one JSON document), replies scripted by
// the test, and every request recorded. Model-facing tests and the benchmark upstream use it.
//
// llmtest imports only the standard library; it must not import agent, tools, db or server.
package llmtest

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// Reply scripts the answer to one request.
type Reply struct {
	// Text is the assistant text. When Chunks is empty it is streamed split at word
	// boundaries (each piece but the first starts with its space).
	Text string
	// Chunks, when set, is the exact sequence of content deltas (Text is then ignored).
	Chunks []string
	// ToolCalls are requested after the text; their arguments are streamed in several pieces.
	ToolCalls []ToolCall
	// Usage, when nil, is computed deterministically (see Usage).
	Usage *Usage
	// Status, when set and not 200, makes the server answer an OpenAI error JSON with this
	// status (message: Text, or the status text) — unless ErrorAfter is set, see there.
	Status int
	// RetryAfter, when set, is sent with an error status as Retry-After-Ms, so clients that
	// honour it (openai-go does) retry without their default backoff.
	RetryAfter time.Duration
	// ErrorAfter, when > 0, breaks a stream after that many data chunks have been written
	// (the first chunk, carrying the role, counts). Without Status the connection is dropped
	// (no [DONE], no terminating chunk); with Status the stream carries an in-band
	// {"error":{...}} event (message: the status text) and ends. When the reply has exactly ErrorAfter chunks (finish and
	// usage chunks count) the break replaces [DONE]; with fewer it is answered in full.
	ErrorAfter int
	// Delay waits before the first byte of the answer.
	Delay time.Duration
	// Pace waits between chunks; 0 uses the server's pace (option WithPace).
	Pace time.Duration
	// Hang sends the headers, the role chunk and the content and tool-call chunks, then
	// blocks until the client goes away (finish_reason, usage and [DONE] are never sent).
	Hang bool
	// FinishReason overrides the computed one ("stop", or "tool_calls" when ToolCalls is
	// set); use "length" to emulate truncation.
	FinishReason string
}

// ToolCall is one tool invocation in a scripted Reply.
type ToolCall struct {
	ID        string // default "call_<n>"
	Name      string
	Arguments string // JSON text, streamed in several pieces
}

// Usage is the token count of a reply.
//
// Computed usage: Prompt is the number of whitespace-separated words in all request
// messages (contents and tool-call arguments) plus 1 per message; Completion is the number
// of content and tool-call argument chunks streamed.
type Usage struct {
	Prompt     int
	Completion int
}

// Request is one recorded chat-completions request.
type Request struct {
	Seq            int // 1-based arrival order
	Model          string
	Messages       []Message
	Tools          []Tool
	MaxTokens      *int
	MaxCompletion  *int // max_completion_tokens
	Temperature    *float64
	ResponseFormat *ResponseFormat
	Stream         bool
	IncludeUsage   bool // stream_options.include_usage
	Authorization  string
	Header         http.Header // every request header
	Body           []byte      // the raw request body
	// Aborted reports that the client went away before the reply was complete.
	Aborted bool
}

// LastUser returns the content of the last user message, or "".
func (r Request) LastUser() string {
	for i := len(r.Messages) - 1; i >= 0; i-- {
		if r.Messages[i].Role == "user" {
			return r.Messages[i].Content
		}
	}
	return ""
}

// Message is one request message. Content joins the text parts when it was sent as parts.
type Message struct {
	Role       string
	Content    string
	ToolCalls  []ToolCall
	ToolCallID string
}

// Tool is one offered function tool.
type Tool struct {
	Type        string
	Name        string
	Description string
	Parameters  json.RawMessage
}

// ResponseFormat is the request's response_format.
type ResponseFormat struct {
	Type       string          // text, json_object, json_schema
	Name       string          // json_schema.name
	Strict     *bool           // json_schema.strict
	JSONSchema json.RawMessage // json_schema.schema
}

// Option configures a Server.
type Option func(*config)

type config struct {
	pace      time.Duration
	model     string
	key       string
	noRecord  bool
	signalCap int
}

// WithPace sets the default wait between chunks (to emulate tokens per second).
func WithPace(d time.Duration) Option { return func(c *config) { c.pace = d } }

// WithModel sets the model id listed by GET /v1/models (default "llmtest").
func WithModel(name string) Option { return func(c *config) { c.model = name } }

// WithAPIKey makes the server answer 401 to requests without "Authorization: Bearer key".
func WithAPIKey(key string) Option { return func(c *config) { c.key = key } }

// WithoutRecording stops keeping requests for Requests (for long benchmark runs); Started
// and Aborted still signal.
func WithoutRecording() Option { return func(c *config) { c.noRecord = true } }

// Server is a scripted OpenAI-compatible chat-completions server. Safe for concurrent use.
type Server struct {
	cfg  config
	srv  *http.Server
	ln   net.Listener
	url  string
	base context.Context
	stop context.CancelFunc
	done chan struct{} // closed when Serve returned

	mu       sync.Mutex
	queue    []Reply
	handler  func(Request) Reply
	requests []*Request
	seq      int

	started chan Request
	aborted chan Request

	closeOnce sync.Once
}

// signalBuffer is how many Started/Aborted signals are kept for a reader; more are dropped.
const signalBuffer = 1024

// New starts a Server on 127.0.0.1:0 and closes it when the test ends.
func New(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	s, err := Start("127.0.0.1:0", nil, opts...)
	if err != nil {
		tb.Fatalf("llmtest: %v", err)
	}
	tb.Cleanup(s.Close)
	return s
}

// Start starts a Server on addr (e.g. "127.0.0.1:0"); handler, when not nil, picks the reply
// of every request whose reply is not scripted. The caller must Close it.
func Start(addr string, handler func(Request) Reply, opts ...Option) (*Server, error) {
	cfg := config{model: "llmtest"}
	for _, o := range opts {
		o(&cfg)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	base, stop := context.WithCancel(context.Background())
	s := &Server{
		cfg:     cfg,
		ln:      ln,
		url:     "http://" + ln.Addr().String() + "/v1",
		base:    base,
		stop:    stop,
		done:    make(chan struct{}),
		handler: handler,
		started: make(chan Request, signalBuffer),
		aborted: make(chan Request, signalBuffer),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.serveChat)
	mux.HandleFunc("GET /v1/models", s.serveModels)
	s.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		// Request contexts derive from base, so Close unblocks every handler.
		BaseContext: func(net.Listener) context.Context { return base },
	}
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// Handler returns the server's HTTP handler, so it can also be served on another listener
// (the benchmark upstream serves it over TLS). Close does not end requests served there.
func (s *Server) Handler() http.Handler { return s.srv.Handler }

// URL returns the base URL to give an OpenAI client, ending in /v1.
func (s *Server) URL() string { return s.url }

// Addr returns the listening address (host:port).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server: open handlers return, connections close. It waits for the
// serving goroutine and is idempotent.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.stop()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			_ = s.srv.Close()
		}
		<-s.done
	})
}

// Script queues replies, answered in order, one per request. When the queue is empty the
// Handle function answers, else a default reply echoing the last user message.
func (s *Server) Script(replies ...Reply) {
	s.mu.Lock()
	s.queue = append(s.queue, replies...)
	s.mu.Unlock()
}

// Handle sets the function that picks the reply of each request not answered by the
// script. It is called concurrently.
func (s *Server) Handle(f func(Request) Reply) {
	s.mu.Lock()
	s.handler = f
	s.mu.Unlock()
}

// Requests returns a copy of every request received so far, in arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		out[i] = *r
	}
	return out
}

// Started signals each request once the first bytes of its answer have been flushed
// (headers and the role chunk, for a stream). Signals beyond a buffer of 1024 unread ones
// are dropped.
func (s *Server) Started() <-chan Request { return s.started }

// Aborted signals each request whose client went away before its reply was complete
// (Aborted is set). Signals beyond a buffer of 1024 unread ones are dropped.
func (s *Server) Aborted() <-chan Request { return s.aborted }

// WaitAborted waits for the next aborted request, or for ctx.
func (s *Server) WaitAborted(ctx context.Context) (Request, error) {
	select {
	case r := <-s.aborted:
		return r, nil
	case <-ctx.Done():
		return Request{}, ctx.Err()
	}
}

// WaitStarted waits for the next started request, or for ctx.
func (s *Server) WaitStarted(ctx context.Context) (Request, error) {
	select {
	case r := <-s.started:
		return r, nil
	case <-ctx.Done():
		return Request{}, ctx.Err()
	}
}

func (s *Server) serveModels(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	body, _ := json.Marshal(map[string]any{
		"object": "list",
		"data": []map[string]any{{
			"id": s.cfg.model, "object": "model", "created": 1700000000, "owned_by": "llmtest",
		}},
	})
	_, _ = w.Write(body)
}

// next picks the reply for req.
func (s *Server) next(req Request) Reply {
	s.mu.Lock()
	if len(s.queue) > 0 {
		r := s.queue[0]
		s.queue = s.queue[1:]
		s.mu.Unlock()
		return r
	}
	h := s.handler
	s.mu.Unlock()
	if h != nil {
		return h(req)
	}
	return Reply{Text: req.LastUser()}
}

// record stores req and returns the stored copy that later marks update.
func (s *Server) record(req Request) *Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	req.Seq = s.seq
	p := &req
	if !s.cfg.noRecord {
		s.requests = append(s.requests, p)
	}
	return p
}

func (s *Server) markAborted(p *Request) {
	s.mu.Lock()
	p.Aborted = true
	r := *p
	s.mu.Unlock()
	select {
	case s.aborted <- r:
	default:
	}
}

func (s *Server) markStarted(p *Request) {
	s.mu.Lock()
	r := *p
	s.mu.Unlock()
	select {
	case s.started <- r:
	default:
	}
}

func (s *Server) serveChat(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "could not read the request body", 0)
		return
	}
	req, err := decodeRequest(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid request JSON: "+err.Error(), 0)
		return
	}
	req.Authorization = r.Header.Get("Authorization")
	req.Header = r.Header.Clone()
	rec := s.record(req)
	if s.cfg.key != "" && req.Authorization != "Bearer "+s.cfg.key {
		writeError(w, http.StatusUnauthorized, "Incorrect API key provided.", 0)
		return
	}
	reply := s.next(*rec)
	if reply.Pace == 0 {
		reply.Pace = s.cfg.pace
	}
	a := answer{s: s, w: w, ctx: r.Context(), req: rec, reply: reply}
	a.run()
}

// maxBody bounds a request body; larger requests answer 400.
const maxBody = 16 << 20

func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	defer r.Body.Close()
	return io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
}
