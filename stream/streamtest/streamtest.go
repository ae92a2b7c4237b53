// Package streamtest holds test helpers for SSE transcripts: parse a response body with an
// independent parser (go-sse's sse.Read), decode and check its events, normalise run ids and
// timings, and compare with golden files under testdata/ (rewritten with -update).
//
// It is imported by tests only. It may import stream and go-sse; nothing imports it from
// production code.
package streamtest

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	sse "github.com/tmaxmax/go-sse"

	"github.com/agentgate/agentgate/stream"
)

// update is the -update flag of every test binary that imports streamtest. Test packages must
// not define their own -update flag (the flag package would panic on the duplicate); use
// Updating instead.
var update = flag.Bool("update", false, "rewrite golden files under testdata/ instead of comparing")

// Updating reports whether the test binary runs with -update.
func Updating() bool { return *update }

// MaxEventSize is the largest event Parse accepts (go-sse's default is 64 KiB; a done event
// with large tool results can exceed it).
const MaxEventSize = 16 << 20

// Message is one event as a spec-conforming SSE parser sees it. Comments (": ping") and the
// retry field are not events: go-sse's reader skips them, as EventSource does.
type Message struct {
	ID    string // the last event id seen, which for agentgate streams is the event's own seq
	Event string
	Data  string
}

// Parse reads an SSE stream to its end with go-sse's parser and returns its events. It fails tb
// on a read or parse error.
func Parse(tb testing.TB, r io.Reader) []Message {
	tb.Helper()
	var msgs []Message
	for ev, err := range sse.Read(r, &sse.ReadConfig{MaxEventSize: MaxEventSize}) {
		if err != nil {
			tb.Fatalf("streamtest: parse SSE after %d events: %v", len(msgs), err)
			return msgs
		}
		msgs = append(msgs, Message{ID: ev.LastEventID, Event: ev.Type, Data: ev.Data})
	}
	return msgs
}

// Decode turns the messages of a whole stream into events with stream.Parse and checks the
// wire contract of SPEC §6: ids are consecutive sequence numbers (1, 2, 3 …, or from
// Last-Event-ID+1 for a resumed stream), the data's "type" equals the event name, and exactly
// one terminal event ends the stream. It fails tb on the first violation.
func Decode(tb testing.TB, msgs []Message) []stream.Event {
	tb.Helper()
	events, err := decode(msgs)
	if err != nil {
		tb.Fatalf("streamtest: %v", err)
	}
	return events
}

// decode implements Decode.
func decode(msgs []Message) ([]stream.Event, error) {
	events := make([]stream.Event, 0, len(msgs))
	for i, m := range msgs {
		seq, err := strconv.ParseInt(m.ID, 10, 64)
		switch {
		case err != nil || seq < 1:
			return events, fmt.Errorf("message %d: id %q is not a sequence number", i, m.ID)
		case i > 0 && seq != events[i-1].Seq+1:
			return events, fmt.Errorf("message %d: id %d follows %d", i, seq, events[i-1].Seq)
		}
		e, err := stream.Parse(seq, m.Event, []byte(m.Data))
		if err != nil {
			return events, fmt.Errorf("message %d: %v", i, err)
		}
		if got := typeField(m.Data); got != m.Event {
			return events, fmt.Errorf("message %d: data type %q, event %q", i, got, m.Event)
		}
		if e.Type.Terminal() != (i == len(msgs)-1) {
			return events, fmt.Errorf("message %d of %d: %s event: the last event, and only it, must be done or error", i, len(msgs), m.Event)
		}
		events = append(events, e)
	}
	if len(msgs) == 0 {
		return events, errors.New("empty stream: want a terminal event")
	}
	return events, nil
}

// typeRe matches the leading "type" member that stream.Event.Data writes first.
var typeRe = regexp.MustCompile(`^\{"type":"([a-z_]+)"`)

// typeField returns the value of the data's leading "type" member, or "".
func typeField(data string) string {
	m := typeRe.FindStringSubmatch(data)
	if m == nil {
		return ""
	}
	return m[1]
}

var (
	runIDRe  = regexp.MustCompile(`run_[0-9a-f]{18}`)
	timingRe = regexp.MustCompile(`("(?:latency|latency_ms|latencyMs|ttft|ttft_ms|ttftMs)"\s*:\s*)-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?`)
)

// Normalize returns a copy of msgs with the values that change from run to run replaced by
// stable placeholders that keep the JSON valid: each distinct run id becomes
// run_000000000000000001, run_000000000000000002 … in order of appearance, and every number
// under latency, latency_ms, latencyMs, ttft, ttft_ms or ttftMs becomes 0.
func Normalize(msgs []Message) []Message {
	ids := map[string]string{}
	norm := func(s string) string {
		s = runIDRe.ReplaceAllStringFunc(s, func(id string) string {
			if p, ok := ids[id]; ok {
				return p
			}
			p := fmt.Sprintf("run_%018d", len(ids)+1)
			ids[id] = p
			return p
		})
		return timingRe.ReplaceAllString(s, "${1}0")
	}
	out := make([]Message, len(msgs))
	for i, m := range msgs {
		out[i] = Message{ID: norm(m.ID), Event: norm(m.Event), Data: norm(m.Data)}
	}
	return out
}

// Format renders messages back as an SSE transcript ("id:", "event:", one "data:" line per
// data line, blank line), the form golden files keep.
func Format(msgs []Message) []byte {
	var b bytes.Buffer
	for _, m := range msgs {
		if m.ID != "" {
			b.WriteString("id: " + m.ID + "\n")
		}
		if m.Event != "" {
			b.WriteString("event: " + m.Event + "\n")
		}
		for line := range strings.SplitSeq(m.Data, "\n") {
			b.WriteString("data: " + line + "\n")
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// Golden compares got with the golden file at path (relative to the test's package directory,
// conventionally testdata/NAME.golden). With -update it writes got to the file instead.
func Golden(tb testing.TB, path string, got []byte) {
	tb.Helper()
	if err := golden(path, got, *update); err != nil {
		tb.Fatalf("streamtest: %v", err)
	}
}

// golden implements Golden.
func golden(path string, got []byte, update bool) error {
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		return os.WriteFile(path, got, 0o644)
	}
	want, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("golden file %s does not exist; run the test with -update to create it", path)
	}
	if err != nil {
		return err
	}
	if bytes.Equal(got, want) {
		return nil
	}
	return fmt.Errorf("output differs from golden file %s (run with -update to accept it):\n%s", path, firstDiff(want, got))
}

// firstDiff describes the first line where want and got differ.
func firstDiff(want, got []byte) string {
	wl := strings.Split(string(want), "\n")
	gl := strings.Split(string(got), "\n")
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if i >= len(wl) || i >= len(gl) || w != g {
			return fmt.Sprintf("line %d:\n  want: %q\n  got:  %q\n(want %d lines, got %d)", i+1, w, g, len(wl), len(gl))
		}
	}
	return "(no line differs)"
}
