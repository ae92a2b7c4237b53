package stream

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
)

// Flusher is the destination of a Writer: a buffered writer whose Flush pushes the bytes to the
// client. *bufio.Writer satisfies it; the server's stream loop hands a buffer that collects
// frames and sends those that are ready as one HTTP chunk.
type Flusher interface {
	io.Writer
	Flush() error
}

// maxKeptBuffer is the largest frame buffer a Writer keeps between frames. A rare huge frame
// (a done event with big tool results) must not pin its buffer for the rest of a long stream.
const maxKeptBuffer = 64 << 10

// Writer frames events as Server-Sent Events (SPEC §6). Each method writes whole frames, then
// flushes, and returns the write or flush error: with fasthttp that error is the only sign that
// the client went away.
//
// A Writer is not safe for concurrent use: the one goroutine that streams the response owns it
// (including heartbeats, which that goroutine's loop interleaves with events).
type Writer struct {
	w    Flusher
	buf  []byte        // the frame being written, reused between frames
	data appendBuffer  // the JSON data of the event being written, reused between events
	enc  *json.Encoder // encodes payloads into data without a per-event allocation
}

// NewWriter returns a Writer that writes frames to w and flushes w after each frame.
// A *bufio.Writer is the usual w.
func NewWriter(w Flusher) *Writer {
	sw := &Writer{w: w}
	sw.enc = json.NewEncoder(&sw.data) // HTML escaping stays on, as in Event.Data
	return sw
}

// Retry writes the reconnection delay frame "retry: <ms>\n\n". ms must not be negative.
func (w *Writer) Retry(ms int) error {
	if ms < 0 {
		return errors.New("stream: negative retry delay")
	}
	b := append(w.buf[:0], "retry: "...)
	b = strconv.AppendInt(b, int64(ms), 10)
	b = append(b, "\n\n"...)
	return w.send(b)
}

// Event writes e as "id: <seq>\nevent: <type>\ndata: <json>\n\n". The data is byte for byte
// what e.Data() returns. An event of an unknown type, without its payload or whose payload does
// not encode is rejected before anything is written.
func (w *Writer) Event(e Event) error {
	p, err := e.payload()
	if err != nil {
		return err
	}
	w.data.b = w.data.b[:0]
	if err := w.enc.Encode(p); err != nil {
		return err
	}
	body := w.data.b
	if n := len(body); n > 0 && body[n-1] == '\n' { // Encode terminates each value with '\n'
		body = body[:n-1]
	}
	if len(body) < 2 || body[0] != '{' { // every payload is a struct: cannot happen
		return errors.New("stream: payload is not a JSON object")
	}

	b := append(w.buf[:0], "id: "...)
	b = strconv.AppendInt(b, e.Seq, 10)
	b = append(b, "\nevent: "...)
	b = append(b, e.Type...)
	b = append(b, '\n')
	// Flatten the payload behind a leading "type" member, as marshalTyped does.
	b = appendTypedData(b, e.Type, body)
	b = append(b, '\n')
	w.data.shrink()
	return w.send(b)
}

// appendTypedData appends the data lines of the payload body (a JSON object) with a leading
// "type" member. The common case, a body without line breaks, is one data line written without
// copying the body twice; otherwise appendData splits it.
func appendTypedData(b []byte, t Type, body []byte) []byte {
	if bytes.IndexByte(body, '\n') < 0 && bytes.IndexByte(body, '\r') < 0 {
		b = append(b, `data: {"type":"`...)
		b = append(b, t...)
		b = append(b, '"')
		if len(body) > 2 {
			b = append(b, ',')
		}
		b = append(b, body[1:]...)
		return append(b, '\n')
	}
	typed := make([]byte, 0, len(body)+len(t)+12)
	typed = append(typed, `{"type":"`...)
	typed = append(typed, t...)
	typed = append(typed, '"')
	if len(body) > 2 {
		typed = append(typed, ',')
	}
	typed = append(typed, body[1:]...)
	return appendData(b, typed)
}

// appendData appends data as SSE data lines. A parser joins data lines with "\n", so data with
// line breaks is split into one "data:" line per line and comes back intact, except that "\r\n"
// and "\r" come back as "\n" (the SSE line terminators are indistinguishable on the wire).
func appendData(b, data []byte) []byte {
	for {
		b = append(b, "data: "...)
		i := bytes.IndexAny(data, "\r\n")
		if i < 0 {
			b = append(b, data...)
			return append(b, '\n')
		}
		b = append(b, data[:i]...)
		b = append(b, '\n')
		if data[i] == '\r' && i+1 < len(data) && data[i+1] == '\n' {
			i++
		}
		data = data[i+1:]
	}
}

// Ping writes the heartbeat comment ": ping\n\n".
func (w *Writer) Ping() error {
	return w.send(append(w.buf[:0], ": ping\n\n"...))
}

// Comment writes text as an SSE comment, which clients ignore. Line breaks in text start a new
// comment line, so text can never end the comment early and inject fields or events.
func (w *Writer) Comment(text string) error {
	b := w.buf[:0]
	for {
		b = append(b, ':')
		i := strings.IndexAny(text, "\r\n")
		line := text
		if i >= 0 {
			line = text[:i]
		}
		if line != "" {
			b = append(b, ' ')
			b = append(b, line...)
		}
		b = append(b, '\n')
		if i < 0 {
			break
		}
		if text[i] == '\r' && i+1 < len(text) && text[i+1] == '\n' {
			i++
		}
		text = text[i+1:]
	}
	return w.send(append(b, '\n'))
}

// send writes one whole frame and flushes it. It keeps b for the next frame unless b grew
// beyond maxKeptBuffer.
func (w *Writer) send(b []byte) error {
	if cap(b) <= maxKeptBuffer {
		w.buf = b[:0]
	} else {
		w.buf = nil
	}
	if _, err := w.w.Write(b); err != nil {
		return err
	}
	return w.w.Flush()
}

// appendBuffer is an io.Writer that appends to a reusable byte slice; it never fails, so the
// json.Encoder that writes to it never becomes sticky-broken.
type appendBuffer struct{ b []byte }

// Write appends p.
func (a *appendBuffer) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

// shrink drops the buffer if an unusually large payload grew it beyond maxKeptBuffer.
func (a *appendBuffer) shrink() {
	if cap(a.b) > maxKeptBuffer {
		a.b = nil
	}
}
