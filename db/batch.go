package db

import (
	"strconv"
	"strings"
)

// Multi-row statements: the run log writes its batches as INSERT … VALUES (…),(…) … in chunks,
// one statement (one round trip) per chunk instead of one per row. A chunk's bound parameters
// (rows × columns) must stay below SQLite's limit (32766 in modern SQLite) and PostgreSQL's
// (65535).
const (
	// runChunk rows of runs per statement: 200 × 19 = 3,800 parameters.
	runChunk = 200
	// eventChunk rows of run_events per statement: 500 × 5 = 2,500 parameters.
	eventChunk = 500
)

// valuesList returns "(?, ?), (?, ?) …" for rows rows of cols placeholders each, numbered
// $1, $2 … instead when dollar is set (PostgreSQL). Building it costs microseconds, next to
// the milliseconds of the statement, so it is not cached.
func valuesList(dollar bool, rows, cols int) string {
	var b strings.Builder
	b.Grow(rows * cols * 7)
	n := 0
	for r := range rows {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for c := range cols {
			if c > 0 {
				b.WriteString(", ")
			}
			n++
			if dollar {
				b.WriteByte('$')
				b.WriteString(strconv.Itoa(n))
			} else {
				b.WriteByte('?')
			}
		}
		b.WriteByte(')')
	}
	return b.String()
}
