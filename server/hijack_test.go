package server

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/agentgate/agentgate/agent/llmtest"
)

// Streams on HTTP/1.1 TCP connections are written on the hijacked connection (hijack.go),
// which is then given back to fasthttp. These tests speak raw HTTP/1.1 on one connection, so
// they see exactly what goes over the wire: the head, the chunked body, and whether the same
// connection serves the next request.

// streamRequest is a streaming run request for ep on the wire.
func streamRequest(ep createdEndpoint, extra string) string {
	body := `{"input":"hello"}`
	return "POST /api/run/" + ep.Slug() + " HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer " + ep.APIKey +
		"\r\nAccept: text/event-stream\r\nContent-Type: application/json\r\n" + extra +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}

// readWireStream reads one whole streaming answer from br and checks it: the SSE head, a chunked
// body that ends with the run's done event.
func readWireStream(t *testing.T, br *bufio.Reader) *http.Response {
	t.Helper()
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" || res.Header.Get("X-Run-Id") == "" {
		t.Fatalf("head: %d %v", res.StatusCode, res.Header)
	}
	if !strings.Contains(string(body), "event: done\n") || !strings.HasPrefix(string(body), "retry: ") {
		t.Fatalf("body:\n%s", body)
	}
	return res
}

func dialGateway(t *testing.T, e *testEnv) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return conn, bufio.NewReader(conn)
}

func TestStreamConnection(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	e.LLM.Handle(func(llmtest.Request) llmtest.Reply { return llmtest.Reply{Text: "one two three"} })
	ep := e.endpoint(nil)
	health := "GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n"

	t.Run("kept alive for the next requests", func(t *testing.T) {
		t.Parallel()
		conn, br := dialGateway(t, e)
		for i := 0; i < 3; i++ {
			if _, err := io.WriteString(conn, streamRequest(ep, "")); err != nil {
				t.Fatal(err)
			}
			res := readWireStream(t, br)
			if res.Close || len(res.TransferEncoding) != 1 || res.TransferEncoding[0] != "chunked" {
				t.Fatalf("stream %d: close %v, transfer-encoding %v", i, res.Close, res.TransferEncoding)
			}
		}
		if _, err := io.WriteString(conn, health); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(br, nil)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("healthz after streams: %v %v", res, err)
		}
	})

	t.Run("pipelined request after the stream", func(t *testing.T) {
		t.Parallel()
		conn, br := dialGateway(t, e)
		if _, err := io.WriteString(conn, streamRequest(ep, "")+health); err != nil {
			t.Fatal(err)
		}
		readWireStream(t, br)
		res, err := http.ReadResponse(br, nil)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("pipelined healthz: %v %v", res, err)
		}
		body, _ := io.ReadAll(res.Body)
		if !strings.Contains(string(body), `"ok"`) {
			t.Fatalf("pipelined healthz body %s", body)
		}
	})

	t.Run("client asks to close", func(t *testing.T) {
		t.Parallel()
		conn, br := dialGateway(t, e)
		if _, err := io.WriteString(conn, streamRequest(ep, "Connection: close\r\n")); err != nil {
			t.Fatal(err)
		}
		res := readWireStream(t, br)
		if !res.Close || strings.Contains(strings.ToLower(strings.Join(res.Header.Values("Connection"), ",")), "keep-alive") {
			t.Fatalf("Connection header %q, want close only", res.Header.Values("Connection"))
		}
		if n, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("after the stream: %v %v, want the server to close", n, err)
		}
	})

	t.Run("HTTP/1.0 is answered by fasthttp's body writer", func(t *testing.T) {
		t.Parallel()
		conn, br := dialGateway(t, e)
		req := strings.Replace(streamRequest(ep, ""), "HTTP/1.1", "HTTP/1.0", 1)
		if _, err := io.WriteString(conn, req); err != nil {
			t.Fatal(err)
		}
		readWireStream(t, br)
	})
}

// TestStreamConnection_Shutdown: a connection given back to fasthttp after its stream is an
// idle keep-alive connection like any other: shutdown closes it and does not wait for it.
func TestStreamConnection_Shutdown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	e.LLM.Handle(func(llmtest.Request) llmtest.Reply { return llmtest.Reply{Text: "one two three"} })
	ep := e.endpoint(nil)
	conn, br := dialGateway(t, e)
	if _, err := io.WriteString(conn, streamRequest(ep, "")); err != nil {
		t.Fatal(err)
	}
	readWireStream(t, br)
	t0 := time.Now()
	e.shutdown()
	t.Logf("shutdown took %v", time.Since(t0))
	if n, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection after shutdown: %v %v, want closed by the server", n, err)
	}
}

// TestHijackGuard: the body fasthttp holds while a stream waits for its hijack. Released
// without a hijack, it closes the loop as if the client had left (no subscription or count
// leaks); once the hijack claimed the loop, fasthttp's close and writes leave it alone; should
// fasthttp write the body itself, it gets the whole stream.
func TestHijackGuard(t *testing.T) {
	t.Run("released without a hijack", func(t *testing.T) {
		l, gone := bodyLoop(t, 3)
		var active activeCount
		active.add()
		g := &hijackGuard{l: l, done: active.done}
		_ = g.CloseWithError(nil)
		if gone.Load() != 1 || !l.src.(*hubEvents).sub.Ended() || active.n != 0 {
			t.Fatalf("gone %d, subscription ended %v, streams counted %d; want 1, true, 0",
				gone.Load(), l.src.(*hubEvents).sub.Ended(), active.n)
		}
	})
	t.Run("claimed by the hijack", func(t *testing.T) {
		l, gone := bodyLoop(t, 3)
		var active activeCount
		active.add()
		g := &hijackGuard{l: l, done: active.done}
		if !g.claim(ownerHijack) {
			t.Fatal("claim failed")
		}
		if _, err := g.WriteTo(io.Discard); err == nil {
			t.Fatal("fasthttp could write a hijacked stream")
		}
		_ = g.CloseWithError(nil)
		if gone.Load() != 0 || l.src.(*hubEvents).sub.Ended() || active.n != 1 {
			t.Fatalf("after fasthttp's close: gone %d, subscription ended %v, streams counted %d; want 0, false, 1",
				gone.Load(), l.src.(*hubEvents).sub.Ended(), active.n)
		}
		var out bytes.Buffer
		if _, err := l.WriteTo(&out); err != nil || !strings.Contains(out.String(), "event: done") {
			t.Fatalf("the hijack's own write: %v %q", err, out.String())
		}
	})
	t.Run("written by fasthttp", func(t *testing.T) {
		l, gone := bodyLoop(t, 3)
		var active activeCount
		active.add()
		g := &hijackGuard{l: l, done: active.done}
		var out bytes.Buffer
		if _, err := g.WriteTo(&out); err != nil || !strings.Contains(out.String(), "event: done") {
			t.Fatalf("fasthttp's write: %v %q", err, out.String())
		}
		_ = g.CloseWithError(nil)
		if gone.Load() != 0 || active.n != 0 || g.claim(ownerHijack) {
			t.Fatalf("gone %d, streams counted %d; want 0, 0, and no later hijack", gone.Load(), active.n)
		}
	})
}

// TestStreamHeartbeats: while the model is silent a stream sends a heartbeat comment each
// interval — a synchronous run's stream (evented: no goroutine waits for the timer) and an
// async run's events (the blocking loop) alike.
func TestStreamHeartbeats(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite", func(c *Config) { c.Heartbeat = 20 * time.Millisecond })
	e.LLM.Handle(func(llmtest.Request) llmtest.Reply { return llmtest.Reply{Chunks: []string{"partial"}, Hang: true} })
	ep := e.endpoint(nil)
	for _, mode := range []string{"sync", "async"} {
		t.Run(mode, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var res *http.Response
			if mode == "sync" {
				res = e.openStream(ctx, ep, `{"input":"hang"}`)
			} else {
				a := e.startAsync(ep, "hang")
				res = e.events(ctx, ep, a.RunID, -1)
			}
			defer res.Body.Close()
			br := bufio.NewReader(res.Body)
			pings, sawToken := 0, false
			for pings < 3 {
				line, err := br.ReadString('\n')
				if err != nil {
					t.Fatalf("stream ended after %d pings: %v", pings, err)
				}
				switch {
				case strings.HasPrefix(line, ": ping"):
					if sawToken {
						pings++ // only those during the silence after the token count
					}
				case strings.Contains(line, `"delta":"partial"`):
					sawToken = true
				}
			}
		})
	}
}
