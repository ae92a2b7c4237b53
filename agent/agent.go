// Package agent owns the agent loop: model → tools → model …, producing typed stream events.
// It also holds the model side: the OpenAI-compatible Model, the offline demo model, output
// formats and the price table.
//
// agent imports stream and libraries only. It never imports tools or db: it declares the two
// small interfaces it consumes (Model, Toolbox) and the server hands it concrete values.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/agentgate/agentgate/stream"
)

// Spec is everything one run needs. The server builds it from the endpoint.
type Spec struct {
	RunID        string
	Model        Model
	ModelName    string
	SystemPrompt string
	Input        string
	MaxTokens    int
	Temperature  float64
	Format       *Format // nil: text
	Tools        Toolbox // nil: no tools
	MaxToolCalls int     // tool executions allowed in the run (≥ 1)
	// Cost prices one model call in micro-cents; nil costs nothing.
	Cost func(tokensIn, tokensOut int64) int64
	// ToolResultLimit bounds a tool result sent to the model and kept in the log (bytes).
	ToolResultLimit int
	// SendHere sends model requests from the goroutine that runs the loop. By default each
	// is sent from a short-lived goroutine of its own, so that a run waiting a long time on its
	// model keeps a small stack (see openAIModel.open); a caller whose goroutine has a large
	// stack anyway (an HTTP handler waiting for a JSON answer) saves that hand-over.
	SendHere bool
}

// Emit receives the run's events in order, from the goroutine that called Run. It must not
// block for long (the server's hub never blocks on subscribers).
type Emit func(stream.Event)

// Status values of a finished run (SPEC §7).
const (
	StatusSuccess   = "success"
	StatusError     = "error"
	StatusTimeout   = "timeout"
	StatusCancelled = "cancelled"
)

// Outcome is what a run produced, for the run log and billing. Answer is set on success, Err
// otherwise; usage fields are filled either way with what was spent.
type Outcome struct {
	Status         string
	Answer         *stream.Answer
	Err            *stream.Error
	Output         string
	ToolCalls      []stream.ToolCallRecord
	TokensInput    int64
	TokensOutput   int64
	CostMicroCents int64
	Iterations     int
	TTFT           time.Duration // zero when no token arrived
	Latency        time.Duration
	// ModelTime is the wall time spent inside Model.Complete, summed over the run's model
	// calls: waiting on the upstream plus reading its stream. Latency − ModelTime is what the
	// gateway itself (and the tools) took.
	ModelTime time.Duration
}

// DefaultToolResultLimit bounds what one tool result may put into the prompt.
const DefaultToolResultLimit = 64 << 10

// Run executes the loop and emits thinking/token/tool/usage events and exactly one terminal
// event (done or error), then returns. ctx bounds the run: its cause decides how a cancelled
// run ends — a *stream.Error cause (e.g. TIMEOUT, UNAVAILABLE) is reported as that error, any
// other cause as cancelled.
//
// The run reads spec until it returns (it keeps no copy: an open stream's run holds as
// little as it can); the caller must not change it meanwhile.
func Run(ctx context.Context, spec *Spec, emit Emit) Outcome {
	var o Outcome
	RunTo(ctx, spec, emit, &o)
	return o
}

// RunTo is Run writing the Outcome to out: a caller that keeps out on the heap keeps the stack
// of a run waiting on its model smaller (no frame holds an Outcome meanwhile).
//
// The loop runs in steps (advance) so that, while the model streams, the run waits for the
// upstream's next bytes here, in RunTo's small frame, not below the loop, the model call and
// the decoder: the stack of a goroutine waiting that way stays at 4 KiB instead of 8 KiB, and
// a gateway holds thousands of such waits (see bench/README.md).
func RunTo(ctx context.Context, spec *Spec, emit Emit, out *Outcome) {
	r := newRun(spec, emit)
	for r.advance(ctx) {
		r.call.st.wait()
	}
	r.finish(ctx, r.err, out)
}

// newRun is not inlined: RunTo's frame stays as small as its three variables.
//
//go:noinline
func newRun(spec *Spec, emit Emit) *run {
	r := &run{spec: spec, emit: emit, start: time.Now()}
	if spec.ToolResultLimit <= 0 || spec.Format == nil {
		// Defaults go into a copy: the caller's spec is only read.
		cp := *spec
		if cp.ToolResultLimit <= 0 {
			cp.ToolResultLimit = DefaultToolResultLimit
		}
		if cp.Format == nil {
			cp.Format = &Format{Kind: OutputText}
		}
		r.spec = &cp
	}
	return r
}

type run struct {
	spec  *Spec
	emit  Emit
	start time.Time

	output     strings.Builder // text since the last reset (a JSON corrective retry resets it)
	lastTurn   string          // text of the latest model call
	parsed     json.RawMessage
	toolCalls  []stream.ToolCallRecord
	tokensIn   int64
	tokensOut  int64
	cost       int64
	iterations int
	ttft       time.Duration
	modelTime  time.Duration

	// The loop's state between steps.
	begun   bool
	msgs    []Message  // the prompt of the next model call
	tools   []ToolSpec // the workspace's tools (nil after a JSON correction)
	offer   []ToolSpec // the tools offered to the current call
	spent   int        // tool calls executed
	retried bool       // a JSON correction was asked for
	call    *modelCall // the model call in progress
	err     error      // why the loop ended (nil: it answered)
}

// modelCall is one model call (one iteration) in progress.
type modelCall struct {
	it    int
	start time.Time
	turn  strings.Builder // its text
	// st is the stream of a model the run reads in steps (openAIModel); nil for a Model
	// that streams inside Complete, whose answer is then resp and err.
	st   *modelStream
	resp Response
	err  error
}

// stepper is a Model whose stream the run reads in steps.
type stepper interface {
	open(ctx context.Context, req Request, onDelta func(delta string), here bool) *modelStream
}

func (r *run) thinking(status, msg string, iteration int) {
	r.emit(stream.Event{Type: stream.TypeThinking, Thinking: &stream.Thinking{Status: status, Message: msg, Iteration: iteration}})
}

// advance runs the loop until it must wait on the model's stream (true: wait on r.call.st,
// then advance again) or the run is over (false; r.err says how).
//
//go:noinline
func (r *run) advance(ctx context.Context) bool {
	if !r.begun {
		r.begun = true
		if r.err = r.begin(ctx); r.err != nil {
			return false
		}
		r.startCall(ctx)
	}
	for {
		if st := r.call.st; st != nil && !st.step() {
			return true
		}
		resp, err := r.endCall(ctx)
		if err != nil {
			r.err = err
			return false
		}
		if done, err := r.afterCall(ctx, &resp); done {
			r.err = err
			return false
		}
		r.startCall(ctx)
	}
}

// begin reports the start, loads the tools and builds the first prompt.
func (r *run) begin(ctx context.Context) error {
	r.thinking(stream.StatusStarting, "Starting run", 0)
	tools, err := r.loadTools(ctx)
	if err != nil {
		return err
	}
	r.tools = tools
	r.msgs = r.firstMessages()
	return nil
}

// afterCall decides what follows a model call that answered resp: a tool turn, a JSON
// correction (done false: call the model again) or the end of the run (done true, with the
// error that ends it, if any).
func (r *run) afterCall(ctx context.Context, resp *Response) (done bool, err error) {
	if len(resp.ToolCalls) > 0 && len(r.offer) > 0 {
		if r.msgs, err = r.toolTurn(ctx, r.msgs, resp, r.spent); err != nil {
			return true, err
		}
		r.spent += min(len(resp.ToolCalls), r.spec.MaxToolCalls-r.spent)
		return false, nil
	}
	if r.spec.Format.Kind != OutputJSON {
		return true, nil
	}
	parsed, perr := r.spec.Format.Parse(r.lastTurn)
	if perr == nil {
		r.parsed = parsed
		r.output.Reset()
		r.output.WriteString(r.lastTurn)
		return true, nil
	}
	if r.retried {
		return true, stream.Errorf(stream.CodeValidation, "%s", perr.Error())
	}
	r.retried = true
	r.msgs = r.correction(r.msgs, resp.Content, perr)
	r.tools = nil // the correction is about format, not facts
	return false, nil
}

// loadTools lists the workspace's tools (none without a workspace), reporting progress.
func (r *run) loadTools(ctx context.Context) ([]ToolSpec, error) {
	if r.spec.Tools == nil {
		return nil, nil
	}
	r.thinking(stream.StatusLoadingTools, "Loading tools", 0)
	list, warnings, err := r.spec.Tools.List(ctx)
	if ctxErr := ctx.Err(); ctxErr != nil {
		return nil, ctxErr
	}
	if err != nil {
		warnings = append(warnings, "tools unavailable: "+err.Error())
		list = nil
	}
	msg := fmt.Sprintf("%d tools loaded", len(list))
	if len(list) == 1 {
		msg = "1 tool loaded"
	}
	if len(warnings) > 0 {
		msg += "; " + strings.Join(warnings, "; ")
	}
	r.thinking(stream.StatusToolsLoaded, msg, 0)
	return list, nil
}

// firstMessages is the prompt of the first model call.
func (r *run) firstMessages() []Message {
	return []Message{
		{Role: RoleSystem, Content: r.spec.SystemPrompt + r.spec.Format.Instruction()},
		{Role: RoleUser, Content: r.spec.Input},
	}
}

// toolTurn runs the tool calls of resp (within what is left of the budget) and returns the
// messages with the assistant's calls and their results appended.
func (r *run) toolTurn(ctx context.Context, msgs []Message, resp *Response, spent int) ([]Message, error) {
	msgs = append(msgs, Message{Role: RoleAssistant, Content: resp.Content, ToolCalls: resp.ToolCalls})
	results := r.runTools(ctx, resp.ToolCalls, r.spec.MaxToolCalls-spent)
	if err := ctx.Err(); err != nil {
		return msgs, err
	}
	for i, tc := range resp.ToolCalls {
		msgs = append(msgs, Message{Role: RoleTool, ToolCallID: tc.ID, Content: results[i]})
	}
	return msgs, nil
}

// correction asks the model once more for valid JSON after perr rejected its answer.
func (r *run) correction(msgs []Message, answer string, perr error) []Message {
	r.thinking(stream.StatusLLMCall, "Retrying: "+perr.Error(), r.iterations+1)
	r.output.Reset()
	return append(msgs,
		Message{Role: RoleAssistant, Content: answer},
		Message{Role: RoleUser, Content: "Your previous answer was rejected: " + perr.Error() +
			". Answer again with valid JSON only, no prose and no code fences."})
}

// startCall starts the next model call (one iteration), streaming its text as token events.
// With the workspace's tool budget spent, the call offers no tools, so the caller still gets
// an answer.
func (r *run) startCall(ctx context.Context) {
	r.offer = r.tools
	if r.spent >= r.spec.MaxToolCalls {
		r.offer = nil
	}
	r.iterations++
	c := &modelCall{it: r.iterations}
	r.call = c
	r.thinking(stream.StatusLLMCall, fmt.Sprintf("Calling model %s", r.spec.ModelName), c.it)
	req := Request{
		Model:       r.spec.ModelName,
		Messages:    r.msgs,
		Tools:       r.offer,
		MaxTokens:   r.spec.MaxTokens,
		Temperature: r.spec.Temperature,
		Format:      r.spec.Format.ResponseFormat(),
		Schema:      r.spec.Format.SchemaRaw,
	}
	onDelta := func(delta string) {
		if delta == "" {
			return
		}
		if r.ttft == 0 {
			r.ttft = time.Since(r.start)
		}
		c.turn.WriteString(delta)
		r.output.WriteString(delta)
		r.emit(stream.Event{Type: stream.TypeToken, Token: &stream.Token{Iteration: c.it, Delta: delta}})
	}
	c.start = time.Now()
	if m, ok := r.spec.Model.(stepper); ok {
		c.st = m.open(ctx, req, onDelta, r.spec.SendHere)
		return
	}
	c.resp, c.err = r.spec.Model.Complete(ctx, req, onDelta)
}

// endCall ends the model call whose stream has ended: it counts what the call spent (even
// when it failed: what was spent is billed and logged) and returns its answer.
func (r *run) endCall(ctx context.Context) (Response, error) {
	c := r.call
	r.call = nil
	resp, err := c.resp, c.err
	if c.st != nil {
		resp, err = c.st.result(ctx)
	}
	r.modelTime += time.Since(c.start)
	r.lastTurn = c.turn.String()
	var cost int64
	if r.spec.Cost != nil {
		cost = r.spec.Cost(resp.TokensInput, resp.TokensOutput)
	}
	r.tokensIn += resp.TokensInput
	r.tokensOut += resp.TokensOutput
	r.cost += cost
	if err == nil || resp.TokensInput+resp.TokensOutput > 0 {
		r.emit(stream.Event{Type: stream.TypeUsage, Usage: &stream.Usage{
			Iteration: c.it, TokensInput: resp.TokensInput, TokensOutput: resp.TokensOutput, CostCents: MicroToCents(cost),
		}})
	}
	return resp, err
}

type toolDone struct {
	i       int
	rec     stream.ToolCallRecord
	id      string
	forLLM  string
	latency time.Duration
}

// runTools executes one turn's tool calls concurrently. Calls past the budget are answered
// with an error result without running. It returns the text for the model, by call index.
func (r *run) runTools(ctx context.Context, calls []ToolCall, budget int) []string {
	it := r.iterations
	results := make([]string, len(calls))
	ch := make(chan toolDone, len(calls)) // buffered: workers never block, even if we stop reading
	var wg sync.WaitGroup
	for i, tc := range calls {
		args := toolArguments(tc.Arguments)
		if i >= budget {
			results[i] = "Error: tool call limit (max_tool_calls) reached; answer with what you have."
			continue
		}
		r.emit(stream.Event{Type: stream.TypeToolCall, ToolCall: &stream.ToolCall{Iteration: it, ID: tc.ID, Tool: tc.Name, Arguments: args}})
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch <- r.runTool(ctx, i, tc, args)
		}()
	}
	go func() { wg.Wait(); close(ch) }()
	// Every worker derives from ctx and returns promptly when it ends, so draining ch is bounded.
	for d := range ch {
		results[d.i] = d.forLLM
		r.toolCalls = append(r.toolCalls, d.rec)
		res := d.rec.Result
		if len(res) > stream.ResultLimit {
			res = truncateUTF8(res, stream.ResultLimit) + "…[truncated]"
		}
		r.emit(stream.Event{Type: stream.TypeToolResult, ToolResult: &stream.ToolResult{
			Iteration: it, ID: d.id, Tool: d.rec.Name, Success: d.rec.Success, LatencyMs: d.latency.Milliseconds(), Result: res,
		}})
	}
	return results
}

// toolArguments is the JSON shown in events and the run log for a call's arguments: the
// model's text when it is valid JSON, {} when it is empty, and otherwise the text as a JSON
// string, so the log keeps what the model actually sent (the call itself is refused).
func toolArguments(text string) json.RawMessage {
	switch {
	case strings.TrimSpace(text) == "":
		return json.RawMessage(`{}`)
	case json.Valid([]byte(text)):
		return json.RawMessage(text)
	}
	b, _ := json.Marshal(text)
	return b
}

func (r *run) runTool(ctx context.Context, i int, tc ToolCall, args json.RawMessage) toolDone {
	start := time.Now()
	var text string
	ok := false
	var probe any
	if perr := json.Unmarshal([]byte(tc.Arguments), &probe); perr != nil && strings.TrimSpace(tc.Arguments) != "" {
		text = "Error: the tool arguments are not valid JSON (" + perr.Error() + "); call the tool again with a JSON object"
	} else {
		res, err := r.spec.Tools.Call(ctx, tc.Name, args)
		switch {
		case err != nil:
			text = "Error: " + err.Error()
		case res.IsError:
			text = res.Text
			if !strings.HasPrefix(text, "Error") {
				text = "Error: " + text
			}
		default:
			text, ok = res.Text, true
		}
	}
	if len(text) > r.spec.ToolResultLimit {
		text = truncateUTF8(text, r.spec.ToolResultLimit) + fmt.Sprintf("\n[truncated: %d bytes omitted]", len(text)-r.spec.ToolResultLimit)
	}
	lat := time.Since(start)
	return toolDone{i: i, id: tc.ID, forLLM: text, latency: lat, rec: stream.ToolCallRecord{
		Name: tc.Name, Arguments: args, Result: text, LatencyMs: lat.Milliseconds(), Success: ok,
	}}
}

// finish turns the loop's end into the terminal event and the Outcome, written to o.
func (r *run) finish(ctx context.Context, err error, o *Outcome) {
	*o = Outcome{
		Output: r.output.String(), ToolCalls: r.toolCalls, TokensInput: r.tokensIn, TokensOutput: r.tokensOut,
		CostMicroCents: r.cost, Iterations: r.iterations, TTFT: r.ttft, Latency: time.Since(r.start),
		ModelTime: r.modelTime,
	}
	if o.ToolCalls == nil {
		o.ToolCalls = []stream.ToolCallRecord{}
	}
	if err == nil && ctx.Err() == nil {
		o.Status = StatusSuccess
		o.Answer = &stream.Answer{
			RunID: r.spec.RunID, Output: o.Output, OutputParsed: r.parsed, ToolCalls: o.ToolCalls,
			Usage: stream.RunUsage{
				TokensInput: o.TokensInput, TokensOutput: o.TokensOutput, CostCents: MicroToCents(o.CostMicroCents),
				LatencyMs: o.Latency.Milliseconds(), Iterations: o.Iterations,
			},
		}
		r.emit(stream.Event{Type: stream.TypeDone, Done: o.Answer})
		return
	}
	o.Status, o.Err = classify(ctx, err)
	o.Err.RunID = r.spec.RunID
	r.emit(stream.Event{Type: stream.TypeError, Error: o.Err})
}

// classify maps the loop's error (or the context's cause) to a run status and a safe error.
func classify(ctx context.Context, err error) (string, *stream.Error) {
	if ctx.Err() != nil {
		cause := context.Cause(ctx)
		var se *stream.Error
		if errors.As(cause, &se) {
			e := *se
			if e.Code == stream.CodeTimeout {
				return StatusTimeout, &e
			}
			return StatusCancelled, &e
		}
		if errors.Is(cause, context.DeadlineExceeded) {
			return StatusTimeout, stream.Errorf(stream.CodeTimeout, "run timed out")
		}
		return StatusCancelled, stream.Errorf(stream.CodeUnavailable, "run cancelled: %v", cause)
	}
	var se *stream.Error
	if errors.As(err, &se) {
		e := *se
		return StatusError, &e
	}
	return StatusError, stream.Errorf(stream.CodeInternal, "internal error")
}

// MicroToCents converts micro-cents to cents rounded to 4 decimals (the API's precision).
func MicroToCents(micro int64) float64 {
	// 1 cent = 1e6 micro-cents; 4 decimals of a cent = 100 micro-cents.
	q := micro / 100
	if rem := micro % 100; rem >= 50 {
		q++
	} else if rem <= -50 {
		q--
	}
	return float64(q) / 1e4
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
