package server

import (
	"net"
	"sync"
	"time"
)

// watchInterval is how often an open stream's connection is checked for a client that hung up
// while nothing is being written (long model or tool waits).
const watchInterval = 250 * time.Millisecond

// hangups watches the connections of open streams for clients that hung up, from one goroutine
// that runs while any stream is open: every watchInterval each connection gets one
// non-blocking peek, and a stream whose client left has its channel closed. (A ticker and a
// wake-up per stream, four times a second, were most of an idle stream's CPU.)
type hangups struct {
	mu      sync.Mutex
	watched map[*watchedConn]struct{}
	running bool
	batch   []*watchedConn // the watcher goroutine's snapshot, reused
}

// watchedConn is one stream's connection under watch.
type watchedConn struct {
	peer   *peer
	gone   chan struct{} // closed when the client hung up
	onGone func()        // called then too, unless nil
}

// watch starts watching conn; nil when it cannot be peeked at (then only a failed write tells
// that the client left).
func (h *hangups) watch(conn net.Conn, onGone func()) *watchedConn {
	p := newPeer(conn)
	if p == nil {
		return nil
	}
	w := &watchedConn{peer: p, gone: make(chan struct{}), onGone: onGone}
	h.mu.Lock()
	if h.watched == nil {
		h.watched = make(map[*watchedConn]struct{})
	}
	h.watched[w] = struct{}{}
	if !h.running {
		h.running = true
		go h.loop()
	}
	h.mu.Unlock()
	return w
}

// unwatch stops watching w (nil: nothing).
func (h *hangups) unwatch(w *watchedConn) {
	if w == nil {
		return
	}
	h.mu.Lock()
	delete(h.watched, w)
	h.mu.Unlock()
}

// goneC is closed when the client hung up; a nil w never fires.
func (w *watchedConn) goneC() <-chan struct{} {
	if w == nil {
		return nil
	}
	return w.gone
}

// loop peeks at every watched connection each watchInterval; it returns once none is watched.
func (h *hangups) loop() {
	t := time.NewTicker(watchInterval)
	defer t.Stop()
	for range t.C {
		h.mu.Lock()
		if len(h.watched) == 0 {
			h.running = false
			h.mu.Unlock()
			return
		}
		h.batch = h.batch[:0]
		for w := range h.watched {
			h.batch = append(h.batch, w)
		}
		h.mu.Unlock()
		for i, w := range h.batch {
			if w.peer.closed() {
				h.mu.Lock()
				_, ok := h.watched[w]
				if ok {
					delete(h.watched, w)
					close(w.gone)
				}
				h.mu.Unlock()
				if ok && w.onGone != nil {
					w.onGone()
				}
			}
			h.batch[i] = nil
		}
	}
}
