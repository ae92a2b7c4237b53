package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentgate/agentgate/stream"
)

// bodyLoop returns a stream loop over a finished run of n tokens and a done event, and a
// counter of its gone calls.
func bodyLoop(t *testing.T, n int) (*streamLoop, *atomic.Int32) {
	t.Helper()
	hub := stream.NewHub(stream.HubOptions{})
	t.Cleanup(hub.Close)
	topic := hub.Open("run_body")
	for i := range n {
		if _, err := topic.Publish(stream.Event{Type: stream.TypeToken, Token: &stream.Token{Delta: fmt.Sprintf("tok%d ", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := topic.Publish(stream.Event{Type: stream.TypeDone, Done: &stream.Answer{RunID: "run_body", Output: "done"}}); err != nil {
		t.Fatal(err)
	}
	sub, ok := hub.Subscribe("run_body", 0)
	if !ok {
		t.Fatal("subscribe failed")
	}
	gone := &atomic.Int32{}
	var streams atomic.Int64
	l := &streamLoop{
		base: context.Background(), heartbeat: time.Hour, streams: &streams,
		gone: func() { gone.Add(1) }, src: &hubEvents{hub: hub, runID: "run_body", sub: sub},
		out: &sseFrames{runID: "run_body", retry: 1500},
	}
	return l, gone
}

// smallReads reads at most 7 bytes at a time.
type smallReads struct{ r io.Reader }

func (s smallReads) Read(p []byte) (int, error) { return s.r.Read(p[:min(len(p), 7)]) }

// TestStreamBodyReadMatchesWriteTo: fasthttp writes a stream with WriteTo; any other consumer
// reading the body gets the same bytes, and neither reports the client gone.
func TestStreamBodyReadMatchesWriteTo(t *testing.T) {
	const tokens = 300 // more than one frame buffer's worth of bytes
	a, goneA := bodyLoop(t, tokens)
	var viaWriteTo bytes.Buffer
	if _, err := a.WriteTo(&viaWriteTo); err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	if err := a.CloseWithError(nil); err != nil {
		t.Fatal(err)
	}

	b, goneB := bodyLoop(t, tokens)
	viaRead, err := io.ReadAll(smallReads{b})
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if err := b.CloseWithError(nil); err != nil {
		t.Fatal(err)
	}

	if !bytes.Equal(viaWriteTo.Bytes(), viaRead) {
		t.Fatalf("Read gave %d bytes, WriteTo %d; they differ", len(viaRead), viaWriteTo.Len())
	}
	if !bytes.HasPrefix(viaRead, []byte("retry: 1500\n\n")) || !bytes.HasSuffix(viaRead, []byte("\n\n")) ||
		!bytes.Contains(viaRead, []byte("event: done\n")) || bytes.Count(viaRead, []byte("event: token\n")) != tokens {
		t.Fatalf("unexpected stream:\n%.300s …", viaRead)
	}
	if goneA.Load() != 0 || goneB.Load() != 0 {
		t.Fatalf("gone called (%d, %d) for streams that ended with their terminal event", goneA.Load(), goneB.Load())
	}
	if n := a.streams.Load() + b.streams.Load(); n != 0 {
		t.Fatalf("open-streams gauge = %d after both streams ended", n)
	}
}

// failingWriter fails every write, as a chunk writer does once the client hung up.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

// TestStreamBodyClientGone: a failed write, or a body closed before its terminal event (the
// client left, or fasthttp never wrote it), reports the client gone exactly once and releases
// the stream.
func TestStreamBodyClientGone(t *testing.T) {
	t.Run("failed write", func(t *testing.T) {
		l, gone := bodyLoop(t, 3)
		if _, err := l.WriteTo(failingWriter{}); err == nil {
			t.Fatal("WriteTo to a failing writer returned nil")
		}
		_ = l.CloseWithError(io.ErrClosedPipe)
		if gone.Load() != 1 {
			t.Fatalf("gone called %d times, want 1", gone.Load())
		}
		if l.streams.Load() != 0 {
			t.Fatalf("open-streams gauge = %d", l.streams.Load())
		}
	})
	t.Run("closed unread", func(t *testing.T) {
		l, gone := bodyLoop(t, 3)
		_ = l.CloseWithError(nil)
		if gone.Load() != 1 {
			t.Fatalf("gone called %d times, want 1", gone.Load())
		}
		if !l.src.(*hubEvents).sub.Ended() {
			t.Fatal("the subscription was not closed")
		}
	})
	t.Run("closed half read", func(t *testing.T) {
		l, gone := bodyLoop(t, 3)
		var p [16]byte
		if _, err := l.Read(p[:]); err != nil {
			t.Fatal(err)
		}
		_ = l.CloseWithError(nil)
		if gone.Load() != 1 {
			t.Fatalf("gone called %d times, want 1", gone.Load())
		}
	})
}

// panicFrames renders like sseFrames but panics on the second token, like a bug would.
type panicFrames struct {
	sseFrames
	tokens int
}

func (p *panicFrames) event(ev stream.Event) (bool, error) {
	if ev.Type == stream.TypeToken {
		if p.tokens++; p.tokens == 2 {
			panic("render bug")
		}
	}
	return p.sseFrames.event(ev)
}

// TestStreamPanicEndsOnlyThatStream: a panic while a stream is written, on its own goroutine
// (WriteTo) or in an evented step, ends that stream as if its client had left (the run is
// told, the stream's resources are released, the connection is closed) instead of the
// process.
func TestStreamPanicEndsOnlyThatStream(t *testing.T) {
	t.Run("own goroutine", func(t *testing.T) {
		l, gone := bodyLoop(t, 3)
		l.out = &panicFrames{sseFrames: sseFrames{runID: "run_body", retry: 1500}}
		l.log = slog.New(slog.DiscardHandler)
		var out bytes.Buffer
		_, err := l.WriteTo(&out)
		if err != errStreamCrashed {
			t.Fatalf("WriteTo: %v, want errStreamCrashed", err)
		}
		_ = l.CloseWithError(err)
		if gone.Load() != 1 || l.streams.Load() != 0 || !l.src.(*hubEvents).sub.Ended() {
			t.Fatalf("gone %d, open streams %d, subscription ended %v; want 1, 0, true",
				gone.Load(), l.streams.Load(), l.src.(*hubEvents).sub.Ended())
		}
	})
	t.Run("evented", func(t *testing.T) {
		l, gone := bodyLoop(t, 3)
		l.out = &panicFrames{sseFrames: sseFrames{runID: "run_body", retry: 1500}}
		l.log = slog.New(slog.DiscardHandler)
		client, conn := net.Pipe()
		drained := make(chan struct{})
		go func() { defer close(drained); _, _ = io.Copy(io.Discard, client) }()
		l.conn, l.hangups, l.evented = conn, &hangups{}, true
		l.w = &chunkWriter{conn: conn}
		ended := make(chan error, 1)
		l.onEnd = func(err error) {
			_ = l.CloseWithError(err)
			_ = conn.Close()
			ended <- err
		}
		l.kick()
		if err := <-ended; err != errStreamCrashed {
			t.Fatalf("stream ended with %v, want errStreamCrashed", err)
		}
		<-drained // the connection was closed
		if gone.Load() != 1 || l.streams.Load() != 0 || !l.src.(*hubEvents).sub.Ended() {
			t.Fatalf("gone %d, open streams %d, subscription ended %v; want 1, 0, true",
				gone.Load(), l.streams.Load(), l.src.(*hubEvents).sub.Ended())
		}
	})
}
