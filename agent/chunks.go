package agent

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// This file reads a chat-completions stream without openai-go's reflective decoder: a small
// SSE reader (sseReader) and a single-pass scanner (chunkDecoder) that extracts only what
// Complete uses from each chat.completion.chunk. Both keep the semantics of openai-go's
// ssestream and apijson (which decode the same stream through gjson), so the switch changes
// the cost of a stream, not what a provider's answer means; chunks_test.go checks the
// decoder against json.Unmarshal into openai.ChatCompletionChunk.

// chunk is the part of one chat.completion.chunk that Complete uses.
type chunk struct {
	choices    []choiceDelta
	usage      tokenUsage
	usageValid bool // "usage" was present and an object (include_usage sends null before the last chunk)
}

type tokenUsage struct{ prompt, completion int64 }

// choiceDelta is one element of a chunk's choices.
type choiceDelta struct {
	index        int64
	content      string
	toolCalls    []toolCallDelta
	finishReason string
}

// toolCallDelta is one streamed piece of a tool call (choices[].delta.tool_calls[]).
type toolCallDelta struct {
	index     int64
	id        string
	typ       string
	name      string
	arguments string
}

// Stream reading limits.
const (
	// sseBufferSize is the read buffer of one stream; longer lines are assembled. A chunk's
	// data line is 150–350 bytes; every open stream holds this buffer while it waits (512
	// bytes instead of 1 KiB: 0.5 KiB less per open stream, no measurable cost per run).
	sseBufferSize = 512
	// maxEventSize bounds one line and one event's data (openai-go's scanner allowed
	// 32 MiB lines), so a broken upstream cannot make one stream hold unbounded memory.
	maxEventSize = 32 << 20
)

var (
	// errInvalidChunk: a data event that is not a JSON object (or null).
	errInvalidChunk = errors.New("invalid stream chunk")
	// errEventTooLarge: a line or event beyond maxEventSize.
	errEventTooLarge = errors.New("stream event too large")
	// errHasError is chunkDecoder.decode's report of a top-level "error" member.
	errHasError = errors.New("chunk carries an error")
	// errNeedInput: the reader has used up its buffer before the next event; its owner
	// reads more (fill) and asks again. Nothing read so far is lost.
	errNeedInput = errors.New("stream needs more input")
)

// streamEventError is an error the upstream sent inside the stream: an "error" event or a
// data object with a top-level "error" member.
type streamEventError struct {
	data []byte // the event's data, owned
}

func (e *streamEventError) Error() string { return "upstream stream error event" }

// chunkStream yields the chunks of one chat-completions SSE body.
type chunkStream struct {
	sse sseReader
	dec chunkDecoder
}

// next decodes the next chunk into c (its slices are reused). It returns io.EOF at
// "data: [DONE]" or a clean end of the body, *streamEventError for an upstream error
// event, errInvalidChunk for data that is not a chunk, errNeedInput when the SSE reader
// must be filled first, and read errors as they are.
func (s *chunkStream) next(c *chunk) error {
	for {
		typ, data, err := s.sse.next()
		if err != nil {
			return err
		}
		// The order of openai-go's ssestream: [DONE] whatever the event type, then the
		// error member, then decoding.
		if bytes.HasPrefix(data, []byte("[DONE]")) {
			return io.EOF
		}
		if string(typ) == "error" {
			return &streamEventError{data: bytes.Clone(data)}
		}
		switch err := s.dec.decode(data, c); err {
		case nil:
		case errHasError:
			return &streamEventError{data: bytes.Clone(data)}
		default:
			return err
		}
		if bytes.HasPrefix(typ, []byte("thread.")) {
			// openai-go wraps these (Assistants) events into an object that carries no
			// chunk fields: they are checked, then ignored.
			continue
		}
		return nil
	}
}

// sseReader reads text/event-stream events (the WHATWG rules that matter here): lines end
// in LF, CRLF or CR; "field:value" with one optional space after the colon; ":" starts a
// comment; data lines are joined by "\n"; a blank line dispatches the event if it had data;
// an event not terminated by a blank line at the end of the body is dropped. Like
// openai-go's decoder it ignores id and retry.
//
// next never reads: when it needs input it returns errNeedInput, keeping the event and line
// it is in the middle of, and its owner calls fill (which reads rd once) and then next
// again. So a run waits for the upstream in a shallow frame (agent.RunTo), not at the bottom
// of the decoder.
type sseReader struct {
	rd      io.Reader
	buf     []byte // read buffer; buf[r:w] is unread
	r, w    int
	err     error  // sticky read error, returned once buf is drained
	line    []byte // a line longer than buf, assembled
	data    []byte // the current event's data: in buf (inBuf) or own
	own     []byte // data that could not stay in buf
	typ     []byte // the current event's type
	cr      bool   // the last line ended in CR: an LF right after it is part of that line end
	hasData bool   // the current event has data (a blank line dispatches it)
	inBuf   bool   // data is a slice of buf (copied to own before buf changes)
	evOut   bool   // typ and data were returned: the next call starts a new event
	lineOut bool   // line was returned: the next call starts a new line
	limit   int    // maxEventSize (tests lower it)
}

func (s *sseReader) init(rd io.Reader) {
	s.rd = rd
	s.buf = make([]byte, sseBufferSize)
	s.limit = maxEventSize
}

// next returns the next event's type and data, valid until the next call. At the end of
// the body it returns io.EOF (or the read error).
func (s *sseReader) next() (typ, data []byte, err error) {
	if s.evOut {
		s.typ, s.data, s.inBuf, s.hasData, s.evOut = s.typ[:0], nil, false, false, false
	}
	for {
		line, err := s.readLine()
		if err != nil {
			return nil, nil, err
		}
		if len(line) == 0 {
			if s.hasData {
				s.evOut = true
				return s.typ, s.data, nil
			}
			s.typ = s.typ[:0]
			continue
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
		switch string(name) {
		case "": // a comment
		case "event":
			s.typ = append(s.typ[:0], value...)
		case "data":
			switch {
			case s.hasData:
				if len(s.data)+1+len(value) > s.limit {
					return nil, nil, errEventTooLarge
				}
				s.keepData()
				s.own = append(append(s.own, '\n'), value...)
				s.data = s.own
			case len(value) > s.limit:
				return nil, nil, errEventTooLarge
			case s.lineOut: // an assembled line: it is reused for the next one
				s.own = append(s.own[:0], value...)
				s.data = s.own
			default:
				// The usual event, one data line that arrived whole: it is not copied, and
				// a stream that waits holds no copy of its last chunk.
				s.data, s.inBuf = value, true
			}
			s.hasData = true
		}
	}
}

// readLine returns the next line without its end, valid until the next call. A partial
// line at the end of the body is dropped (it could not complete an event).
func (s *sseReader) readLine() ([]byte, error) {
	if s.lineOut {
		s.line, s.lineOut = s.line[:0], false
	}
	for {
		if s.r < s.w {
			if s.cr {
				s.cr = false
				if s.buf[s.r] == '\n' {
					s.r++
					continue
				}
			}
			b := s.buf[s.r:s.w]
			if i := lineEnd(b); i >= 0 {
				s.r += i + 1
				s.cr = b[i] == '\r'
				if len(s.line) == 0 {
					return b[:i], nil
				}
				if len(s.line)+i > s.limit {
					return nil, errEventTooLarge
				}
				s.line = append(s.line, b[:i]...)
				s.lineOut = true
				return s.line, nil
			}
			if s.r > 0 {
				// Make room: move the partial line to the front.
				s.keepData()
				s.w = copy(s.buf, b)
				s.r = 0
			} else if s.w == len(s.buf) {
				// The line is longer than the buffer: assemble it in s.line.
				if len(s.line)+len(b) > s.limit {
					return nil, errEventTooLarge
				}
				s.line = append(s.line, b...)
				s.r, s.w = 0, 0
			}
		}
		if s.err != nil {
			return nil, s.err
		}
		return nil, errNeedInput
	}
}

// keepData copies the current event's data out of buf, which is about to change.
func (s *sseReader) keepData() {
	if s.inBuf {
		s.own = append(s.own[:0], s.data...)
		s.data, s.inBuf = s.own, false
	}
}

// lineEnd returns the index of the first LF or CR in b, or -1.
func lineEnd(b []byte) int {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return bytes.IndexByte(b, '\r')
	}
	if j := bytes.IndexByte(b[:i], '\r'); j >= 0 {
		return j
	}
	return i
}

// fill reads once into the free end of buf (s.w < len(s.buf)); call it when next returned
// errNeedInput.
func (s *sseReader) fill() {
	s.keepData()
	if s.r == s.w {
		s.r, s.w = 0, 0
	}
	for range 100 {
		n, err := s.rd.Read(s.buf[s.w:])
		s.w += n
		if err != nil {
			s.err = err
			return
		}
		if n > 0 {
			return
		}
	}
	s.err = io.ErrNoProgress
}

// chunkDecoder extracts a chunk from one event's JSON in a single pass. It accepts exactly
// the documents encoding/json accepts (RFC 8259; invalid UTF-8 passes) whose root is an
// object or null, and reads fields the way openai-go's apijson does (gjson underneath):
// keys match exactly and the first of duplicate keys wins; a string field takes a number
// or boolean as its text and an object or array as its raw JSON; an integer field takes a
// number (truncated), a numeric string or a boolean; an object field that is not an
// object is left empty ("usage" is then not valid); an array with an element that is
// neither an object nor null is dropped whole; escapes decode as gjson decodes them.
type chunkDecoder struct {
	data    []byte
	pos     int
	scratch []byte // unescaped strings
	keyBuf  []byte // an unescaped key
	stack   []byte // open containers while skipping a value
}

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

// decode decodes data into c, reusing c's slices. It returns errInvalidChunk for data
// encoding/json would reject or whose root is not an object or null, and errHasError as
// soon as the root object has an "error" member (as gjson finds it, before the rest is
// checked).
func (d *chunkDecoder) decode(data []byte, c *chunk) error {
	d.data, d.pos = data, 0
	*c = chunk{choices: c.choices[:0]}
	d.ws()
	if d.pos >= len(d.data) {
		return errInvalidChunk
	}
	switch d.data[d.pos] {
	case '{':
		if err := d.chunkObject(c); err != nil {
			return err
		}
	case 'n':
		if !d.literal("null") {
			return errInvalidChunk
		}
	default:
		return errInvalidChunk
	}
	d.ws()
	if d.pos != len(d.data) {
		return errInvalidChunk
	}
	return nil
}

// The keys read from each object; their index is what chunkDecoder.object passes on.
var (
	chunkKeys    = []string{"choices", "usage", "error"}
	usageKeys    = []string{"prompt_tokens", "completion_tokens"}
	choiceKeys   = []string{"index", "delta", "finish_reason"}
	deltaKeys    = []string{"content", "tool_calls"}
	toolCallKeys = []string{"index", "id", "type", "function"}
	functionKeys = []string{"name", "arguments"}
)

func (d *chunkDecoder) chunkObject(c *chunk) error {
	const depth = 1 // the root object's
	hasError := false
	ok := d.object(depth, chunkKeys, func(key int) bool {
		switch key {
		case 0:
			return d.objects(depth+1, func(null bool) bool {
				ch := c.addChoice()
				return null || d.choice(ch, depth+2)
			}, func() { c.choices = c.choices[:0] })
		case 1:
			if !d.at('{') {
				return d.skip(depth)
			}
			c.usageValid = true
			return d.object(depth+1, usageKeys, func(key int) (ok bool) {
				if key == 0 {
					c.usage.prompt, ok = d.int(depth + 1)
				} else {
					c.usage.completion, ok = d.int(depth + 1)
				}
				return ok
			})
		}
		hasError = true
		return false // stop here, as gjson's lookup does
	})
	switch {
	case hasError:
		return errHasError
	case !ok:
		return errInvalidChunk
	}
	return nil
}

// choice decodes the choice object at d.pos; depth is the object's.
func (d *chunkDecoder) choice(ch *choiceDelta, depth int) bool {
	return d.object(depth, choiceKeys, func(key int) (ok bool) {
		switch key {
		case 0:
			ch.index, ok = d.int(depth)
			return ok
		case 1:
			if !d.at('{') {
				return d.skip(depth)
			}
			return d.object(depth+1, deltaKeys, func(key int) (ok bool) {
				if key == 0 {
					ch.content, ok = d.string(depth+1, false)
					return ok
				}
				return d.objects(depth+2, func(null bool) bool {
					ch.toolCalls = append(ch.toolCalls, toolCallDelta{})
					return null || d.toolCall(&ch.toolCalls[len(ch.toolCalls)-1], depth+3)
				}, func() { ch.toolCalls = ch.toolCalls[:0] })
			})
		}
		ch.finishReason, ok = d.string(depth, true)
		return ok
	})
}

// toolCall decodes the tool-call object at d.pos; depth is the object's.
func (d *chunkDecoder) toolCall(tc *toolCallDelta, depth int) bool {
	return d.object(depth, toolCallKeys, func(key int) (ok bool) {
		switch key {
		case 0:
			tc.index, ok = d.int(depth)
		case 1:
			tc.id, ok = d.string(depth, false)
		case 2:
			tc.typ, ok = d.string(depth, true)
		case 3:
			if !d.at('{') {
				return d.skip(depth)
			}
			ok = d.object(depth+1, functionKeys, func(key int) (ok bool) {
				if key == 0 {
					tc.name, ok = d.string(depth+1, false)
				} else {
					tc.arguments, ok = d.string(depth+1, false)
				}
				return ok
			})
		}
		return ok
	})
}

// addChoice appends a zero choice, reusing the tool-call slice of an earlier chunk's.
func (c *chunk) addChoice() *choiceDelta {
	if len(c.choices) < cap(c.choices) {
		c.choices = c.choices[:len(c.choices)+1]
		ch := &c.choices[len(c.choices)-1]
		*ch = choiceDelta{toolCalls: ch.toolCalls[:0]}
		return ch
	}
	c.choices = append(c.choices, choiceDelta{})
	return &c.choices[len(c.choices)-1]
}

// at reports whether the next value starts with c.
func (d *chunkDecoder) at(c byte) bool {
	d.ws()
	return d.pos < len(d.data) && d.data[d.pos] == c
}

// object walks the object at d.pos (a '{'; depth is its nesting depth). For the first
// member with each of keys it calls value with the key's index, d.pos at the value; other
// members are checked and skipped. It stops when value returns false.
func (d *chunkDecoder) object(depth int, keys []string, value func(key int) bool) bool {
	var seen uint8 // keys seen: the first of duplicates wins, as in gjson
	d.pos++
	for first := true; ; first = false {
		key, more, ok := d.member(first)
		if !ok || !more {
			return ok
		}
		i := 0
		for i < len(keys) && keys[i] != string(key) {
			i++
		}
		if i < len(keys) && seen&(1<<i) == 0 {
			seen |= 1 << i
			d.ws()
			ok = value(i)
		} else {
			ok = d.skip(depth)
		}
		if !ok {
			return false
		}
	}
}

// objects walks a value that should be an array of objects (depth is the array's). It calls
// elem for each element that is an object (d.pos at it, null=false) or null (null=true,
// already consumed). If the value is not an array, or an element is neither, it calls drop
// once done: apijson leaves such an array empty.
func (d *chunkDecoder) objects(depth int, elem func(null bool) bool, drop func()) bool {
	if !d.at('[') {
		drop()
		return d.skip(depth - 1)
	}
	d.pos++
	whole := true
	for first := true; ; first = false {
		more, ok := d.element(first)
		if !ok {
			return false
		}
		if !more {
			break
		}
		switch d.data[d.pos] {
		case '{':
			ok = elem(false)
		case 'n':
			ok = d.literal("null") && elem(true)
		default:
			whole = false
			ok = d.skip(depth)
		}
		if !ok {
			return false
		}
	}
	if !whole {
		drop()
	}
	return true
}

// member steps to the next member of an object whose '{' (first) or previous value was
// just consumed. It returns the member's key (valid until the next key) with the ':'
// consumed, or more=false after consuming the '}'.
func (d *chunkDecoder) member(first bool) (key []byte, more, ok bool) {
	d.ws()
	if d.pos >= len(d.data) {
		return nil, false, false
	}
	switch c := d.data[d.pos]; {
	case c == '}':
		d.pos++
		return nil, false, true
	case !first && c == ',':
		d.pos++
		d.ws()
	case !first:
		return nil, false, false
	}
	key, ok = d.key()
	return key, ok, ok
}

// key reads an object key and the ':' after it.
func (d *chunkDecoder) key() ([]byte, bool) {
	if d.pos >= len(d.data) || d.data[d.pos] != '"' {
		return nil, false
	}
	start, end, esc, ok := d.str()
	if !ok {
		return nil, false
	}
	key := d.data[start:end]
	if esc {
		d.keyBuf = appendUnescaped(d.keyBuf[:0], key)
		key = d.keyBuf
	}
	d.ws()
	if d.pos >= len(d.data) || d.data[d.pos] != ':' {
		return nil, false
	}
	d.pos++
	return key, true
}

// element steps to the next element of an array whose '[' (first) or previous value was
// just consumed, leaving d.pos at the element; more=false after consuming the ']'.
func (d *chunkDecoder) element(first bool) (more, ok bool) {
	d.ws()
	if d.pos >= len(d.data) {
		return false, false
	}
	if d.data[d.pos] == ']' {
		d.pos++
		return false, true
	}
	if !first {
		if d.data[d.pos] != ',' {
			return false, false
		}
		d.pos++
		d.ws()
		if d.pos >= len(d.data) {
			return false, false
		}
	}
	return true, true
}

// string reads a string field as gjson's Result.String does: a string unescaped, a number
// as its literal (or normalised if not an integer), a boolean as its name, null as "", an
// object or array as its raw JSON. common interns the values Complete sees on every call.
func (d *chunkDecoder) string(depth int, common bool) (string, bool) {
	d.ws()
	if d.pos >= len(d.data) {
		return "", false
	}
	switch c := d.data[d.pos]; c {
	case '"':
		start, end, esc, ok := d.str()
		if !ok {
			return "", false
		}
		b := d.data[start:end]
		if esc {
			d.scratch = appendUnescaped(d.scratch[:0], b)
			b = d.scratch
		}
		if common {
			return intern(b), true
		}
		return string(b), true
	case 'n':
		return "", d.literal("null")
	case 't':
		return "true", d.literal("true")
	case 'f':
		return "false", d.literal("false")
	case '{', '[':
		start := d.pos
		if !d.skip(depth) {
			return "", false
		}
		return string(d.data[start:d.pos]), true
	default:
		start := d.pos
		if !d.number() {
			return "", false
		}
		raw := string(d.data[start:d.pos])
		num, _ := strconv.ParseFloat(raw, 64)
		return gjson.Result{Type: gjson.Number, Raw: raw, Num: num}.String(), true
	}
}

// intern returns the common finish reasons and tool types without allocating.
func intern(b []byte) string {
	switch string(b) {
	case "":
		return ""
	case "stop":
		return "stop"
	case "length":
		return "length"
	case "tool_calls":
		return "tool_calls"
	case "content_filter":
		return "content_filter"
	case "function_call":
		return "function_call"
	case "function":
		return "function"
	}
	return string(b)
}

// int reads an integer field as gjson's Result.Int does.
func (d *chunkDecoder) int(depth int) (int64, bool) {
	d.ws()
	if d.pos >= len(d.data) {
		return 0, false
	}
	switch c := d.data[d.pos]; c {
	case '"':
		start, end, esc, ok := d.str()
		if !ok {
			return 0, false
		}
		b := d.data[start:end]
		if esc {
			d.scratch = appendUnescaped(d.scratch[:0], b)
			b = d.scratch
		}
		return gjson.Result{Type: gjson.String, Str: string(b)}.Int(), true
	case 'n':
		return 0, d.literal("null")
	case 't':
		return 1, d.literal("true")
	case 'f':
		return 0, d.literal("false")
	case '{', '[':
		return 0, d.skip(depth)
	default:
		start := d.pos
		if !d.number() {
			return 0, false
		}
		raw := d.data[start:d.pos]
		if n, ok := smallInt(raw); ok {
			return n, true
		}
		num, _ := strconv.ParseFloat(string(raw), 64)
		return gjson.Result{Type: gjson.Number, Raw: string(raw), Num: num}.Int(), true
	}
}

// smallInt parses an integer literal of at most 15 digits (exact as a float64, so gjson
// gives the same value).
func smallInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

func (d *chunkDecoder) ws() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *chunkDecoder) literal(lit string) bool {
	if len(d.data)-d.pos < len(lit) || string(d.data[d.pos:d.pos+len(lit)]) != lit {
		return false
	}
	d.pos += len(lit)
	return true
}

// str validates the string at d.pos (a '"') and steps over it; data[start:end] is its raw
// content and esc tells whether it holds escapes.
func (d *chunkDecoder) str() (start, end int, esc, ok bool) {
	data := d.data
	i := d.pos + 1
	start = i
	for i < len(data) {
		c := data[i]
		if !strSpecial[c] {
			i++
			continue
		}
		switch {
		case c == '"':
			d.pos = i + 1
			return start, i, esc, true
		case c == '\\':
			esc = true
			if i+1 >= len(data) {
				return 0, 0, false, false
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(data) || !isHex(data[i+2]) || !isHex(data[i+3]) || !isHex(data[i+4]) || !isHex(data[i+5]) {
					return 0, 0, false, false
				}
				i += 6
			default:
				return 0, 0, false, false
			}
		default: // a control character
			return 0, 0, false, false
		}
	}
	return 0, 0, false, false
}

// strSpecial marks the bytes that end the fast path of str.
var strSpecial = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// number validates the number at d.pos and steps over it.
func (d *chunkDecoder) number() bool {
	data, i := d.data, d.pos
	if i < len(data) && data[i] == '-' {
		i++
	}
	switch {
	case i >= len(data):
		return false
	case data[i] == '0':
		i++
	case '1' <= data[i] && data[i] <= '9':
		for i++; i < len(data) && '0' <= data[i] && data[i] <= '9'; i++ {
		}
	default:
		return false
	}
	if i < len(data) && data[i] == '.' {
		i++
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			return false
		}
		for i++; i < len(data) && '0' <= data[i] && data[i] <= '9'; i++ {
		}
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			return false
		}
		for i++; i < len(data) && '0' <= data[i] && data[i] <= '9'; i++ {
		}
	}
	d.pos = i
	return true
}

// skip validates and steps over one value; depth is the nesting depth of the container
// that holds it.
func (d *chunkDecoder) skip(depth int) bool {
	d.ws()
	if d.pos >= len(d.data) {
		return false
	}
	if c := d.data[d.pos]; c == '{' || c == '[' {
		return d.skipContainer(depth)
	}
	return d.scalar()
}

// scalar validates and steps over the string, literal or number at d.pos.
func (d *chunkDecoder) scalar() bool {
	switch d.data[d.pos] {
	case '"':
		_, _, _, ok := d.str()
		return ok
	case 't':
		return d.literal("true")
	case 'f':
		return d.literal("false")
	case 'n':
		return d.literal("null")
	}
	return d.number()
}

// skipContainer is skip for an object or array; it does not recurse.
func (d *chunkDecoder) skipContainer(depth int) bool {
	stack := d.stack[:0]
	defer func() { d.stack = stack[:0] }()
	for {
		// A value.
		d.ws()
		if d.pos >= len(d.data) {
			return false
		}
		if c := d.data[d.pos]; c == '{' || c == '[' {
			if depth+len(stack)+1 > maxDepth {
				return false
			}
			d.pos++
			d.ws()
			if d.pos < len(d.data) && d.data[d.pos] == c+2 { // '}' or ']'
				d.pos++ // an empty container is a whole value
			} else {
				stack = append(stack, c)
				if c == '{' {
					if _, ok := d.key(); !ok {
						return false
					}
				}
				continue
			}
		} else if !d.scalar() {
			return false
		}
		// After a value: close containers until one continues.
	after:
		for {
			if len(stack) == 0 {
				return true
			}
			d.ws()
			if d.pos >= len(d.data) {
				return false
			}
			c, top := d.data[d.pos], stack[len(stack)-1]
			switch {
			case c == ',':
				d.pos++
				if top == '{' {
					d.ws()
					if _, ok := d.key(); !ok {
						return false
					}
				}
				break after
			case c == top+2: // '}' or ']'
				d.pos++
				stack = stack[:len(stack)-1]
			default:
				return false
			}
		}
	}
}

// appendUnescaped appends the JSON string content s (valid, escapes included) unescaped as
// gjson does: a surrogate escape followed by any \u escape decodes the pair (invalid pairs
// become U+FFFD, both consumed); a lone surrogate becomes U+FFFD; other bytes pass as they
// are.
func appendUnescaped(dst, s []byte) []byte {
	for {
		i := bytes.IndexByte(s, '\\')
		if i < 0 {
			return append(dst, s...)
		}
		dst = append(dst, s[:i]...)
		c := s[i+1]
		s = s[i+2:]
		switch c {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(s)
			s = s[4:]
			if utf16.IsSurrogate(r) && len(s) >= 6 && s[0] == '\\' && s[1] == 'u' {
				r = utf16.DecodeRune(r, hex4(s[2:]))
				s = s[6:]
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, c)
		}
	}
}

func hex4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c <= 'F':
			c -= 'A' - 10
		default:
			c -= 'a' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}
