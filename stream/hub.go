package stream

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of HubOptions.
const (
	DefaultSubscriberBuffer = 256
	DefaultLinger           = 30 * time.Second
)

// ErrClosed is returned by Publish on a topic that already ended (a terminal event was
// published) or whose hub was closed.
var ErrClosed = errors.New("stream: topic closed")

// HubOptions configures a Hub. Zero values take the defaults.
type HubOptions struct {
	// SubscriberBuffer is how many live events a subscriber may fall behind the producer before
	// it is dropped. Default DefaultSubscriberBuffer.
	SubscriberBuffer int
	// Linger is how long a finished run's events stay in memory for late subscribers.
	// Default DefaultLinger; a negative value removes a run as soon as it ends.
	Linger time.Duration
}

// Hub fans each run's events out to its subscribers and replays them from memory (SPEC §6:
// Last-Event-ID resume with no gap and no duplicate).
//
// Design. A Topic keeps its run's events in an append-only log (eventLog), event i has Seq
// i+1; an event is never changed or moved once appended, so a reader that took a copy of the
// log under the lock may read the events it covers without the lock. Each Subscription is a cursor (the next seq
// to deliver) that its reader advances with Next, plus a one-slot wake channel (Ready).
// Publish appends under the topic lock and pokes every subscription's wake channel with a
// non-blocking send, so it never waits for a subscriber. Replay and live delivery read the
// same slice the same way, which is why nothing is missed or repeated between them, and why an
// idle subscriber costs only a few small objects: no goroutine, no copy of the history and no
// per-subscriber event buffer. C adapts this to a channel with a pump goroutine, for readers
// that prefer one.
//
// Slow subscribers. SubscriberBuffer bounds how far a subscriber may lag behind live events
// (events published after it subscribed that it has not received yet; the replay of older
// events does not count). Publish drops a subscriber that lags more: it ends (Ended, or its
// channel is closed) and Dropped reports true; the caller resumes with a new Subscribe from the last seq it got.
//
// Lifetimes. The producer of a run owns its Topic; a reader owns its Subscription and closes
// it. Pumps (started by C) are owned by the Hub: each exits when its terminal event is
// delivered, when it is dropped or closed, or when the hub closes. A finished topic stays
// subscribable for Linger, then a timer (owned by the Hub, stopped by Close) removes it.
type Hub struct {
	buffer int64
	linger time.Duration

	mu     sync.Mutex
	topics map[string]*Topic
	closed bool

	live atomic.Int64   // topics that have not ended
	wg   sync.WaitGroup // pumps (see Subscription.C) and pending linger timers
}

// NewHub returns an empty Hub. Close it to release every subscription.
func NewHub(opts HubOptions) *Hub {
	if opts.SubscriberBuffer <= 0 {
		opts.SubscriberBuffer = DefaultSubscriberBuffer
	}
	if opts.Linger == 0 {
		opts.Linger = DefaultLinger
	}
	if opts.Linger < 0 {
		opts.Linger = 0
	}
	return &Hub{
		buffer: int64(opts.SubscriberBuffer),
		linger: opts.Linger,
		topics: make(map[string]*Topic),
	}
}

// Open returns the topic of run runID, creating it if needed (a run id is used once: Open of a
// finished, lingering run returns its ended topic). The run's producer owns the topic: it alone
// publishes, and it should defer Topic.Close. After the hub is closed Open returns a topic that
// refuses every event.
func (h *Hub) Open(runID string) *Topic {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return &Topic{hub: h, runID: runID, closed: true}
	}
	if t := h.topics[runID]; t != nil {
		return t
	}
	t := &Topic{hub: h, runID: runID, subs: make(map[*Subscription]struct{})}
	h.topics[runID] = t
	h.live.Add(1)
	return t
}

// Subscribe follows run runID from the event after afterSeq (0: from the start): the
// subscription first replays the stored events with Seq > afterSeq, then delivers live ones.
// It returns false if the run is unknown to this hub (neither live nor lingering) or the hub is
// closed. The caller must Close the subscription when it stops reading.
func (h *Hub) Subscribe(runID string, afterSeq int64) (*Subscription, bool) {
	if afterSeq < 0 {
		afterSeq = 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	t := h.topics[runID]
	if h.closed || t == nil {
		return nil, false
	}
	s := &Subscription{
		topic: t,
		wake:  make(chan struct{}, 1),
		done:  make(chan struct{}),
		next:  afterSeq + 1,
	}
	s.wake <- struct{}{} // the replay, or the end, is ready to be read
	s.delivered.Store(afterSeq)
	t.mu.Lock()
	s.start = int64(t.events.n)
	t.subs[s] = struct{}{}
	t.mu.Unlock()
	return s, true
}

// OpenShort is Open for a run whose events nobody needs once it has ended and its readers
// have left (a synchronous run: its caller reads it live; only async runs are resumed later,
// from their stored log). Such a topic leaves the hub as soon as its run has ended and its
// last subscription is closed, instead of lingering, so a busy gateway does not keep every
// recent run's events in memory. If a reader was dropped for falling behind (it may come back
// for the rest), the topic lingers as usual.
func (h *Hub) OpenShort(runID string) *Topic {
	t := h.Open(runID)
	t.mu.Lock()
	t.short = true
	t.mu.Unlock()
	return t
}

// Live returns the number of topics whose run has not ended (for metrics).
func (h *Hub) Live() int { return int(h.live.Load()) }

// Close closes every topic (further Publish returns ErrClosed) and every subscription (they
// end without a terminal event, Dropped false; their channels close), stops the linger timers
// and waits for every pump to exit. It is idempotent.
func (h *Hub) Close() {
	h.mu.Lock()
	if !h.closed {
		h.closed = true
		for _, t := range h.topics {
			t.mu.Lock()
			if !t.finished {
				h.live.Add(-1)
			}
			t.closed = true
			if t.timer != nil && t.timer.Stop() {
				h.wg.Done() // the timer will not fire: release its share
			}
			t.timer = nil
			for s := range t.subs {
				s.stop()
			}
			t.mu.Unlock()
		}
		h.topics = nil
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// remove forgets t once its linger time is over.
func (h *Hub) remove(t *Topic) {
	defer h.wg.Done()
	h.forget(t)
}

// forget removes t from the hub (it stays readable by whoever holds it).
func (h *Hub) forget(t *Topic) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.topics[t.runID] == t {
		delete(h.topics, t.runID)
	}
}

// Topic is one run's stream of events in a Hub. Its methods are safe for concurrent use, but a
// run has one producer, which publishes in order.
type Topic struct {
	hub   *Hub
	runID string

	mu       sync.Mutex
	events   eventLog // event i has Seq i+1; append-only, events never modified
	finished bool     // a terminal event was published
	closed   bool     // the hub was closed
	short    bool     // OpenShort: forgotten once ended and unread
	sawDrop  bool     // a subscriber was dropped for falling behind
	subs     map[*Subscription]struct{}
	timer    *time.Timer // removes the finished topic after the linger time
}

// RunID returns the run the topic belongs to.
func (t *Topic) RunID() string { return t.runID }

// Publish assigns e the next sequence number (1, 2, 3 … gap-free), stores it and wakes the
// subscribers, then returns it. It never blocks on a subscriber; subscribers that fell too far
// behind are dropped. After a terminal event (done or error) the topic is closed and Publish
// returns ErrClosed. An event of an unknown type or without its payload is rejected and uses no
// sequence number. Delivered events share their payloads: nobody may modify them.
func (t *Topic) Publish(e Event) (Event, error) {
	if _, err := e.payload(); err != nil {
		return e, err
	}
	e, forget, err := t.publish(e)
	if forget {
		t.hub.forget(t)
	}
	return e, err
}

// publish is Publish under the topic's lock; forget: the topic must leave the hub now (a
// short topic ended with no reader).
func (t *Topic) publish(e Event) (_ Event, forget bool, _ error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return e, false, fmt.Errorf("%w: hub closed", ErrClosed)
	case t.finished:
		return e, false, fmt.Errorf("%w: run %s already ended", ErrClosed, t.runID)
	}
	e.Seq = int64(t.events.n) + 1
	t.events.add(e)
	terminal := e.Type.Terminal()
	if terminal {
		t.finished = true
		t.hub.live.Add(-1)
	}
	for s := range t.subs {
		if e.Seq-max(s.delivered.Load(), s.start) > t.hub.buffer {
			s.dropped.Store(true)
			t.sawDrop = true
			s.stop()
			delete(t.subs, s)
			continue
		}
		s.poke()
	}
	if terminal {
		if t.short && !t.sawDrop && len(t.subs) == 0 {
			return e, true, nil
		}
		t.hub.wg.Add(1) // under t.mu and !t.closed: ordered before Close's Wait
		t.timer = time.AfterFunc(t.hub.linger, func() { t.hub.remove(t) })
	}
	return e, false, nil
}

// Last returns the last published event (the terminal one once the run has ended); false
// before the first.
func (t *Topic) Last() (Event, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.events.n == 0 {
		return Event{}, false
	}
	return t.events.at(t.events.n - 1), true
}

// Seq returns the sequence number of the last published event (0 before the first).
func (t *Topic) Seq() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return int64(t.events.n)
}

// Close ends the run's stream if its producer did not: when no terminal event has been
// published it publishes an INTERNAL_ERROR error event, so every stream still ends with exactly
// one terminal event. Producers defer it. It is idempotent.
func (t *Topic) Close() {
	t.mu.Lock()
	over := t.finished || t.closed
	t.mu.Unlock()
	if over {
		return
	}
	// A concurrent terminal Publish may win the race: then this one returns ErrClosed, as wanted.
	_, _ = t.Publish(Event{Type: TypeError, Error: &Error{
		RunID: t.runID, Code: CodeInternal, Message: "run ended without a result",
	}})
}

// unsubscribe forgets s. The last reader of a short topic whose run has ended takes it out of
// the hub (its linger timer, the backstop for a reader that never closes, is stopped).
func (t *Topic) unsubscribe(s *Subscription) {
	t.mu.Lock()
	delete(t.subs, s)
	forget := t.short && t.finished && !t.closed && !t.sawDrop && len(t.subs) == 0 && t.timer != nil && t.timer.Stop()
	if forget {
		t.timer = nil
	}
	t.mu.Unlock()
	if forget {
		t.hub.wg.Done() // the stopped timer's share
		t.hub.forget(t)
	}
}

// Subscription is one reader of a run's events; see Hub.Subscribe.
//
// It has two ways to read, and a reader uses one of them. The pull API, Ready and Next, costs
// no goroutine: a reader waits on Ready in its own select, then takes events with Next until
// it returns false. C wraps the same API in a channel fed by a pump goroutine, started on the
// first call to C.
type Subscription struct {
	topic *Topic
	wake  chan struct{} // one slot: "new events were published, or the subscription stopped"
	// notify, when set (OnReady), is called with every signal on wake.
	notify atomic.Pointer[func()]
	done   chan struct{} // closed when the subscription is stopped
	once   sync.Once

	start     int64        // topic seq at subscription: lag is counted from here
	delivered atomic.Int64 // seq of the last event received by the reader (or afterSeq)
	dropped   atomic.Bool

	// Reader side, touched only by the one reader (or the pump).
	next   int64    // seq of the next event to hand out
	events eventLog // the topic's events as last seen
	over   bool     // the terminal event was handed out, or the run ended before next

	mu     sync.Mutex    // guards c and exited
	c      chan Event    // unbuffered: the topic's slice is the buffer; nil until C is called
	exited chan struct{} // closed when the pump has returned (and c is closed)
}

// Ready returns the channel that signals the reader: it receives a value when events may be
// available to Next or the subscription may have ended (Ended). It holds one pending signal, so
// a reader that gets one must call Next until it returns false before it waits again. A new
// subscription starts with a signal pending.
func (s *Subscription) Ready() <-chan struct{} { return s.wake }

// OnReady makes the subscription call f whenever it would signal Ready (f must return at
// once: it runs on the publisher's goroutine), and calls it once now. A reader woken by f, not
// by Ready, has no goroutine waiting meanwhile.
func (s *Subscription) OnReady(f func()) {
	s.notify.Store(&f)
	f()
}

// poke signals the reader.
func (s *Subscription) poke() {
	select {
	case s.wake <- struct{}{}:
	default: // already poked; the reader will see this event too
	}
	if f := s.notify.Load(); f != nil {
		(*f)()
	}
}

// Next returns the next event without blocking: first the replay of the stored events after
// afterSeq, then live events, with no gap and no duplicate, up to and including the terminal
// event. It returns false when no event is available now; then Ended reports whether one ever
// will be. A subscription has one reader: Next must not be called concurrently, nor after C.
func (s *Subscription) Next() (Event, bool) {
	e, ok := s.peek()
	if ok {
		s.advance(e)
	}
	return e, ok
}

// Ended reports whether Next will never return an event again: the terminal event was handed
// out, the run ended before the subscription's position, or the subscription was dropped or
// closed, or the hub closed. Call it from the reader after Next returned false.
func (s *Subscription) Ended() bool {
	if s.over || s.stopped() {
		return true
	}
	t := s.topic
	t.mu.Lock()
	n, end := int64(t.events.n), t.finished || t.closed
	t.mu.Unlock()
	if end && s.next > n {
		s.over = true
	}
	return s.over
}

// peek returns the next event without consuming it. It reads the log without the lock when
// the event is already in the reader's copy of it (see the Hub doc).
func (s *Subscription) peek() (Event, bool) {
	if s.over || s.stopped() {
		return Event{}, false
	}
	if s.next > int64(s.events.n) {
		t := s.topic
		t.mu.Lock()
		s.events = t.events
		t.mu.Unlock()
		if s.next > int64(s.events.n) {
			return Event{}, false
		}
	}
	return s.events.at(int(s.next - 1)), true
}

// advance records that e, the event peek returned, reached the reader.
func (s *Subscription) advance(e Event) {
	s.delivered.Store(s.next)
	s.next++
	if e.Type.Terminal() {
		s.over = true
		s.events = eventLog{}
	}
}

// stopped reports whether the subscription was stopped (dropped, closed, hub closed).
func (s *Subscription) stopped() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// C returns a channel of the events Next would return; it is closed after the terminal event
// has been received, or when the subscription is dropped or closed, or the hub is closed. The
// first call starts a pump goroutine owned by the Hub (Close waits for it); a reader that
// uses C must not call Next.
func (s *Subscription) C() <-chan Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c != nil {
		return s.c
	}
	s.c, s.exited = make(chan Event), make(chan struct{})
	h := s.topic.hub
	h.mu.Lock()
	closed := h.closed
	if !closed {
		h.wg.Add(1) // under h.mu and !h.closed: ordered before Close's Wait
	}
	h.mu.Unlock()
	if closed {
		// Hub.Close stopped this subscription already: nothing to pump.
		close(s.c)
		close(s.exited)
		return s.c
	}
	go s.pump()
	return s.c
}

// Dropped reports whether the subscription was closed because it fell behind. The caller may
// resume by subscribing again after the last seq it received.
func (s *Subscription) Dropped() bool { return s.dropped.Load() }

// Close stops the subscription, and waits until C's channel is closed if C was called. It is
// idempotent and safe from any goroutine; the reader sees Ended.
func (s *Subscription) Close() {
	s.stop()
	s.topic.unsubscribe(s)
	s.mu.Lock()
	exited := s.exited
	s.mu.Unlock()
	if exited != nil {
		<-exited
	}
}

// stop ends the subscription without waiting for its pump, and signals the reader.
func (s *Subscription) stop() {
	s.once.Do(func() {
		close(s.done)
		s.poke()
	})
}

// pump feeds C's channel until the terminal event, or until the subscription is stopped. It
// is split in small functions on purpose: a parked pump should fit in the smallest goroutine
// stack.
func (s *Subscription) pump() {
	defer s.exit()
	for s.wait() && s.deliver() {
	}
}

// wait parks until Ready signals; false when the subscription was stopped.
func (s *Subscription) wait() bool {
	select {
	case <-s.wake:
		return true
	case <-s.done:
		return false
	}
}

// deliver sends every available event; false when the pump must exit.
func (s *Subscription) deliver() bool {
	for {
		e, ok := s.peek()
		if !ok {
			return !s.Ended()
		}
		select {
		case s.c <- e:
			s.advance(e)
		case <-s.done:
			return false
		}
	}
}

// exit unregisters the subscription, closes its channel and releases Close and the hub.
func (s *Subscription) exit() {
	s.topic.unsubscribe(s)
	close(s.c)
	close(s.exited)
	s.topic.hub.wg.Done()
}

// eventLog is an append-only sequence of events kept in blocks that double in size: 4
// events, then 8, 16 … Appending never moves an event, so a copy of the log (its block list
// and length) taken under the topic's lock stays readable without it while the producer
// appends, and a run's events are not copied over and over as they grow (with one slice,
// that growth was a sixth of the bytes a run allocated). The first block is small because
// every open stream's run holds one while it waits on its model (a few events in), and the
// doubling keeps a long run to a handful of blocks.
type eventLog struct {
	blocks [][]Event // block k holds firstBlock<<k events
	n      int
}

// firstBlock is the size of the first block (a power of two).
const firstBlock = 4

// block returns the block and offset of event i: with j = i+firstBlock, block k holds the j
// from firstBlock<<k up to twice that.
func block(i int) (k, off int) {
	j := uint(i + firstBlock)
	k = bits.Len(j) - bits.Len(firstBlock)
	return k, int(j) - firstBlock<<k
}

// add appends e.
func (l *eventLog) add(e Event) {
	k, off := block(l.n)
	if off == 0 {
		l.blocks = append(l.blocks, make([]Event, firstBlock<<k))
	}
	l.blocks[k][off] = e
	l.n++
}

// at returns event i (0-based); i < l.n.
func (l *eventLog) at(i int) Event {
	k, off := block(i)
	return l.blocks[k][off]
}
