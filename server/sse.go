package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/agentgate/agentgate/stream"
)

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

// frameWriter renders a stream's frames. Its methods write whole frames to the Flusher given to
// open, which collects them in memory (frameBuffer): they fail only when a frame cannot be
// rendered, never because the client left.
type frameWriter interface {
	// open starts the stream on w with its opening frame.
	open(w stream.Flusher) error
	// event writes ev; wrote is false when ev has no frame in this format.
	event(ev stream.Event) (wrote bool, err error)
	// ping writes a heartbeat.
	ping() error
	// cut ends a stream whose run events stopped before their terminal event: at shutdown
	// (shutdown is true), or when the run is gone from this instance. last is the sequence
	// number of the last event read.
	cut(last int64, shutdown bool) error
}

// frameBuffer collects the frames rendered by a frameWriter until the stream loop sends them,
// so that events that arrive together leave in one write. Flush is a no-op. Its memory comes
// from a pool and goes back once the frames are written (release): a stream that waits holds
// none.
type frameBuffer struct {
	b    []byte
	pool *[]byte // where b came from; nil when b is nil
}

func (f *frameBuffer) Write(p []byte) (int, error) {
	if f.pool == nil {
		f.pool = framePool.Get().(*[]byte)
		f.b = (*f.pool)[:0]
	}
	f.b = append(f.b, p...)
	return len(p), nil
}

func (f *frameBuffer) Flush() error { return nil }

// release returns the buffer to the pool, unless a rare huge frame made it big: that memory
// is left to the collector.
func (f *frameBuffer) release() {
	if f.pool == nil {
		return
	}
	if cap(f.b) <= maxPooledFrames {
		*f.pool = f.b[:0]
		framePool.Put(f.pool)
	}
	f.b, f.pool = nil, nil
}

var framePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// maxPooledFrames is the largest frame buffer that goes back to the pool.
const maxPooledFrames = 16 << 10

// streamLoop is the one loop of DESIGN rule 3, shared by every streaming response: it waits on
// the server's shutdown, the run's events and the heartbeat tick, and on the hang-up watcher
// (hangups.go). The responses differ only in their eventSource and frameWriter.
//
// WriteTo writes the stream; each write is one HTTP chunk, sent at once. On HTTP/1.1 TCP
// connections WriteTo runs on the stream's own goroutine on the hijacked connection
// (hijack.go), or the loop runs in steps with no goroutine while it waits (sse_evented.go);
// otherwise (HEAD, HTTP/1.0, app.Test) the loop is fasthttp's body stream and
// fasthttp calls WriteTo on the connection's goroutine (no SetBodyStreamWriter goroutine, pipe
// or copy buffer). Read serves any other consumer of the body with the same bytes.
type streamLoop struct {
	base      context.Context // the server's: done at shutdown
	heartbeat time.Duration
	conn      net.Conn      // watched for a client that hung up
	hangups   *hangups      // the watcher of conn
	streams   *atomic.Int64 // the open-streams gauge
	gone      func()        // called once when the client is found gone; nil: nothing to do
	src       eventSource
	out       frameWriter
	log       *slog.Logger // where a panic of the stream is reported (nil: slog's default)

	frames   frameBuffer // rendered frames not yet written
	off      int         // how much of frames Read has handed out
	end      error       // why the stream ended: io.EOF, or errClientGone (Read)
	started  bool
	finished bool
	beat     *time.Ticker // the heartbeat, restarted by every written frame
	watched  *watchedConn // conn under the hang-up watch
	shutdown <-chan struct{}
	emit     func(stream.Event) bool // l.send, bound once: a method value per read would allocate

	// Evented mode (sse_evented.go): no goroutine while the stream waits.
	evented  bool
	w        *chunkWriter    // where steps write
	onEnd    func(err error) // called once, on the step goroutine, when the stream is over
	kicks    atomic.Uint32   // kickIdle, kickRunning, kickAgain
	beatT    *time.Timer     // the heartbeat, restarted by every written frame
	beatDue  atomic.Bool     // beatT fired
	stopShut func() bool     // stops the shutdown kick
	shutSeen bool            // the shutdown was handled
	over     bool            // the terminal event was rendered, or the client left
	left     bool            // the client was found gone
}

var (
	_ fasthttp.BodyWriterTo        = (*streamLoop)(nil)
	_ fasthttp.ReadCloserWithError = (*streamLoop)(nil)
)

// serveStream answers c with src's events, written by out. gone (may be nil) is called once
// when the client is found to have left (a failed write, or the watcher); it is how a
// synchronous run gets cancelled. The loop owns src from now on and closes it.
func (s *Server) serveStream(c *fiber.Ctx, src eventSource, out frameWriter, gone func()) {
	// *fiber.Ctx is dead once this handler returns: copy what the writer needs now.
	l := &streamLoop{
		base: s.ctx, heartbeat: s.cfg.Heartbeat, conn: c.Context().Conn(), hangups: &s.hangups, streams: &s.openStreams,
		gone: gone, src: src, out: out, log: s.log,
	}
	if fctx := c.Context(); hijackable(fctx) {
		s.hijackStream(fctx, l)
	} else {
		fctx.Response.SetBodyStream(l, -1)
	}
}

// SupportsBodyWriteTo lets fasthttp write the body with WriteTo.
func (l *streamLoop) SupportsBodyWriteTo() bool { return true }

// WriteTo writes the stream to w (fasthttp's chunk writer) until the terminal event, until the
// client leaves, or until shutdown ends the stream.
func (l *streamLoop) WriteTo(w io.Writer) (n int64, err error) {
	defer l.recoverCrash(&err)
	for {
		err := l.next()
		if len(l.frames.b) > 0 {
			m, werr := w.Write(l.frames.b)
			n += int64(m)
			l.sent()
			if werr != nil {
				l.hungUp()
				return n, werr
			}
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// Read hands out the stream's bytes; a consumer other than fasthttp's chunk writer (which uses
// WriteTo) gets the same stream.
func (l *streamLoop) Read(p []byte) (int, error) {
	for l.off == len(l.frames.b) {
		l.sent()
		if l.end != nil {
			return 0, l.end
		}
		l.end = l.next()
	}
	n := copy(p, l.frames.b[l.off:])
	l.off += n
	return n, nil
}

// CloseWithError ends the stream: fasthttp calls it once the body is written or abandoned
// (err is the write error, if any; a stream that never started is closed too).
func (l *streamLoop) CloseWithError(err error) error {
	if err != nil || !l.over || l.off < len(l.frames.b) {
		l.hungUp() // the client did not get the whole stream
	}
	l.finish()
	return nil
}

// errStreamCrashed ends a stream whose goroutine panicked.
var errStreamCrashed = errors.New("stream crashed")

// recoverCrash, deferred by the code that writes a stream on a goroutine of its own (or
// fasthttp's), turns a panic there (a bug) into the end of that stream: logged with its
// stack, *err set to errStreamCrashed, so the caller closes the connection as for a client
// that left (a synchronous run is cancelled: nobody reads it any more). Without it one
// stream's bug would end every run of the process.
func (l *streamLoop) recoverCrash(err *error) {
	p := recover()
	if p == nil {
		return
	}
	log := l.log
	if log == nil {
		log = slog.Default()
	}
	log.Error("stream panicked", slog.Any("panic", p), slog.String("stack", string(debug.Stack())))
	*err = errStreamCrashed
}

// sent forgets frames that were written.
func (l *streamLoop) sent() {
	l.frames.release()
	l.off = 0
}

// next renders the next frames into l.frames, waiting until there are some: the opening frame,
// then the source's events, heartbeats and the cut at shutdown. It returns io.EOF after the
// last frames, errClientGone when the client hung up.
func (l *streamLoop) next() error {
	if !l.started {
		l.start()
		if l.out.open(&l.frames) != nil {
			return l.stop(errClientGone)
		}
		l.read(false)
	}
	for len(l.frames.b) == 0 && !l.over {
		select {
		case <-l.src.ready():
			l.read(false)
		case <-l.src.poll():
			l.read(true)
		case <-l.beat.C:
			if l.out.ping() != nil {
				l.over = true
			}
		case <-l.watched.goneC():
			l.hungUp()
		case <-l.shutdown:
			l.shutdown = nil
			if l.src.shutdown() {
				l.cut()
			}
		}
	}
	if l.left {
		return l.stop(errClientGone)
	}
	if l.over {
		return l.stop(io.EOF)
	}
	return nil
}

// start opens the stream's resources; finish releases them.
func (l *streamLoop) start() {
	l.started = true
	l.streams.Add(1)
	l.emit = l.send
	if l.evented {
		l.startEvented()
		return
	}
	l.beat = time.NewTicker(l.heartbeat)
	l.watched = l.hangups.watch(l.conn, nil)
	l.shutdown = l.base.Done()
}

// stop releases the stream's resources early (the frames rendered last are still written) and
// returns err.
func (l *streamLoop) stop(err error) error {
	l.over = true
	l.finish()
	return err
}

// finish releases the stream's resources, once.
func (l *streamLoop) finish() {
	if l.finished {
		return
	}
	l.finished = true
	l.over = true
	if l.started {
		if l.beat != nil {
			l.beat.Stop()
		}
		if l.beatT != nil {
			l.beatT.Stop()
			l.stopShut()
		}
		l.hangups.unwatch(l.watched)
		l.streams.Add(-1)
	}
	l.src.close()
}

// read renders the source's waiting events.
func (l *streamLoop) read(polled bool) {
	if !l.src.read(l.emit, polled) && !l.over {
		l.cut() // the run's events ended without their terminal event
	}
}

// send renders one event; false when the stream is over (the terminal event, or a frame that
// cannot be rendered, which ends the stream as if the client had left).
func (l *streamLoop) send(ev stream.Event) bool {
	wrote, err := l.out.event(ev)
	switch {
	case err != nil:
		l.hungUp() // the client cannot get the run's events any more
	case ev.Type.Terminal():
		l.over = true
	case wrote && l.beatT != nil:
		l.beatT.Reset(l.heartbeat)
	case wrote:
		l.beat.Reset(l.heartbeat)
	}
	return !l.over
}

// cut ends the stream with the writer's terminal frame for runs whose events stopped short.
func (l *streamLoop) cut() {
	_ = l.out.cut(l.src.last(), l.base.Err() != nil)
	l.over = true
}

// hungUp reports the client gone, once.
func (l *streamLoop) hungUp() {
	if l.left {
		return
	}
	l.left, l.over = true, true
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
func (f *sseFrames) open(w stream.Flusher) error {
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

	// stored, when set, opens the run's stored event log after a sequence number (async runs
	// store their events): a subscription dropped for falling behind after the run left the
	// hub goes on from there instead of ending short. stored is the log once switched to it.
	stored    func(after int64) eventSource
	fromStore eventSource
	notify    func() // set by notifyTo
}

// hubEvents returns the source of a run's events from sub.
func (s *Server) hubEvents(runID string, sub *stream.Subscription) *hubEvents {
	return &hubEvents{hub: s.runner.hub, runID: runID, sub: sub}
}

// ready fires when the subscription may have events.
func (h *hubEvents) ready() <-chan struct{} {
	if h.fromStore != nil {
		return h.fromStore.ready()
	}
	return h.sub.Ready()
}

// poll never fires while the hub wakes its readers.
func (h *hubEvents) poll() <-chan time.Time {
	if h.fromStore != nil {
		return h.fromStore.poll()
	}
	return nil
}

// read hands the pending events, then the subscription's (or the stored log's), to emit.
func (h *hubEvents) read(emit func(stream.Event) bool, polled bool) bool {
	if h.fromStore != nil {
		return h.fromStore.read(emit, polled)
	}
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
			if h.fromStore != nil {
				return h.fromStore.read(emit, polled)
			}
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
// or the run's events are gone from the hub (then the stored log, if any, takes over).
func (h *hubEvents) resume() bool {
	if !h.sub.Dropped() {
		return false
	}
	sub, ok := h.hub.Subscribe(h.runID, h.seq)
	if !ok {
		if h.stored != nil {
			h.fromStore = h.stored(h.seq)
			h.sub.Close()
		}
		return false
	}
	h.sub.Close()
	h.sub = sub
	if h.notify != nil {
		sub.OnReady(h.notify)
	}
	return true
}

// notifyTo makes the hub call f whenever events may be waiting (evented streams).
func (h *hubEvents) notifyTo(f func()) {
	h.notify = f
	h.sub.OnReady(f)
}

// last is the sequence number of the last event read.
func (h *hubEvents) last() int64 {
	if h.fromStore != nil {
		return h.fromStore.last()
	}
	return h.seq
}

// shutdown waits for the run's own terminal event: runs on this instance end with one
// (cancelled with errShutdown). After shutdownGrace the subscription is closed, which ends the
// stream.
func (h *hubEvents) shutdown() bool {
	if h.fromStore != nil {
		return h.fromStore.shutdown()
	}
	h.grace = time.AfterFunc(shutdownGrace, h.sub.Close)
	return false
}

// close stops the grace timer and closes the subscription (and the stored log).
func (h *hubEvents) close() {
	if h.grace != nil {
		h.grace.Stop()
	}
	h.sub.Close()
	if h.fromStore != nil {
		h.fromStore.close()
	}
}

// sse answers with the run's native event stream from src. gone is called once when the
// client is found to have left (see serveStream).
func (s *Server) sse(c *fiber.Ctx, runID string, src eventSource, gone func()) error {
	setSSEHeaders(c, runID)
	s.serveStream(c, src, &sseFrames{runID: runID, retry: s.cfg.RetryMs}, gone)
	return nil
}
