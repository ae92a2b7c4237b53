package stream

// AppendData exposes appendData to the external tests: its line-splitting guard is unreachable
// through Event, whose JSON never holds a raw line break.
var AppendData = appendData
