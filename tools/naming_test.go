package tools

import (
	"slices"
	"strings"
	"testing"
)

func TestToolName(t *testing.T) {
	t.Parallel()
	tests := []struct{ slug, tool, want string }{
		{"github", "search_issues", "github__search_issues"},
		{"my-srv", "get.item/v2", "my-srv__get_item_v2"},
		{"s", "héllo wörld", "s__h_llo_w_rld"},
		{"s", strings.Repeat("a", 100), "s__" + strings.Repeat("a", 61)},
		{"", "", "__"},
	}
	for _, tc := range tests {
		got := ToolName(tc.slug, tc.tool)
		if got != tc.want {
			t.Errorf("ToolName(%q, %q) = %q, want %q", tc.slug, tc.tool, got, tc.want)
		}
		if len(got) > MaxToolNameLen {
			t.Errorf("ToolName(%q, %q) has %d chars", tc.slug, tc.tool, len(got))
		}
	}
}

func TestUniqueNames(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("n", MaxToolNameLen)
	tests := []struct {
		name        string
		bases, want []string
	}{
		{"distinct", []string{"a", "b"}, []string{"a", "b"}},
		{"duplicates", []string{"a", "a", "a"}, []string{"a", "a_2", "a_3"}},
		{"suffix taken by a real name", []string{"a", "a", "a_2"}, []string{"a", "a_3", "a_2"}},
		{"long", []string{long, long}, []string{long, long[:62] + "_2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := uniqueNames(tc.bases)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("uniqueNames(%q) = %q, want %q", tc.bases, got, tc.want)
			}
			seen := map[string]bool{}
			for _, n := range got {
				if seen[n] || len(n) > MaxToolNameLen {
					t.Fatalf("bad name %q in %q", n, got)
				}
				seen[n] = true
			}
		})
	}
}
