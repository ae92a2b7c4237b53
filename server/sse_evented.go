package server

import (
	"context"
	"io"
	"time"
)

// An evented stream has no goroutine while it waits. It is a stream on a hijacked connection
// whose events come from this instance's hub only (a synchronous run's native or chat stream):
// the hub, the heartbeat timer, the hang-up watcher and the server's shutdown each kick it,
// and a goroutine started then (step) writes what is due and exits. 10,000 open streams wait
// with two goroutines each (the run's and net/http's HTTP/2 request), not three. A step writes
// like the blocking loop (a slow client blocks the step, never the run), and only one step
// runs at a time.
//
// Other streams (resumes of async runs, which may switch to the stored log; HEAD, HTTP/1.0)
// keep the blocking loop (streamLoop.WriteTo).

// Kick states (streamLoop.kicks).
const (
	kickIdle    uint32 = iota // no step running
	kickRunning               // a step is running
	kickAgain                 // a step is running and was kicked meanwhile: it runs once more
)

// eventable reports whether src can wake a stream itself.
func eventable(src eventSource) bool {
	h, ok := src.(*hubEvents)
	return ok && h.stored == nil
}

// startEvented arms the stream's wake-ups; called by start on the first step.
func (l *streamLoop) startEvented() {
	l.beatT = time.AfterFunc(l.heartbeat, l.beatFired)
	l.watched = l.hangups.watch(l.conn, l.kick)
	l.stopShut = context.AfterFunc(l.base, l.kick)
	l.src.(*hubEvents).notifyTo(l.kick)
}

// beatFired is the heartbeat timer's function.
func (l *streamLoop) beatFired() {
	l.beatDue.Store(true)
	l.kick()
}

// kick makes a step run: it starts one, or tells the running one to look again.
func (l *streamLoop) kick() {
	for {
		switch l.kicks.Load() {
		case kickIdle:
			if l.kicks.CompareAndSwap(kickIdle, kickRunning) {
				go l.step()
				return
			}
		case kickRunning:
			if l.kicks.CompareAndSwap(kickRunning, kickAgain) {
				return
			}
		default:
			return
		}
	}
}

// step writes what is due until nothing is; at the end of the stream it calls onEnd (and the
// kick state stays running, so no later kick starts a step).
func (l *streamLoop) step() {
	for {
		l.kicks.Store(kickRunning)
		if end, err := l.passSafely(); end || err != nil {
			l.onEnd(err)
			return
		}
		if l.kicks.CompareAndSwap(kickRunning, kickIdle) {
			return
		}
	}
}

// passSafely is pass, with a panic in it ending the stream (recoverCrash): end is reported
// by end or by an error.
func (l *streamLoop) passSafely() (end bool, err error) {
	defer l.recoverCrash(&err)
	return l.pass()
}

// pass renders what is due now — the opening frame, the hub's events, a heartbeat, the cut at
// shutdown — and writes it, without waiting for anything else. end reports the stream over;
// err is errClientGone (or the write error) when the client left.
func (l *streamLoop) pass() (end bool, err error) {
	if !l.started {
		l.start()
		if l.out.open(&l.frames) != nil {
			l.hungUp()
		}
	}
	select {
	case <-l.watched.goneC():
		l.hungUp()
	default:
	}
	if !l.over && !l.shutSeen && l.base.Err() != nil {
		l.shutSeen = true
		if l.src.shutdown() {
			l.cut()
		}
	}
	if !l.over {
		l.read(false)
	}
	if l.beatDue.Swap(false) && !l.over && len(l.frames.b) == 0 {
		if l.out.ping() != nil {
			l.over = true
		}
		l.beatT.Reset(l.heartbeat)
	}
	if len(l.frames.b) > 0 {
		_, werr := l.w.Write(l.frames.b)
		l.sent()
		if werr != nil {
			l.hungUp()
			return true, l.stop(werr)
		}
	}
	if l.left {
		return true, l.stop(errClientGone)
	}
	if l.over {
		_ = l.stop(io.EOF)
		return true, nil
	}
	return false, nil
}
