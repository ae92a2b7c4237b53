package server

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/agentgate/agentgate/db"
)

// runLog writes run records and stored events off the streaming path: one goroutine takes
// everything queued and writes it in batches (one transaction per batch). Readers that must see
// their own writes call sync first.
type runLog struct {
	store     *db.Store
	log       *slog.Logger
	ch        chan logItem
	urgent    chan struct{} // a reader waits (sync) or the log closes: stop lingering
	done      chan struct{}
	retention time.Duration
	// observe, when set, is told each batch's size and write time (metrics). Set it before
	// anything is queued.
	observe func(runs, events int, d time.Duration)

	// mu guards closed: a run that outlived a shutdown deadline must not send on the closed
	// channel (its record is finished by Shutdown instead).
	mu     sync.RWMutex
	closed bool

	lingerTimer *time.Timer // the writer's; stopped when not lingering
}

type logItem struct {
	run     *db.Run       // a copy; upserted
	events  []db.RunEvent // appended (async runs' replay log)
	barrier chan struct{} // closed once everything queued before it is written
}

// logQueue bounds what may wait for the writer. A full queue makes producers wait (back
// pressure) rather than lose records.
const logQueue = 8192

// maxBatch bounds one write transaction.
const maxBatch = 512

// linger is how long the writer waits for more run records before writing a batch that no
// reader waits on (see sync) and that holds no stored events (a follower on another replica
// waits for those). Records reach the database at most this much later; readers on this
// instance sync first. At 1,000 runs/s, 50 ms instead of 10 took the gateway's CPU per run
// from 0.40–0.42 to 0.38–0.40 ms on both databases and its added p50 down by ≈ 0.03 ms (a
// fifth of the transactions).
const linger = 50 * time.Millisecond

func newRunLog(store *db.Store, log *slog.Logger, retention time.Duration) *runLog {
	l := &runLog{store: store, log: log, ch: make(chan logItem, logQueue), urgent: make(chan struct{}, 1),
		done: make(chan struct{}), retention: retention}
	l.lingerTimer = time.NewTimer(time.Hour)
	l.lingerTimer.Stop()
	go l.loop()
	return l
}

// save queues a copy of r for writing.
func (l *runLog) save(r *db.Run) {
	c := *r
	storableRun(&c)
	l.queue(logItem{run: &c})
}

// events queues stored events for writing, without lingering: followers of the run on other
// replicas read them from the database.
func (l *runLog) events(evs []db.RunEvent) {
	if len(evs) > 0 {
		l.queue(logItem{events: evs})
		l.poke()
	}
}

// queue sends it to the writer; after close it drops it (logged).
func (l *runLog) queue(it logItem) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		l.log.Warn("run log closed: record dropped", slog.Bool("run", it.run != nil), slog.Int("events", len(it.events)))
		return
	}
	l.ch <- it
}

// sync waits until everything queued before the call is written, or ctx ends.
func (l *runLog) sync(ctx context.Context) {
	b := make(chan struct{})
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return
	}
	select {
	case l.ch <- logItem{barrier: b}:
	case <-ctx.Done():
		l.mu.RUnlock()
		return
	}
	l.mu.RUnlock()
	l.poke()
	select {
	case <-b:
	case <-ctx.Done():
	}
}

// close writes what is queued and stops the writer. Nothing may be queued after close.
func (l *runLog) close(ctx context.Context) {
	l.mu.Lock()
	if !l.closed {
		l.closed = true
		close(l.ch)
	}
	l.mu.Unlock()
	l.poke()
	select {
	case <-l.done:
	case <-ctx.Done():
	}
}

func (l *runLog) loop() {
	defer close(l.done)
	janitor := time.NewTicker(cleanupInterval(l.retention))
	defer janitor.Stop()
	l.cleanup()
	for {
		select {
		case it, ok := <-l.ch:
			if !ok {
				return
			}
			l.batch(it)
		case <-janitor.C:
			l.cleanup()
		}
	}
}

// batch writes first and whatever else is already queued, up to maxBatch items.
func (l *runLog) batch(first logItem) {
	start := time.Now()
	var runs []*db.Run
	var events []db.RunEvent
	var barriers []chan struct{}
	add := func(it logItem) {
		if it.run != nil {
			runs = append(runs, it.run)
		}
		events = append(events, it.events...)
		if it.barrier != nil {
			barriers = append(barriers, it.barrier)
		}
	}
	// A poke left by items that are already queued (taken below without lingering) must not
	// cut the next batch's linger short.
	select {
	case <-l.urgent:
	default:
	}
	closed := false
	// takeQueued adds what is queued now, without waiting, up to maxBatch items in all.
	n := 0
	takeQueued := func() {
		for ; n < maxBatch && !closed; n++ {
			select {
			case it, ok := <-l.ch:
				if !ok {
					closed = true
					return
				}
				add(it)
			default:
				return
			}
		}
	}
	add(first)
	n++
	takeQueued()
	// Nobody waits on this batch: linger for more, so that a fast run's start and finish
	// meet (and are written once) and transactions are fewer. The writer sleeps through the
	// linger instead of waking for each record (two per run), and takes what came at its end;
	// a reader that waits (sync), stored events or the log's close cut it short.
	if len(barriers) == 0 && len(events) == 0 && !closed && n < maxBatch {
		l.lingerTimer.Reset(linger)
		select {
		case <-l.lingerTimer.C:
		case <-l.urgent:
			l.lingerTimer.Stop()
		}
		takeQueued()
	}
	// Events first: a finished run's record must not be visible before its replay log.
	if len(events) > 0 {
		l.write("events", func(ctx context.Context) error { return l.store.AppendEvents(ctx, events) })
		l.notify(events)
	}
	if len(runs) > 0 {
		l.write("runs", func(ctx context.Context) error { return l.store.SaveRuns(ctx, dedupeRuns(runs)) })
	}
	if l.observe != nil && len(runs)+len(events) > 0 {
		l.observe(len(runs), len(events), time.Since(start))
	}
	for _, b := range barriers {
		close(b)
	}
	if closed {
		// Drain nothing more: the channel is closed and empty past this point.
		return
	}
}

// poke cuts the writer's linger short (a no-op when it is not lingering but for the next
// linger, which then ends at once).
func (l *runLog) poke() {
	select {
	case l.urgent <- struct{}{}:
	default:
	}
}

// dedupeRuns keeps the last version of each run in a batch (start and finish often meet).
func dedupeRuns(runs []*db.Run) []*db.Run {
	if len(runs) < 2 {
		return runs
	}
	idx := make(map[string]int, len(runs))
	out := runs[:0]
	for _, r := range runs {
		if i, ok := idx[r.ID]; ok {
			out[i] = r
			continue
		}
		idx[r.ID] = len(out)
		out = append(out, r)
	}
	return out
}

// write retries a failed write a few times: the run log must not lose records to a blip.
func (l *runLog) write(what string, fn func(ctx context.Context) error) {
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = fn(ctx)
		cancel()
		if err == nil {
			return
		}
		time.Sleep(time.Duration(50<<attempt) * time.Millisecond) // back-off between retries of a failing database
	}
	l.log.Error("run log write failed", slog.String("what", what), slog.Any("err", err))
}

func (l *runLog) cleanup() {
	if l.retention <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := l.store.DeleteEventsBefore(ctx, time.Now().Add(-l.retention))
	if err != nil {
		l.log.Warn("event retention cleanup failed", slog.Any("err", err))
	} else if n > 0 {
		l.log.Info("event retention cleanup", slog.Int64("deleted", n))
	}
}
