package server

import (
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// A stream on an HTTP/1.1 TCP connection is written on the hijacked connection, not from
// fasthttp's connection goroutine: fasthttp's goroutine, its request context (request and
// response headers) and its write buffer go back to their pools as soon as the handler
// returns. A synchronous run's stream is then evented (sse_evented.go: no goroutine while it
// waits); any other stream gets a goroutine of its own, which waits in the stream loop with a
// shallow stack and keeps 4 KiB where fasthttp's needed 8 KiB. The stream loop itself is the
// same (streamLoop.WriteTo, or its steps); only who calls it changes. When the stream has
// ended cleanly the connection goes back to fasthttp (Server.ServeConn), so a keep-alive
// client reuses it as before.
//
// HEAD, HTTP/1.0 and connections that are not TCP (Fiber's app.Test) keep fasthttp's own body
// writer (the loop as fasthttp.BodyWriterTo).

// hijackable reports whether the stream answering fctx may be written on the hijacked
// connection.
func hijackable(fctx *fasthttp.RequestCtx) bool {
	if _, tcp := rawConn(fctx.Conn()).(*net.TCPConn); !tcp {
		return false
	}
	return fctx.Request.Header.IsHTTP11() && !fctx.IsHead()
}

// rawConn unwraps connections handed over by fasthttp's hijack or by serveAgain.
func rawConn(c net.Conn) net.Conn {
	for {
		u, ok := c.(interface{ UnsafeConn() net.Conn })
		if !ok {
			return c
		}
		c = u.UnsafeConn()
	}
}

// Who writes a hijackable stream (hijackGuard.owner).
const (
	ownerNone     int32 = iota
	ownerHijack         // the stream's own goroutine, on the hijacked connection
	ownerFasthttp       // fasthttp's body writer: the hijack did not happen
)

// hijackGuard is the response's body while a stream waits for its hijack. fasthttp closes it
// when it releases the request context: after the hijack handler returned (then it does
// nothing), or without any hijack (a connection that failed in between; the loop is then
// closed as if the client had left, so no stream or subscription leaks). Should fasthttp ever
// write the response itself, the guard hands it the loop.
type hijackGuard struct {
	l     *streamLoop
	owner atomic.Int32
	done  func() // called once when fasthttp is done with the stream (Server.hijacked)
}

var (
	_ fasthttp.BodyWriterTo        = (*hijackGuard)(nil)
	_ fasthttp.ReadCloserWithError = (*hijackGuard)(nil)
)

func (g *hijackGuard) claim(owner int32) bool {
	return g.owner.Load() == owner || g.owner.CompareAndSwap(ownerNone, owner)
}

func (g *hijackGuard) SupportsBodyWriteTo() bool { return true }

func (g *hijackGuard) WriteTo(w io.Writer) (int64, error) {
	if !g.claim(ownerFasthttp) {
		return 0, errClientGone
	}
	return g.l.WriteTo(w)
}

func (g *hijackGuard) Read(p []byte) (int, error) {
	if !g.claim(ownerFasthttp) {
		return 0, errClientGone
	}
	return g.l.Read(p)
}

// CloseWithError closes the loop unless the stream's goroutine owns it; fasthttp calls it once.
func (g *hijackGuard) CloseWithError(err error) error {
	if !g.claim(ownerFasthttp) {
		return nil
	}
	defer g.done()
	return g.l.CloseWithError(err)
}

// hijackStream makes fasthttp hand the connection over once the handler returns; the stream
// is then written by writeHijacked.
func (s *Server) hijackStream(fctx *fasthttp.RequestCtx, l *streamLoop) {
	s.hijacked.add()
	g := &hijackGuard{l: l, done: s.hijacked.done}
	l.conn = rawConn(l.conn)
	l.evented = eventable(l.src)
	fctx.Response.SetBodyStream(g, -1) // chunked; closes g when fasthttp releases fctx
	fctx.HijackSetNoResponse(true)
	fctx.Hijack(func(hj net.Conn) {
		// fasthttp's goroutine; fctx is alive until this returns.
		if !g.claim(ownerHijack) {
			_ = hj.Close() // fasthttp wrote the stream: not expected, but the connection is ours
			return
		}
		closeAfter := fctx.Request.Header.ConnectionClose()
		if closeAfter {
			fctx.Response.Header.Del(fasthttp.HeaderConnection)
			fctx.Response.Header.SetConnectionClose()
		}
		w := &chunkWriter{conn: rawConn(hj), head: fctx.Response.Header.AppendBytes(nil)}
		if l.evented {
			l.w = w
			l.onEnd = func(err error) { s.endHijacked(l, hj, w, closeAfter, err) }
			l.kick()
			return
		}
		go s.writeHijacked(l, hj, w, closeAfter)
	})
}

// writeHijacked writes the stream in HTTP/1.1 chunked encoding on the hijacked connection
// (w sends the response head first), then ends it (endHijacked).
func (s *Server) writeHijacked(l *streamLoop, hj net.Conn, w *chunkWriter, closeAfter bool) {
	_, err := l.WriteTo(w)
	s.endHijacked(l, hj, w, closeAfter, err)
}

// endHijacked ends a stream written on a hijacked connection (err: why it ended early, nil
// when whole): it writes the last chunk, then gives the connection back to fasthttp for the
// client's next request, or closes it (the client left or asked to close, or the server is
// shutting down).
func (s *Server) endHijacked(l *streamLoop, hj net.Conn, w *chunkWriter, closeAfter bool, err error) {
	defer s.hijacked.done()
	if err == nil {
		err = w.end()
	}
	_ = l.CloseWithError(err)
	if err != nil || closeAfter || s.draining.Load() {
		_ = w.conn.Close()
		return
	}
	s.serveAgain(hj, w.conn)
}

// maxPipelined bounds what a client may have sent after a streamed request before its answer
// (HTTP pipelining) and still keep the connection.
const maxPipelined = 64 << 10

// serveAgain gives a connection whose stream ended back to fasthttp. Bytes the client sent
// after the streamed request are in fasthttp's reader (read through hj); they are collected
// without waiting and served first.
func (s *Server) serveAgain(hj, raw net.Conn) {
	var pending []byte
	if err := raw.SetReadDeadline(time.Unix(1, 0)); err != nil {
		_ = raw.Close()
		return
	}
	var b [512]byte
	for {
		n, err := hj.Read(b[:])
		pending = append(pending, b[:n]...)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		if err != nil || len(pending) > maxPipelined {
			_ = raw.Close() // the client left, or sent too much unasked
			return
		}
	}
	if err := raw.SetReadDeadline(time.Time{}); err != nil {
		_ = raw.Close()
		return
	}
	c := &keptConn{Conn: raw, pending: pending}
	if len(pending) == 0 && !s.kept.add(c) {
		_ = raw.Close() // shutting down
		return
	}
	_ = s.app.Server().ServeConn(c) // closes c, or hands it to the next stream's hijack
}

// keptConn is a connection given back to fasthttp after a stream. Bytes already read from it
// are served first. Until its next request starts it is idle, and the server's shutdown
// closes it (fasthttp's own shutdown would wait 5 s for it, as for a new connection).
type keptConn struct {
	net.Conn
	pending []byte
	idle    *keptConns // nil once the next request started
}

func (c *keptConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	n, err := c.Conn.Read(p)
	if n > 0 && c.idle != nil {
		c.idle.remove(c)
	}
	return n, err
}

func (c *keptConn) Close() error {
	if c.idle != nil {
		c.idle.remove(c)
	}
	return c.Conn.Close()
}

// UnsafeConn is the connection itself (rawConn).
func (c *keptConn) UnsafeConn() net.Conn { return c.Conn }

// keptConns are the idle connections given back after their stream.
type keptConns struct {
	mu     sync.Mutex
	closed bool
	m      map[*keptConn]struct{}
}

// add registers c as idle; false once closeAll ran.
func (k *keptConns) add(c *keptConn) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return false
	}
	if k.m == nil {
		k.m = make(map[*keptConn]struct{})
	}
	k.m[c] = struct{}{}
	c.idle = k
	return true
}

// remove forgets c. Only c's serving goroutine calls it.
func (k *keptConns) remove(c *keptConn) {
	k.mu.Lock()
	delete(k.m, c)
	k.mu.Unlock()
	c.idle = nil
}

// closeAll closes every idle connection, and every one given back from now on.
func (k *keptConns) closeAll() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.closed = true
	for c := range k.m {
		_ = c.Conn.Close()
	}
	clear(k.m)
}

// chunkWriter writes HTTP/1.1 chunks on a connection, each with one writev; the response head
// goes out with the first chunk.
type chunkWriter struct {
	conn net.Conn
	head []byte // the response head, until the first write
	size [18]byte
	bufs [4][]byte
	vec  net.Buffers
}

var crlf = []byte("\r\n")

func (w *chunkWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	size := append(strconv.AppendInt(w.size[:0], int64(len(p)), 16), '\r', '\n')
	return len(p), w.send(size, p, crlf)
}

// end writes the last chunk.
func (w *chunkWriter) end() error { return w.send([]byte("0\r\n\r\n")) }

func (w *chunkWriter) send(parts ...[]byte) error {
	n := 0
	if len(w.head) > 0 {
		w.bufs[0], n = w.head, 1
		w.head = nil
	}
	n += copy(w.bufs[n:], parts)
	w.vec = w.bufs[:n]
	_, err := w.vec.WriteTo(w.conn)
	w.bufs = [4][]byte{}
	return err
}

// activeCount counts hijacked streams still being written: fasthttp's shutdown does not wait
// for hijacked connections, so Server.Shutdown waits for these itself.
type activeCount struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed when n drops to 0 while someone waits
}

func (a *activeCount) add() {
	a.mu.Lock()
	a.n++
	a.mu.Unlock()
}

func (a *activeCount) done() {
	a.mu.Lock()
	a.n--
	if a.n == 0 && a.zero != nil {
		close(a.zero)
		a.zero = nil
	}
	a.mu.Unlock()
}

// wait returns when no stream is being written, or when done fires.
func (a *activeCount) wait(done <-chan struct{}) {
	a.mu.Lock()
	if a.n == 0 {
		a.mu.Unlock()
		return
	}
	if a.zero == nil {
		a.zero = make(chan struct{})
	}
	zero := a.zero
	a.mu.Unlock()
	select {
	case <-zero:
	case <-done:
	}
}
