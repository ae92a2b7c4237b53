package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/agentgate/agentgate/agent"
	"github.com/agentgate/agentgate/db"
	"github.com/agentgate/agentgate/stream"
)

// runner owns every run's lifetime: a run belongs to the runner, not to the HTTP request that
// started it. It publishes the run's events to the hub, keeps the run log, and settles billing.
type runner struct {
	base context.Context
	hub  *stream.Hub
	rlog *runLog
	log  *slog.Logger

	mu   sync.Mutex
	live map[string]*liveRun
	wg   sync.WaitGroup
}

// liveRun is a run in progress on this instance.
type liveRun struct {
	id     string
	async  bool
	cancel context.CancelCauseFunc
	done   chan struct{} // closed when the run, its record and its billing are finished
	// ran is closed as soon as the agent loop returned (right after its terminal event);
	// modelTime, its time inside model calls, is set before.
	ran       chan struct{}
	modelTime time.Duration
	topic     *stream.Topic // the run's events in the hub (Seq: how far it got)
	// outcome is where the agent loop leaves its result (here, on the heap, so that no frame
	// of the run's goroutine holds one while it waits on the model).
	outcome agent.Outcome
	emit    agent.Emit    // publishes the run's events
	batch   *eventBatcher // stores an async run's events; nil for a synchronous run
	// runHere runs the loop on the caller's goroutine (startReq.here); nil when the run has a
	// goroutine of its own.
	runHere func()
}

// startReq is what the handler prepared for a run.
type startReq struct {
	rec     *db.Run // ID, EndpointID, OwnerID, Status (running|test), Input, CreatedAt filled
	spec    agent.Spec
	timeout time.Duration
	async   bool
	// settle bills the finished run and returns the micro-cents charged. It runs in the run's
	// goroutine after the terminal event went out. Nil: nothing to bill.
	settle func(ctx context.Context, o agent.Outcome) int64
	// onFinish observes the finished run (metrics). Optional.
	onFinish func(rec *db.Run, o agent.Outcome)
	// follow: start returns a subscription to the run's events (a stream); otherwise nil.
	follow bool
	// here: the run's loop is left to the caller (liveRun.runHere), who waits for it anyway.
	here bool
}

func newRunner(base context.Context, store *db.Store, log *slog.Logger, retention, linger time.Duration) *runner {
	return &runner{
		base: base,
		hub:  stream.NewHub(stream.HubOptions{Linger: linger}),
		rlog: newRunLog(store, log, retention),
		log:  log,
		live: make(map[string]*liveRun),
	}
}

// errClientGone is the cause of a synchronous run whose caller went away.
var errClientGone = stream.Errorf(stream.CodeUnavailable, "client disconnected")

// start begins a run and returns it, with a subscription to its events from the first one when
// req.follow (nil otherwise).
func (rn *runner) start(req startReq) (*liveRun, *stream.Subscription) {
	ctx, cancel := context.WithCancelCause(rn.base)
	// The timeout cancels the run with a TIMEOUT cause. A timer, not a context.WithTimeout
	// layer over ctx: one context per run instead of two (an open stream's run holds them).
	timeout := stream.Errorf(stream.CodeTimeout, "run exceeded its timeout of %d ms", req.timeout.Milliseconds())
	timer := time.AfterFunc(req.timeout, func() { cancel(timeout) })
	lr := &liveRun{id: req.rec.ID, async: req.async, cancel: cancel, done: make(chan struct{}), ran: make(chan struct{})}
	// Only an async run can be resumed once it has ended (from its stored log, or from the hub
	// while it lingers); a synchronous run's events are for its caller, who reads them live.
	var topic *stream.Topic
	if req.async {
		topic = rn.hub.Open(lr.id)
	} else {
		topic = rn.hub.OpenShort(lr.id)
	}
	lr.topic = topic
	var sub *stream.Subscription
	if req.follow {
		sub, _ = rn.hub.Subscribe(lr.id, 0)
	}

	if req.async {
		// Stored for replay after this instance forgets the run; written in batches.
		lr.batch = newEventBatcher(lr.id, rn.rlog)
	}
	lr.emit = func(ev stream.Event) {
		ev, err := topic.Publish(ev)
		if err != nil {
			rn.log.Error("publish event", slog.String("run_id", lr.id), slog.Any("err", err))
			return
		}
		lr.batch.add(ev)
	}

	rn.mu.Lock()
	rn.live[lr.id] = lr
	rn.mu.Unlock()
	rn.wg.Add(1)
	rn.rlog.save(req.rec)

	if req.here {
		lr.runHere = func() { rn.executeHere(ctx, lr, &req, timer) }
		return lr, sub
	}
	go rn.execute(ctx, lr, &req, timer)
	return lr, sub
}

// execute is the run's goroutine. While the run streams from its model, this frame is the
// only one above agent.RunTo's wait, so it holds nothing but its arguments: the goroutine's
// stack then stays at 4 KiB (bench/README.md, "What an open stream is made of"). ended does
// the rest, also after a panic.
func (rn *runner) execute(ctx context.Context, lr *liveRun, req *startReq, timer *time.Timer) {
	defer rn.ended(ctx, lr, req, timer, false)
	agent.RunTo(ctx, &req.spec, lr.emit, &lr.outcome)
}

// executeHere runs the loop on the caller's goroutine (a JSON answer's handler, which waits
// for it anyway: no goroutine to start and no hand-over to wait for) and returns once its
// terminal event is out; billing with a settlement to write goes on in a goroutine of its
// own, so the answer does not wait for it.
func (rn *runner) executeHere(ctx context.Context, lr *liveRun, req *startReq, timer *time.Timer) {
	defer rn.ended(ctx, lr, req, timer, true)
	req.spec.SendHere = true
	agent.RunTo(ctx, &req.spec, lr.emit, &lr.outcome)
}

// ended finishes a run whose loop returned, or panicked: a panic (a bug) is logged and ends
// the stream with an INTERNAL_ERROR event and the run as an error, instead of taking the
// gateway down. Then the run is recorded, billed and forgotten (in a new goroutine when
// later).
func (rn *runner) ended(ctx context.Context, lr *liveRun, req *startReq, timer *time.Timer, later bool) {
	if p := recover(); p != nil {
		rn.log.Error("run panicked", slog.String("run_id", lr.id), slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
		lr.outcome = agent.Outcome{Status: agent.StatusError, Err: stream.Errorf(stream.CodeInternal, "internal error")}
	}
	lr.modelTime = lr.outcome.ModelTime
	lr.topic.Close() // the run's terminal event is published (an INTERNAL_ERROR if it had none)
	close(lr.ran)
	lr.batch.close()
	if later && req.settle != nil {
		go rn.forget(ctx, lr, req, timer) // billing writes to the database: not before the answer
		return
	}
	rn.forget(ctx, lr, req, timer)
}

// forget records and bills a run whose loop is over, then lets it go.
func (rn *runner) forget(ctx context.Context, lr *liveRun, req *startReq, timer *time.Timer) {
	defer rn.wg.Done()
	defer close(lr.done)
	defer lr.cancel(nil)
	defer timer.Stop()
	rn.finish(ctx, lr, req, &lr.outcome)
}

// finish records, bills and forgets a run that ended with o.
func (rn *runner) finish(ctx context.Context, lr *liveRun, req *startReq, o *agent.Outcome) {
	rec := req.rec
	finishRecord(rec, *o)
	if req.settle != nil {
		// Billing must finish even when the run was cancelled by shutdown.
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		rec.ChargedMicroCents = req.settle(sctx, *o)
		scancel()
	}
	rn.rlog.save(rec)
	if req.onFinish != nil {
		req.onFinish(rec, *o)
	}
	rn.mu.Lock()
	delete(rn.live, lr.id)
	rn.mu.Unlock()
}

// finishRecord copies a run's outcome into its record.
func finishRecord(rec *db.Run, o agent.Outcome) {
	now := time.Now().UTC()
	rec.FinishedAt = &now
	if rec.Status != "test" {
		rec.Status = o.Status
	}
	rec.Output = o.Output
	rec.ToolCalls, _ = json.Marshal(o.ToolCalls)
	rec.TokensInput, rec.TokensOutput = o.TokensInput, o.TokensOutput
	rec.CostMicroCents = o.CostMicroCents
	rec.LatencyMs = o.Latency.Milliseconds()
	rec.TTFTMs = o.TTFT.Milliseconds()
	rec.Iterations = o.Iterations
	if o.Err != nil {
		rec.ErrorCode, rec.ErrorMessage = o.Err.Code, o.Err.Message
	}
}

// lookup returns a run live on this instance.
func (rn *runner) lookup(id string) (*liveRun, bool) {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	lr, ok := rn.live[id]
	return lr, ok
}

// active is the number of runs in progress.
func (rn *runner) active() int {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	return len(rn.live)
}

// wait blocks until every run has finished or ctx ends.
func (rn *runner) wait(ctx context.Context) {
	done := make(chan struct{})
	go func() { rn.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// close flushes the run log and closes the hub. Call after every run finished.
func (rn *runner) close(ctx context.Context) error {
	rn.rlog.close(ctx)
	rn.hub.Close()
	return nil
}
