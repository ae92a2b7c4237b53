package server

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/agentgate/agentgate/db"
	"github.com/agentgate/agentgate/stream"
)

// This file holds what lets a stream outlive the instance that runs it: following a run from
// the stored event log (a run on another replica, or one from before a restart), the
// notifications that wake those followers, the terminal event a stream gets at shutdown, and
// the recovery of run records a crashed process left "running".

// eventFlushAge bounds how long an async run's events wait in the runner before they are
// queued for storage, so followers on other instances see tokens in small bursts, also when
// the model pauses.
const eventFlushAge = 100 * time.Millisecond

// eventBatchSize is the most token events queued for storage in one batch.
const eventBatchSize = 32

// eventBatcher gathers an async run's events for the run log: a batch goes out at
// eventBatchSize tokens, at any other event, or eventFlushAge after its first event (a timer
// owned by the batcher, stopped by close). A nil batcher (a synchronous run) stores nothing.
type eventBatcher struct {
	runID string
	rlog  *runLog

	mu      sync.Mutex
	pending []db.RunEvent
	timer   *time.Timer
	closed  bool
}

func newEventBatcher(runID string, rlog *runLog) *eventBatcher {
	return &eventBatcher{runID: runID, rlog: rlog}
}

// add queues ev (the producer calls it in seq order).
func (b *eventBatcher) add(ev stream.Event) {
	if b == nil {
		return
	}
	data, _ := ev.Data()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.pending = append(b.pending, db.RunEvent{RunID: b.runID, Seq: ev.Seq, Type: string(ev.Type), Data: data, CreatedAt: time.Now().UTC()})
	switch {
	case len(b.pending) >= eventBatchSize || ev.Type != stream.TypeToken:
		b.flushLocked()
	case b.timer == nil:
		b.timer = time.AfterFunc(eventFlushAge, b.flush)
	}
}

// flush queues what is pending (the timer's function).
func (b *eventBatcher) flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
}

func (b *eventBatcher) flushLocked() {
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	if len(b.pending) > 0 {
		b.rlog.events(b.pending)
		b.pending = nil
	}
}

// close queues what is pending and stops the timer. After close, add does nothing.
func (b *eventBatcher) close() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
	b.closed = true
}

// shutdownGrace is how long a stream waits, once shutdown cancelled the runs, for its run's own
// terminal event before it ends with the shutdown event itself.
const shutdownGrace = 2 * time.Second

// interruptedMargin is added to a run's timeout before startup declares it interrupted: a run
// never outlives its timeout, and billing and the record write follow within this margin. Runs
// younger than that may belong to another replica and are left alone.
const interruptedMargin = 2 * time.Minute

// errInterrupted is the error given to runs a stopped process left behind.
var errInterrupted = stream.Errorf(stream.CodeInternal, "run interrupted: the gateway running it stopped before it finished")

// shutdownEvent is the terminal event of a stream cut by shutdown while its run goes on (or is
// unknown) elsewhere. It carries the id of the last run event the client got, not a new
// sequence number: a client resuming with it (EventSource does so by itself) loses nothing.
func shutdownEvent(runID string, last int64) stream.Event {
	return stream.Event{Seq: last, Type: stream.TypeError, Error: &stream.Error{
		RunID: runID, Code: errShutdown.Code, Message: errShutdown.Message,
	}}
}

// follower wakes the streams that follow runs from the stored event log. With PostgreSQL it
// holds one LISTEN connection (db.ListenEvents) and wakes a run's streams on each
// notification; streams also poll, every poll interval, as the fallback (and the only way on
// SQLite, where several processes may share one file).
type follower struct {
	store    *db.Store
	log      *slog.Logger
	listener *db.EventListener // nil: polling only
	poll     time.Duration

	mu      sync.Mutex
	waiters map[string]map[chan struct{}]struct{}
}

// newFollower starts listening for event notifications when the store supports them. poll is
// the polling interval without notifications; with them, polling is only a safety net and runs
// ten times less often. onEndpoints is called when another instance wrote endpoints or
// workspaces, and after a lost notification connection is back (one may have been missed).
func newFollower(ctx context.Context, store *db.Store, log *slog.Logger, poll time.Duration, onEndpoints func()) *follower {
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	f := &follower{store: store, log: log, poll: poll, waiters: make(map[string]map[chan struct{}]struct{})}
	if store.CanListen() {
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		el, err := store.ListenEvents(lctx, f.poke, onEndpoints, func() { f.pokeAll(); onEndpoints() })
		cancel()
		if err != nil {
			log.Warn("event notifications unavailable: following runs of other instances by polling", slog.Any("err", err))
		} else {
			f.listener = el
			f.poll = 10 * poll
		}
	}
	return f
}

// watch registers a waiter for run runID: its channel receives a token when new events of the
// run may be stored. Call the returned function to unregister.
func (f *follower) watch(runID string) (<-chan struct{}, func()) {
	c := make(chan struct{}, 1)
	f.mu.Lock()
	set := f.waiters[runID]
	if set == nil {
		set = make(map[chan struct{}]struct{})
		f.waiters[runID] = set
	}
	set[c] = struct{}{}
	f.mu.Unlock()
	return c, func() {
		f.mu.Lock()
		delete(set, c)
		if len(set) == 0 { // an empty set is the one registered (it is removed when empty)
			delete(f.waiters, runID)
		}
		f.mu.Unlock()
	}
}

// poke wakes the waiters of one run without blocking.
func (f *follower) poke(m db.EventMark) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.waiters[m.RunID] {
		select {
		case c <- struct{}{}:
		default:
		}
	}
}

// pokeAll wakes every waiter (the notification connection was re-established: some
// notifications may have been lost).
func (f *follower) pokeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, set := range f.waiters {
		for c := range set {
			select {
			case c <- struct{}{}:
			default:
			}
		}
	}
}

// close stops listening. Idempotent.
func (f *follower) close() {
	if f.listener != nil {
		f.listener.Close()
	}
}

// notify announces stored events to the followers of other instances (PostgreSQL).
func (l *runLog) notify(events []db.RunEvent) {
	if !l.store.CanListen() {
		return
	}
	last := make(map[string]int64)
	var order []string
	for _, ev := range events {
		if _, ok := last[ev.RunID]; !ok {
			order = append(order, ev.RunID)
		}
		last[ev.RunID] = max(last[ev.RunID], ev.Seq)
	}
	marks := make([]db.EventMark, 0, len(order))
	for _, id := range order {
		marks = append(marks, db.EventMark{RunID: id, Seq: last[id]})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.store.NotifyEvents(ctx, marks); err != nil {
		// Followers still poll: a lost notification only delays them.
		l.log.Warn("event notification failed", slog.Any("err", err))
	}
}

// cleanupInterval is how often the retention cleanup runs: a tenth of the retention, between
// one second and one hour.
func cleanupInterval(retention time.Duration) time.Duration {
	return min(max(retention/10, time.Second), time.Hour)
}

// finishInterrupted gives a final status to the runs a stopped process left "running" (see
// interruptedMargin for why replicas' runs are safe).
func (s *Server) finishInterrupted() {
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	n, err := s.store.FinishInterruptedRuns(ctx, time.Now(), interruptedMargin, errInterrupted.Code, errInterrupted.Message)
	switch {
	case err != nil:
		s.log.Warn("finishing interrupted runs failed", slog.Any("err", err))
	case n > 0:
		s.log.Info("interrupted runs marked as error", slog.Int64("runs", n))
	}
}

// finishLeftovers is the last step of a shutdown whose deadline passed while runs were still
// finishing: their records get a final status directly in the store.
func (s *Server) finishLeftovers() {
	s.runner.mu.Lock()
	ids := make([]string, 0, len(s.runner.live))
	for id := range s.runner.live {
		ids = append(ids, id)
	}
	s.runner.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.store.FinishRunsIfRunning(ctx, ids, db.RunCancelled, errShutdown.Code, errShutdown.Message); err != nil {
		s.log.Error("finishing runs at shutdown failed", slog.Int("runs", len(ids)), slog.Any("err", err))
	}
}

// storedEvents reads the run's stored events after seq as stream events.
func storedEvents(ctx context.Context, store *db.Store, runID string, after int64) ([]stream.Event, error) {
	stored, err := store.Events(ctx, runID, after)
	if err != nil {
		return nil, err
	}
	out := make([]stream.Event, 0, len(stored))
	for _, se := range stored {
		ev, err := stream.Parse(se.Seq, se.Type, se.Data)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, nil
}

// logEvents reads a run's events from the stored event log, after the last one read. The
// follower's notifications wake it; polling is the fallback, and also notices a run that
// finished without its terminal event in the log.
type logEvents struct {
	base    context.Context // the server's: bounds the reads
	store   *db.Store
	log     *slog.Logger
	runID   string
	seq     int64           // the last event read
	wake    <-chan struct{} // the follower's notifications for the run
	unwatch func()
	ticker  *time.Ticker // the poll
}

// logEvents returns the source of a run's stored events after after. It registers with the
// follower at once: a batch stored before the first read still wakes it.
func (s *Server) logEvents(runID string, after int64) *logEvents {
	wake, unwatch := s.follow.watch(runID)
	return &logEvents{
		base: s.ctx, store: s.store, log: s.log, runID: runID, seq: after,
		wake: wake, unwatch: unwatch, ticker: time.NewTicker(s.follow.poll),
	}
}

// ready fires on a notification for the run.
func (l *logEvents) ready() <-chan struct{} { return l.wake }

// poll fires every poll interval.
func (l *logEvents) poll() <-chan time.Time { return l.ticker.C }

// read hands the stored events after the last one read to emit. On a poll that finds
// nothing, it also checks whether the run finished without its terminal event in the log.
func (l *logEvents) read(emit func(stream.Event) bool, polled bool) bool {
	n, more := l.send(emit)
	if more && polled && n == 0 && l.finished(emit) {
		return false
	}
	return more
}

// send hands the stored events after the last one read to emit, in order and never past a
// gap (it fills on a later read). It returns how many it handed, and false once emit returned
// false. A failed read is logged and tried again on the next wake or poll.
func (l *logEvents) send(emit func(stream.Event) bool) (int, bool) {
	ctx, cancel := context.WithTimeout(l.base, 10*time.Second)
	evs, err := storedEvents(ctx, l.store, l.runID, l.seq)
	cancel()
	if err != nil {
		if l.base.Err() == nil {
			l.log.Warn("follow run: read events", slog.String("run_id", l.runID), slog.Any("err", err))
		}
		return 0, true
	}
	n := 0
	for _, ev := range evs {
		if ev.Seq != l.seq+1 {
			break
		}
		l.seq, n = ev.Seq, n+1
		if !emit(ev) {
			return n, false
		}
	}
	return n, true
}

// finished checks whether the run finished without its terminal event in the log (a crash, or
// a failed write): then it hands emit the record's error as the terminal event, and returns
// true. It returns false while the run goes on, or when the log had more events after all.
func (l *logEvents) finished(emit func(stream.Event) bool) bool {
	ctx, cancel := context.WithTimeout(l.base, 10*time.Second)
	defer cancel()
	r, err := l.store.Run(ctx, l.runID)
	if err != nil || r.FinishedAt == nil {
		return false
	}
	if n, more := l.send(emit); !more || n > 0 {
		return !more
	}
	e := &stream.Error{RunID: l.runID, Code: r.ErrorCode, Message: r.ErrorMessage}
	if e.Code == "" {
		e.Code, e.Message = stream.CodeInternal, "run ended without its event log"
	}
	emit(stream.Event{Seq: l.seq + 1, Type: stream.TypeError, Error: e})
	return true
}

// last is the sequence number of the last event read.
func (l *logEvents) last() int64 { return l.seq }

// shutdown ends the stream at once: the run goes on elsewhere (or was interrupted), and the
// client resumes with the id of the last event it got.
func (l *logEvents) shutdown() bool { return true }

// close stops the poll and unregisters from the follower.
func (l *logEvents) close() {
	l.ticker.Stop()
	l.unwatch()
}

// sseFollow answers with a run's events from the stored event log, after after: it replays
// what is stored, then follows new batches (woken by notifications, or polling) until the
// terminal event. It is sse for runs this instance does not run.
func (s *Server) sseFollow(c *fiber.Ctx, runID string, after int64) error {
	return s.sse(c, runID, s.logEvents(runID, after), nil)
}
