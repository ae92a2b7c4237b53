package server

import (
	"strings"
	"unicode/utf8"

	"github.com/agentgate/agentgate/db"
)

// storableText makes caller- or model-supplied text storable in both databases: PostgreSQL
// text refuses NUL and invalid UTF-8, and one refused row fails the run log's whole batch
// (losing the other runs in it). Both become U+FFFD; valid text is returned unchanged.
func storableText(s string) string {
	if strings.IndexByte(s, 0) < 0 && isValidUTF8(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

func isValidUTF8(s string) bool { return utf8.ValidString(s) }

// storableRun applies storableText to a run record's free-text fields (tool_calls is JSON
// produced by encoding/json, which escapes both).
func storableRun(r *db.Run) {
	r.Input = storableText(r.Input)
	r.Output = storableText(r.Output)
	r.ErrorMessage = storableText(r.ErrorMessage)
}
