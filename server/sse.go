package server

import (
	"bufio"
	"context"
	"net"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/agentgate/agentgate/stream"
)

// watchInterval is how often an open stream checks whether its client hung up while nothing
// is being written (long model or tool waits).
const watchInterval = 250 * time.Millisecond

// setStreamHeaders sets the headers of an event stream (SPEC §6). no-transform keeps proxies
// from compressing.
func setStreamHeaders(c *fiber.Ctx) {
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache, no-transform")
	c.Set(fiber.HeaderConnection, "keep-alive")
	c.Set("X-Accel-Buffering", "no")
}

// setSSEHeaders sets the headers of a run's native event stream: those of every stream, and
// the run's id.
func setSSEHeaders(c *fiber.Ctx, runID string) {
	setStreamHeaders(c)
	c.Set("X-Run-Id", runID)
}

// eventSource is where a stream's run events come from: this instance's hub (hubEvents) or
// the stored event log (logEvents). The stream's writer goroutine owns it: its methods are
// never called concurrently.
type eventSource interface {
	// ready fires when events may be waiting to be read.
	ready() <-chan struct{}
	// poll fires when the source should look for events on its own (a nil channel: never).
	poll() <-chan time.Time
	// read hands the waiting events to emit, in order, until none is waiting or emit returns
	// false. polled says poll fired. It returns false once the source gives no more events:
	// emit returned false, or the run's events ended without their terminal event.
	read(emit func(stream.Event) bool, polled bool) bool
	// last is the sequence number of the last event read.
	last() int64
	// shutdown is called once, when the server starts shutting down. It returns true when the
	// stream must end now (the run goes on elsewhere), false when the run's own terminal event
	// may still come (the source then ends by itself after shutdownGrace).
	shutdown() bool
	// close releases the source.
	close()
}

// frameWriter renders a stream's frames onto the response body. Every method writes whole
// frames and flushes; its error means the client is gone.
type frameWriter interface {
	// open starts the stream on w with its opening frame.
	open(w *bufio.Writer) error
	// event writes ev; wrote is false when ev has no frame in this format.
	event(ev stream.Event) (wrote bool, err error)
	// ping writes a heartbeat.
	ping() error
	// cut ends a stream whose run events stopped before their terminal event: at shutdown
	// (shutdown is true), or when the run is gone from this instance. last is the sequence
	// number of the last event read.
	cut(last int64, shutdown bool) error
}

// streamLoop is the one loop of DESIGN rule 3, shared by every streaming response: it waits on
// the server's shutdown, the run's events and the heartbeat tick, and watches for a client
// that hung up. The responses differ only in their eventSource and frameWriter.
type streamLoop struct {
	base      context.Context // the server's: done at shutdown
	heartbeat time.Duration
	conn      net.Conn      // watched for a client that hung up
	streams   *atomic.Int64 // the open-streams gauge
	gone      func()        // called when the client is found gone; nil: nothing to do
	src       eventSource
	out       frameWriter

	beat *time.Ticker // the heartbeat, restarted by every written frame
	over bool         // the terminal event was sent, or a write failed
}

// serveStream answers c with src's events, written by out. gone (may be nil) is called once
// when the client is found to have left (a failed write, or the watcher); it is how a
// synchronous run gets cancelled. The loop owns src from now on and closes it.
func (s *Server) serveStream(c *fiber.Ctx, src eventSource, out frameWriter, gone func()) {
	// *fiber.Ctx is dead once this handler returns: copy what the writer needs now.
	l := &streamLoop{
		base: s.ctx, heartbeat: s.cfg.Heartbeat, conn: c.Context().Conn(), streams: &s.openStreams,
		gone: gone, src: src, out: out,
	}
	c.Context().SetBodyStreamWriter(l.run)
}

// run writes the response body: the opening frame, then the source's events until the terminal
// one, until the client leaves, or until shutdown ends the stream.
func (l *streamLoop) run(w *bufio.Writer) {
	l.streams.Add(1)
	defer l.streams.Add(-1)
	defer l.src.close()
	if l.out.open(w) != nil {
		l.left()
		return
	}
	l.beat = time.NewTicker(l.heartbeat)
	defer l.beat.Stop()
	watch := time.NewTicker(watchInterval)
	defer watch.Stop()
	if !l.read(false) {
		return
	}
	shutdown := l.base.Done()
	for {
		select {
		case <-l.src.ready():
			if !l.read(false) {
				return
			}
		case <-l.src.poll():
			if !l.read(true) {
				return
			}
		case <-l.beat.C:
			if l.out.ping() != nil {
				l.left()
				return
			}
		case <-watch.C:
			if peerClosed(l.conn) {
				l.left()
				return
			}
		case <-shutdown:
			shutdown = nil
			if l.src.shutdown() {
				l.cut()
				return
			}
		}
	}
}

// read writes the source's waiting events; false when the stream is over.
func (l *streamLoop) read(polled bool) bool {
	if l.src.read(l.send, polled) {
		return true
	}
	if !l.over {
		l.cut() // the run's events ended without their terminal event
	}
	return false
}

// send writes one event; false when the stream is over (the terminal event, or a failed write).
func (l *streamLoop) send(ev stream.Event) bool {
	wrote, err := l.out.event(ev)
	switch {
	case err != nil:
		l.left()
		l.over = true
	case ev.Type.Terminal():
		l.over = true
	case wrote:
		l.beat.Reset(l.heartbeat)
	}
	return !l.over
}

// cut ends the stream with the writer's terminal frame for runs whose events stopped short.
func (l *streamLoop) cut() {
	if l.out.cut(l.src.last(), l.base.Err() != nil) != nil {
		l.left()
	}
}

// left reports the client gone.
func (l *streamLoop) left() {
	if l.gone != nil {
		l.gone()
	}
}

// sseFrames writes a run's events as the native event stream (SPEC §6).
type sseFrames struct {
	runID string
	retry int // the reconnection delay sent first, in milliseconds
	sw    *stream.Writer
}

// open starts the stream with the reconnection delay.
func (f *sseFrames) open(w *bufio.Writer) error {
	f.sw = stream.NewWriter(w)
	return f.sw.Retry(f.retry)
}

// event writes ev as an SSE event.
func (f *sseFrames) event(ev stream.Event) (bool, error) { return true, f.sw.Event(ev) }

// ping writes an SSE comment.
func (f *sseFrames) ping() error { return f.sw.Ping() }

// cut sends shutdownEvent at shutdown; a stream whose run is otherwise gone just ends.
func (f *sseFrames) cut(last int64, shutdown bool) error {
	if !shutdown {
		return nil
	}
	return f.sw.Event(shutdownEvent(f.runID, last))
}

// hubEvents reads a run's events from this instance's hub. A subscription dropped for falling
// behind is replaced by one after the last event read, and no event is read twice.
type hubEvents struct {
	hub     *stream.Hub
	runID   string
	sub     *stream.Subscription
	pending []stream.Event // events read before the stream started (chatStream), sent first
	seq     int64          // the last event read
	grace   *time.Timer    // closes sub shutdownGrace after shutdown
}

// hubEvents returns the source of a run's events from sub.
func (s *Server) hubEvents(runID string, sub *stream.Subscription) *hubEvents {
	return &hubEvents{hub: s.runner.hub, runID: runID, sub: sub}
}

// ready fires when the subscription may have events.
func (h *hubEvents) ready() <-chan struct{} { return h.sub.Ready() }

// poll never fires: the hub wakes its readers.
func (h *hubEvents) poll() <-chan time.Time { return nil }

// read hands the pending events, then the subscription's, to emit.
func (h *hubEvents) read(emit func(stream.Event) bool, _ bool) bool {
	for len(h.pending) > 0 {
		ev := h.pending[0]
		h.pending = h.pending[1:]
		if !emit(ev) {
			return false
		}
	}
	for {
		ev, ok := h.next()
		if !ok {
			return !h.ended()
		}
		if !emit(ev) {
			return false
		}
	}
}

// next returns the next event not read yet, resuming a dropped subscription; false when none
// is waiting now (then ended says whether one ever will be).
func (h *hubEvents) next() (stream.Event, bool) {
	for {
		ev, ok := h.sub.Next()
		if !ok {
			if h.ended() && h.resume() {
				continue
			}
			return stream.Event{}, false
		}
		if ev.Seq <= h.seq {
			continue // a resumed subscription never repeats what was read
		}
		h.seq = ev.Seq
		return ev, true
	}
}

// ended reports whether the subscription gives no more events.
func (h *hubEvents) ended() bool { return h.sub.Ended() }

// resume replaces a subscription dropped for falling behind; false when it was not dropped,
// or the run's events are gone from the hub.
func (h *hubEvents) resume() bool {
	if !h.sub.Dropped() {
		return false
	}
	sub, ok := h.hub.Subscribe(h.runID, h.seq)
	if !ok {
		return false
	}
	h.sub.Close()
	h.sub = sub
	return true
}

// last is the sequence number of the last event read.
func (h *hubEvents) last() int64 { return h.seq }

// shutdown waits for the run's own terminal event: runs on this instance end with one
// (cancelled with errShutdown). After shutdownGrace the subscription is closed, which ends the
// stream.
func (h *hubEvents) shutdown() bool {
	h.grace = time.AfterFunc(shutdownGrace, h.sub.Close)
	return false
}

// close stops the grace timer and closes the subscription.
func (h *hubEvents) close() {
	if h.grace != nil {
		h.grace.Stop()
	}
	h.sub.Close()
}

// sse answers with the run's event stream from sub. gone is called once when the client is
// found to have left (see serveStream).
func (s *Server) sse(c *fiber.Ctx, runID string, sub *stream.Subscription, gone func()) error {
	setSSEHeaders(c, runID)
	s.serveStream(c, s.hubEvents(runID, sub), &sseFrames{runID: runID, retry: s.cfg.RetryMs}, gone)
	return nil
}
