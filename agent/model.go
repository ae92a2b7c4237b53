package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/agentgate/agentgate/stream"
)

// Provider is one OpenAI-compatible model provider as the operator configured it.
type Provider struct {
	Name    string
	BaseURL string // chat-completions base URL (…/v1); empty for custom
	APIKey  string // the operator's key; empty when not configured
	KeyEnv  string // the environment variable that holds the key, named in errors
}

// Provider names (SPEC §4 llm_provider). ProviderDemo is the built-in offline model.
const (
	ProviderOpenAI    = "openai"
	ProviderAnthropic = "anthropic"
	ProviderGemini    = "gemini"
	ProviderGroq      = "groq"
	ProviderCustom    = "custom"
	ProviderDemo      = "demo"
)

// DefaultProviders returns the providers with their public OpenAI-compatible base URLs and
// no keys.
func DefaultProviders() map[string]Provider {
	return map[string]Provider{
		ProviderOpenAI:    {Name: ProviderOpenAI, BaseURL: "https://api.openai.com/v1", KeyEnv: "OPENAI_API_KEY"},
		ProviderAnthropic: {Name: ProviderAnthropic, BaseURL: "https://api.anthropic.com/v1/", KeyEnv: "ANTHROPIC_API_KEY"},
		ProviderGemini:    {Name: ProviderGemini, BaseURL: "https://generativelanguage.googleapis.com/v1beta/openai/", KeyEnv: "GEMINI_API_KEY"},
		ProviderGroq:      {Name: ProviderGroq, BaseURL: "https://api.groq.com/openai/v1", KeyEnv: "GROQ_API_KEY"},
		ProviderCustom:    {Name: ProviderCustom, KeyEnv: "CUSTOM_API_KEY"},
	}
}

// BaseURLEnv returns the environment variable that overrides p's base URL
// (OPENAI_API_KEY → OPENAI_BASE_URL).
func (p Provider) BaseURLEnv() string {
	if p.KeyEnv == "" {
		return ""
	}
	return strings.TrimSuffix(p.KeyEnv, "_API_KEY") + "_BASE_URL"
}

// ProvidersFromEnv returns DefaultProviders with each provider's <NAME>_API_KEY and
// <NAME>_BASE_URL variables, when set, layered over the defaults.
func ProvidersFromEnv(getenv func(string) string) map[string]Provider {
	ps := DefaultProviders()
	for name, p := range ps {
		if v := strings.TrimSpace(getenv(p.KeyEnv)); v != "" {
			p.APIKey = v
		}
		if v := strings.TrimSpace(getenv(p.BaseURLEnv())); v != "" {
			p.BaseURL = v
		}
		ps[name] = p
	}
	return ps
}

// ModelOptions configures Models.
type ModelOptions struct {
	// HTTPClient carries every provider request; nil uses a shared client whose transport
	// keeps many idle connections per host (thousands of concurrent runs to one upstream).
	HTTPClient *http.Client
	// MaxRetries is how often a 408/409/429/5xx or connection failure is retried before the
	// stream starts: 0 means the default 2, negative means never.
	MaxRetries int
	// MaxRetryDelay bounds one wait between retries (default 10s); an upstream that asks
	// for a longer wait (Retry-After) gets no retry and its error is returned.
	MaxRetryDelay time.Duration
	// DemoPace is the demo model's wait between words.
	DemoPace time.Duration
}

// Models hands out Model values for endpoints. Safe for concurrent use.
type Models struct {
	providers  map[string]Provider
	httpClient *http.Client
	retries    int
	retryDelay time.Duration
	demo       Model

	mu    sync.Mutex
	cache map[clientKey]*openAIModel
}

type clientKey struct{ baseURL, apiKey string }

// maxCachedClients bounds the per-(base URL, key) cache; when full it starts over. The
// connections live in the shared transport, so a dropped entry costs only its options.
const maxCachedClients = 1024

// NewModels returns Models over providers (see ProvidersFromEnv).
func NewModels(providers map[string]Provider, opts ModelOptions) *Models {
	m := &Models{
		providers:  providers,
		httpClient: opts.HTTPClient,
		retries:    opts.MaxRetries,
		retryDelay: opts.MaxRetryDelay,
		demo:       NewDemoModel(opts.DemoPace),
		cache:      make(map[clientKey]*openAIModel),
	}
	if m.httpClient == nil {
		m.httpClient = NewHTTPClient()
	}
	switch {
	case m.retries == 0:
		m.retries = 2
	case m.retries < 0:
		m.retries = 0
	}
	if m.retryDelay <= 0 {
		m.retryDelay = 10 * time.Second
	}
	return m
}

// NewHTTPClient returns the client used for providers by default: no overall timeout (runs
// are bounded by their context) and a transport that keeps up to 4096 idle connections per
// upstream host.
func NewHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 0 // no global limit; the per-host limit bounds it
	t.MaxIdleConnsPerHost = 4096
	t.IdleConnTimeout = 90 * time.Second
	t.ResponseHeaderTimeout = 5 * time.Minute
	return &http.Client{Transport: t}
}

// For returns the model for an endpoint's provider. baseURL and apiKey, when not empty,
// are the endpoint's own and win over the provider's. Errors are *stream.Error:
// VALIDATION_ERROR for an unknown provider, LLM_ERROR for a provider with no key (custom
// needs none) or no usable base URL.
func (m *Models) For(provider, baseURL, apiKey string) (Model, error) {
	if provider == ProviderDemo {
		return m.demo, nil
	}
	p, ok := m.providers[provider]
	if !ok {
		return nil, stream.Errorf(stream.CodeValidation, "unknown llm_provider %q", provider)
	}
	if baseURL == "" {
		baseURL = p.BaseURL
	}
	if apiKey == "" {
		apiKey = p.APIKey
	}
	if baseURL == "" {
		return nil, stream.Errorf(stream.CodeLLM, "provider %s has no base URL: set %s or the endpoint's llm_base_url", provider, p.BaseURLEnv())
	}
	if u, err := url.Parse(baseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, stream.Errorf(stream.CodeLLM, "provider %s has an invalid base URL (want http:// or https://)", provider)
	}
	if apiKey == "" && provider != ProviderCustom {
		return nil, stream.Errorf(stream.CodeLLM, "provider %s has no API key: set %s or the endpoint's llm_api_key", provider, p.KeyEnv)
	}

	key := clientKey{baseURL, apiKey}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c, ok := m.cache[key]; ok {
		return c, nil
	}
	if len(m.cache) >= maxCachedClients {
		clear(m.cache)
	}
	// A bare Client, not openai.NewClient: NewClient would read OPENAI_* variables and
	// could send the OpenAI key to another provider.
	c := &openAIModel{
		apiKey: apiKey,
		client: &openai.Client{Options: []option.RequestOption{
			option.WithBaseURL(baseURL),
			option.WithAPIKey(apiKey),
			option.WithHTTPClient(m.httpClient),
			option.WithMaxRetries(m.retries),
			option.WithMaxRetryDelay(m.retryDelay),
			// The SDK's telemetry headers (its language, version, OS, CPU, Go version, retry
			// count, timeout) tell providers nothing they need about the gateway; without them
			// every upstream request carries 4 headers instead of 12, and the header maps it
			// keeps while a stream is open (the request's and net/http's clone) are smaller.
			option.WithHeaderDel("X-Stainless-Lang"),
			option.WithHeaderDel("X-Stainless-Package-Version"),
			option.WithHeaderDel("X-Stainless-OS"),
			option.WithHeaderDel("X-Stainless-Arch"),
			option.WithHeaderDel("X-Stainless-Runtime"),
			option.WithHeaderDel("X-Stainless-Runtime-Version"),
			option.WithHeaderDel("X-Stainless-Retry-Count"),
			option.WithHeaderDel("X-Stainless-Timeout"),
		}},
	}
	m.cache[key] = c
	return c, nil
}

// openAIModel is a Model reached through an OpenAI-compatible chat-completions API.
type openAIModel struct {
	client *openai.Client // only Post is used; its services are left zero
	apiKey string         // only to redact it from upstream messages
}

var _ Model = (*openAIModel)(nil)

// Complete streams one chat completion. See Model.
//
// openai-go sends the request: it retries 429/5xx/connection errors before the stream
// starts and turns a non-2xx answer into *openai.Error; nothing is retried once the
// response has begun. The body is read by chunkStream (chunks.go), not by openai-go's
// reflective decoder. When the provider sends no usage (the stream broke, or it ignores
// include_usage), the usage is estimated: input ≈ prompt characters / 4, output = content
// and tool-argument deltas received (about one token each).
func (m *openAIModel) Complete(ctx context.Context, req Request, onDelta func(delta string)) (Response, error) {
	st := m.open(ctx, req, onDelta, false)
	for !st.step() {
		st.wait()
	}
	return st.result(ctx)
}

// modelStream is one streamed completion read in steps: step decodes what has arrived, wait
// reads more (a model call's long wait), result ends it. A run drives it itself
// (run.advance), so that it waits on the upstream in a shallow stack frame.
type modelStream struct {
	m       *openAIModel
	estIn   int64 // the prompt's estimated tokens, for a provider that reports none
	onDelta func(delta string)
	body    io.ReadCloser // nil when sending failed
	chunks  chunkStream   // filled by wait
	ck      chunk         // the chunk being decoded (its slices are reused)
	c       completion
	ended   bool
	err     error // why the stream ended; nil: cleanly
}

// open sends req and returns its stream; one whose request failed has already ended. here:
// send from this goroutine (see below).
func (m *openAIModel) open(ctx context.Context, req Request, onDelta func(delta string), here bool) *modelStream {
	st := &modelStream{m: m, estIn: estimateInputTokens(&req), onDelta: onDelta}
	if ctx.Err() != nil {
		st.err, st.ended = context.Cause(ctx), true
		return st
	}
	if here {
		st.body, st.err = m.send(ctx, &req)
		return st.opened()
	}
	// The request is sent from a goroutine of its own, which ends once the answer's headers
	// are in: openai-go and net/http need a deep stack to send (8–16 KiB), and the run's
	// goroutine, which then waits on the stream for as long as the model talks, would keep
	// that stack until the collector has halved it (once per cycle) down to the 4 KiB its
	// wait needs. This goroutine's stack goes back to the runtime at once. A panic in it (a
	// bug) goes on in the caller's goroutine, where the server's recovery sees it.
	done := make(chan struct{})
	var crash *sendPanic
	go func() {
		defer close(done)
		defer func() {
			if p := recover(); p != nil {
				crash = &sendPanic{value: p, stack: debug.Stack()}
			}
		}()
		st.body, st.err = m.send(ctx, &req)
	}()
	<-done
	if crash != nil {
		panic(crash)
	}
	return st.opened()
}

// opened readies st for reading once its request was sent (or ends it if that failed).
func (st *modelStream) opened() *modelStream {
	if st.err != nil {
		st.ended = true
		return st
	}
	st.chunks.sse.init(st.body)
	return st
}

// sendPanic is a panic raised while sending a request, carried over to the run's goroutine
// with the stack where it happened.
type sendPanic struct {
	value any
	stack []byte
}

func (p *sendPanic) String() string {
	return fmt.Sprintf("%v (sending the model request)\n%s", p.value, p.stack)
}

// step decodes the chunks that have arrived and reports whether the stream has ended (then
// call result); false: call wait, then step again.
func (st *modelStream) step() bool {
	if st.ended {
		return true
	}
	err := st.c.feed(&st.chunks, &st.ck, st.onDelta)
	if err == errNeedInput {
		return false
	}
	st.err, st.ended = err, true
	return true
}

// wait reads the next piece of the stream (blocking until the upstream sends or the request
// ends: ctx cancels it).
func (st *modelStream) wait() { st.chunks.sse.fill() }

// result closes the stream and returns Complete's answer.
func (st *modelStream) result(ctx context.Context) (Response, error) {
	if st.body != nil {
		st.body.Close()
	}
	return st.m.result(ctx, st.estIn, &st.c, st.err)
}

// completion is what one streamed completion has delivered so far.
type completion struct {
	finish    string // finish_reason
	tokensIn  int64  // usage as reported
	tokensOut int64
	content   strings.Builder
	calls     callAssembler
	deltas    int64 // content and tool-argument deltas received
	usageSeen bool
}

// feed decodes s's chunks into c until [DONE] or the end of the body (nil), an error, or
// errNeedInput (s has used up what arrived). ck is scratch space for one chunk.
func (c *completion) feed(s *chunkStream, ck *chunk, onDelta func(delta string)) error {
	for {
		if err := s.next(ck); err != nil {
			if err == io.EOF {
				return nil
			}
			return err
		}
		if ck.usageValid {
			c.tokensIn = ck.usage.prompt
			c.tokensOut = ck.usage.completion
			c.usageSeen = true
		}
		for i := range ck.choices {
			ch := &ck.choices[i]
			if ch.index != 0 {
				continue // n is never set, so only choice 0 exists
			}
			if d := ch.content; d != "" {
				c.content.WriteString(d)
				c.deltas++
				if onDelta != nil {
					onDelta(d)
				}
			}
			for j := range ch.toolCalls {
				if c.calls.add(&ch.toolCalls[j]) {
					c.deltas++
				}
			}
			if ch.finishReason != "" {
				c.finish = ch.finishReason
			}
		}
	}
}

// result is Complete's answer once the stream ended with err (nil: it ended cleanly).
func (m *openAIModel) result(ctx context.Context, estIn int64, c *completion, err error) (Response, error) {
	resp := Response{FinishReason: c.finish, TokensInput: c.tokensIn, TokensOutput: c.tokensOut}
	resp.Content = c.content.String()
	resp.ToolCalls = c.calls.result()
	if !c.usageSeen && (c.deltas > 0 || (err == nil && ctx.Err() == nil)) {
		resp.TokensInput = estIn
		resp.TokensOutput = c.deltas
	}

	if err == nil && resp.FinishReason != "" {
		return resp, nil // complete, even if ctx ended just after
	}
	if ctx.Err() != nil {
		// Cancelled or timed out: the loop tells which from the cause.
		return resp, context.Cause(ctx)
	}
	if err != nil {
		return resp, m.upstreamError(err, c.deltas > 0)
	}
	return resp, stream.Errorf(stream.CodeLLM, "upstream stream ended before the answer was complete")
}

// send posts the streaming request and returns the response body to read (close it when
// not nil).
func (m *openAIModel) send(ctx context.Context, req *Request) (io.ReadCloser, error) {
	payload, err := requestBody(*req)
	if err != nil {
		return nil, err
	}
	// With a **http.Response result, Post returns the response unread (and reads and
	// closes the body of a non-2xx one for its *openai.Error). A []byte body is sent as it is
	// (and replayed on retries).
	var httpResp *http.Response
	err = m.client.Post(ctx, "chat/completions", payload, &httpResp)
	if httpResp == nil {
		return nil, err
	}
	return httpResp.Body, err
}

// upstreamError maps an SDK or transport error to a caller-safe LLM_ERROR.
func (m *openAIModel) upstreamError(err error, streamed bool) error {
	var apiErr *openai.Error
	if errors.As(err, &apiErr) {
		msg := apiErr.Message
		if msg == "" {
			msg = http.StatusText(apiErr.StatusCode)
		}
		return stream.Errorf(stream.CodeLLM, "upstream answered %d: %s", apiErr.StatusCode, m.safe(msg))
	}
	var evErr *streamEventError
	if errors.As(err, &evErr) {
		var body struct {
			Error struct {
				Message string `json:"message"`
			} `json:"error"`
			Message string `json:"message"` // an "error" event may carry it at the top
		}
		msg := "error event"
		if json.Unmarshal(evErr.data, &body) == nil {
			if body.Error.Message != "" {
				msg = body.Error.Message
			} else if body.Message != "" {
				msg = body.Message
			}
		}
		return stream.Errorf(stream.CodeLLM, "upstream stream failed: %s", m.safe(msg))
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err // the URL adds nothing for the caller
	}
	var netErr net.Error
	if !streamed && errors.As(err, &netErr) {
		return stream.Errorf(stream.CodeLLM, "upstream unreachable: %s", m.safe(err.Error()))
	}
	if errors.Is(err, errInvalidChunk) {
		return stream.Errorf(stream.CodeLLM, "upstream sent an invalid stream chunk")
	}
	if streamed {
		return stream.Errorf(stream.CodeLLM, "upstream stream broke: %s", m.safe(err.Error()))
	}
	return stream.Errorf(stream.CodeLLM, "upstream request failed: %s", m.safe(err.Error()))
}

// maxErrorText bounds the upstream text quoted in an error message.
const maxErrorText = 300

// safe makes upstream text fit for callers: the key redacted, one line, bounded.
func (m *openAIModel) safe(s string) string {
	if m.apiKey != "" {
		s = strings.ReplaceAll(s, m.apiKey, "[redacted]")
	}
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxErrorText {
		cut := maxErrorText
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// estimateInputTokens approximates a prompt's tokens (about 4 characters each, plus a few
// per message) when the provider reported none.
func estimateInputTokens(req *Request) int64 {
	var chars, msgs int64
	for _, msg := range req.Messages {
		msgs++
		chars += int64(len(msg.Content))
		for _, tc := range msg.ToolCalls {
			chars += int64(len(tc.Name) + len(tc.Arguments))
		}
	}
	for _, t := range req.Tools {
		chars += int64(len(t.Name) + len(t.Description) + len(t.Parameters))
	}
	return (chars+3)/4 + 4*msgs
}

// callAssembler assembles streamed tool calls: id and name from the first chunk of each
// index, arguments concatenated. A chunk that brings a new id for an index whose call is
// already named starts a new call (some providers send every call at index 0).
type callAssembler struct {
	calls []*assembling
	byIdx map[int64]*assembling
}

type assembling struct {
	index int64
	seq   int
	call  ToolCall
	args  strings.Builder
}

// add merges one delta; it reports whether the delta carried argument text.
func (a *callAssembler) add(tc *toolCallDelta) bool {
	if a.byIdx == nil {
		a.byIdx = make(map[int64]*assembling)
	}
	cur := a.byIdx[tc.index]
	if cur == nil || (tc.id != "" && cur.call.ID != "" && tc.id != cur.call.ID) {
		cur = &assembling{index: tc.index, seq: len(a.calls)}
		a.calls = append(a.calls, cur)
		a.byIdx[tc.index] = cur
	}
	if cur.call.ID == "" {
		cur.call.ID = tc.id
	}
	if cur.call.Name == "" {
		cur.call.Name = tc.name
	}
	cur.args.WriteString(tc.arguments)
	return tc.arguments != ""
}

// result returns the calls ordered by index (then arrival); missing ids are generated.
func (a *callAssembler) result() []ToolCall {
	if len(a.calls) == 0 {
		return nil
	}
	sorted := slices.Clone(a.calls)
	slices.SortStableFunc(sorted, func(x, y *assembling) int {
		if x.index != y.index {
			if x.index < y.index {
				return -1
			}
			return 1
		}
		return x.seq - y.seq
	})
	out := make([]ToolCall, 0, len(sorted))
	for i, c := range sorted {
		tc := c.call
		tc.Arguments = c.args.String()
		if tc.ID == "" {
			tc.ID = "call_" + strconv.Itoa(i+1)
		}
		out = append(out, tc)
	}
	return out
}

// isReasoningModel reports OpenAI reasoning models (o1, o3, o4-mini, gpt-5 …), which take
// max_completion_tokens and no temperature.
func isReasoningModel(model string) bool {
	model = strings.ToLower(model)
	model = model[strings.LastIndexByte(model, '/')+1:]
	for _, p := range []string{"o1", "o3", "o4", "gpt-5"} {
		if rest, ok := strings.CutPrefix(model, p); ok && (rest == "" || rest[0] == '-') {
			return !strings.HasPrefix(rest, "-chat")
		}
	}
	return false
}
