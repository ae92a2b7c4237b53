package tools

import (
	"strconv"
	"strings"
)

// MaxToolNameLen is the longest tool name model providers accept.
const MaxToolNameLen = 64

// ToolName returns the name a tool is exposed under: serverSlug + "__" + tool,
// with every character outside [a-zA-Z0-9_-] replaced by '_' and the result
// cut to MaxToolNameLen bytes. Distinct inputs may collide after this; List
// makes the names of one toolbox unique.
func ToolName(serverSlug, tool string) string {
	raw := serverSlug + "__" + tool
	var b strings.Builder
	b.Grow(min(len(raw), MaxToolNameLen))
	for _, r := range raw {
		if b.Len() >= MaxToolNameLen {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// uniqueNames assigns exposed names to bases (the ToolName of each tool, in
// toolbox order). A base used once keeps its name; among tools sharing a base
// the first keeps it and each later one gets the lowest free suffix _2, _3, …
// (cutting the base so the name stays within MaxToolNameLen). The result
// depends only on the order of bases, so it is deterministic.
func uniqueNames(bases []string) []string {
	taken := make(map[string]bool, len(bases))
	for _, b := range bases {
		taken[b] = true
	}
	first := make(map[string]bool, len(bases))
	out := make([]string, len(bases))
	for i, b := range bases {
		if !first[b] {
			first[b] = true
			out[i] = b
			continue
		}
		for n := 2; ; n++ {
			suffix := "_" + strconv.Itoa(n)
			cand := b
			if len(cand)+len(suffix) > MaxToolNameLen {
				cand = cand[:MaxToolNameLen-len(suffix)]
			}
			cand += suffix
			if !taken[cand] {
				taken[cand] = true
				out[i] = cand
				break
			}
		}
	}
	return out
}
