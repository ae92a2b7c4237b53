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

// start begins a run and returns it with a subscription to its events from the first one.
func (rn *runner) start(req startReq) (*liveRun, *stream.Subscription) {
	ctx, cancel := context.WithCancelCause(rn.base)
	ctx, stopTimer := context.WithTimeoutCause(ctx, req.timeout,
		stream.Errorf(stream.CodeTimeout, "run exceeded its timeout of %d ms", req.timeout.Milliseconds()))
	lr := &liveRun{id: req.rec.ID, async: req.async, cancel: cancel, done: make(chan struct{}), ran: make(chan struct{})}
	topic := rn.hub.Open(lr.id)
	lr.topic = topic
	sub, _ := rn.hub.Subscribe(lr.id, 0)

	rn.mu.Lock()
	rn.live[lr.id] = lr
	rn.mu.Unlock()
	rn.wg.Add(1)
	rn.rlog.save(req.rec)

	go func() {
		defer rn.wg.Done()
		defer close(lr.done)
		defer cancel(nil)
		defer stopTimer()
		rn.execute(ctx, lr, topic, &req)
	}()
	return lr, sub
}

// execute runs the run and finishes its record: the body of the run's goroutine.
func (rn *runner) execute(ctx context.Context, lr *liveRun, topic *stream.Topic, req *startReq) {
	var batch *eventBatcher
	if req.async {
		// Stored for replay after this instance forgets the run; written in batches.
		batch = newEventBatcher(lr.id, rn.rlog)
	}
	emit := func(ev stream.Event) {
		ev, err := topic.Publish(ev)
		if err != nil {
			rn.log.Error("publish event", slog.String("run_id", lr.id), slog.Any("err", err))
			return
		}
		batch.add(ev)
	}
	rn.runSafely(ctx, lr, &req.spec, emit)
	lr.modelTime = lr.outcome.ModelTime
	close(lr.ran)
	batch.close()
	rn.finish(ctx, lr, req, &lr.outcome)
}

// finish records, bills and forgets a run that ended with o. It is not inlined into execute,
// whose stack frame stays small while the run waits on its model.
//
//go:noinline
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

// runSafely runs the loop; a panic in it (a bug) is logged, ends the stream with an
// INTERNAL_ERROR event and the run as an error, instead of taking the gateway down.
func (rn *runner) runSafely(ctx context.Context, lr *liveRun, spec *agent.Spec, emit agent.Emit) {
	defer func() {
		if p := recover(); p != nil {
			rn.log.Error("run panicked", slog.String("run_id", lr.id), slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
			lr.topic.Close()
			lr.outcome = agent.Outcome{Status: agent.StatusError, Err: stream.Errorf(stream.CodeInternal, "internal error")}
		}
	}()
	agent.RunTo(ctx, spec, emit, &lr.outcome)
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
