package server

import (
	"bufio"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/agentgate/agentgate/stream"
)

// watchInterval is how often an open stream checks whether its client hung up while nothing
// is being written (long model or tool waits).
const watchInterval = 250 * time.Millisecond

// setSSEHeaders sets the headers of SPEC §6. no-transform keeps proxies from compressing.
func setSSEHeaders(c *fiber.Ctx, runID string) {
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache, no-transform")
	c.Set(fiber.HeaderConnection, "keep-alive")
	c.Set("X-Accel-Buffering", "no")
	c.Set("X-Run-Id", runID)
}

// resubscribe picks up a run's events after seq when a subscription was dropped for falling
// behind; nil when the run is no longer known to this instance.
type resubscribe func(afterSeq int64) *stream.Subscription

// sse answers with the run's event stream. It is the one loop of DESIGN rule 3: events,
// heartbeat and disconnect watch, flushing after every write. gone is called once when the
// client is found to have left (a failed write, or the watcher); it is how a synchronous run
// gets cancelled.
func (s *Server) sse(c *fiber.Ctx, runID string, sub *stream.Subscription, gone func()) error {
	return s.sseFrom(c, runID, sub, gone, func(after int64) *stream.Subscription {
		sub, ok := s.runner.hub.Subscribe(runID, after)
		if !ok {
			return nil
		}
		return sub
	}, nil)
}

// sseFrom is sse with an explicit way to resume, and optional events to send first (replay
// from storage).
func (s *Server) sseFrom(c *fiber.Ctx, runID string, sub *stream.Subscription, gone func(), resub resubscribe, first []stream.Event) error {
	setSSEHeaders(c, runID)
	// *fiber.Ctx is dead once this handler returns: copy what the writer needs now.
	var (
		base      = s.ctx
		heartbeat = s.cfg.Heartbeat
		retry     = s.cfg.RetryMs
		conn      = c.Context().Conn()
		streams   = &s.openStreams
	)
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		streams.Add(1)
		defer streams.Add(-1)
		sw := stream.NewWriter(w)
		defer func() {
			if sub != nil {
				sub.Close()
			}
		}()
		left := func() {
			if gone != nil {
				gone()
			}
		}
		if sw.Retry(retry) != nil {
			left()
			return
		}
		last := int64(0)
		for _, ev := range first {
			if sw.Event(ev) != nil {
				left()
				return
			}
			last = ev.Seq
			if ev.Type.Terminal() {
				return
			}
		}
		if sub == nil {
			return
		}
		beat := time.NewTicker(heartbeat)
		defer beat.Stop()
		watch := time.NewTicker(watchInterval)
		defer watch.Stop()
		shutdown := base.Done()
		for {
			select {
			case <-sub.Ready():
				for {
					ev, ok := sub.Next()
					if !ok {
						break
					}
					if ev.Seq <= last {
						continue // a resumed subscription never repeats what was sent
					}
					if sw.Event(ev) != nil {
						left()
						return
					}
					last = ev.Seq
					if ev.Type.Terminal() {
						return
					}
					beat.Reset(heartbeat)
				}
				if !sub.Ended() {
					continue
				}
				if sub.Dropped() && resub != nil {
					old := sub
					sub = resub(last)
					old.Close()
					if sub != nil {
						continue
					}
				}
				if base.Err() != nil {
					// Shutdown, and the run did not end in time: the stream still ends
					// with a terminal event (see shutdownEvent).
					_ = sw.Event(shutdownEvent(runID, last))
				}
				return
			case <-beat.C:
				if sw.Ping() != nil {
					left()
					return
				}
			case <-watch.C:
				if peerClosed(conn) {
					left()
					return
				}
			case <-shutdown:
				// Runs on this instance end with their own terminal event (cancelled with
				// errShutdown); give them a moment, then close the stream ourselves.
				shutdown = nil
				t := time.AfterFunc(shutdownGrace, sub.Close)
				defer t.Stop()
			}
		}
	})
	return nil
}
