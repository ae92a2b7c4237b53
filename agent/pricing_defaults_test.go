package agent_test

import (
	"testing"

	"github.com/agentgate/agentgate/agent"
)

// TestDefaultPrices_Resolution: the default table prices each provider's common model ids,
// dated and tagged variants as their family, and a costlier sibling (o3-pro, claude-opus-4-5)
// as itself rather than as its shorter prefix.
func TestDefaultPrices_Resolution(t *testing.T) {
	t.Parallel()
	p := agent.DefaultPrices()
	cases := []struct {
		model   string
		in, out float64 // USD per million tokens
	}{
		{"gpt-4o-mini", 0.15, 0.60},
		{"gpt-4o-mini-2024-07-18", 0.15, 0.60},
		{"gpt-4o-2024-08-06", 2.50, 10.00},
		{"gpt-4.1-mini-2025-04-14", 0.40, 1.60},
		{"gpt-4-0613", 30.00, 60.00},
		{"gpt-4-turbo-2024-04-09", 10.00, 30.00},
		{"gpt-5.1", 1.25, 10.00},
		{"o3", 2.00, 8.00},
		{"o3-pro", 20.00, 80.00},
		{"o1-pro-2025-03-19", 150.00, 600.00},
		{"claude-sonnet-4-5-20250929", 3.00, 15.00},
		{"claude-opus-4-1-20250805", 15.00, 75.00},
		{"claude-opus-4-5-20251101", 5.00, 25.00},
		{"claude-haiku-4-5", 1.00, 5.00},
		{"claude-3-5-haiku-latest", 0.80, 4.00},
		{"gemini-2.5-flash", 0.30, 2.50},
		{"gemini-2.5-flash-lite", 0.10, 0.40},
		{"gemini-2.0-flash-001", 0.10, 0.40},
		{"llama-3.3-70b-versatile", 0.59, 0.79},
		{"meta-llama/llama-4-scout-17b-16e-instruct", 0.11, 0.34},
		{"GPT-4O-MINI", 0.15, 0.60},
	}
	for _, tt := range cases {
		got, ok := p.Lookup(tt.model)
		if !ok || got.InputPerMTok != tt.in || got.OutputPerMTok != tt.out {
			t.Errorf("%s: %+v (known %v), want %v / %v", tt.model, got, ok, tt.in, tt.out)
		}
	}
	for _, unknown := range []string{"gpt-4oo", "my-finetune", "o", "claude"} {
		if got, ok := p.Lookup(unknown); ok {
			t.Errorf("%s priced %+v, want unknown", unknown, got)
		}
	}
	// Sanity of the whole table: list prices are positive (demo excepted), output costs at
	// least input, and nothing is absurd (over $1000 per million).
	for name, pr := range p {
		if name == "demo" {
			continue
		}
		if pr.InputPerMTok <= 0 || pr.OutputPerMTok < pr.InputPerMTok || pr.OutputPerMTok > 1000 {
			t.Errorf("%s: implausible price %+v", name, pr)
		}
	}
}

// TestCostMicroCents_Exact: cost is exact integer micro-cents from the table.
func TestCostMicroCents_Exact(t *testing.T) {
	t.Parallel()
	p := agent.DefaultPrices()
	cases := []struct {
		model   string
		in, out int64
		want    int64
		known   bool
	}{
		{"gpt-4o-mini", 1_000_000, 100_000, 21_000_000, true}, // 15¢ + 6¢
		{"gpt-4o-mini", 312, 67, 8_700, true},                 // 4 680 + 4 020
		{"claude-sonnet-4", 1, 1, 1_800, true},                // 300 + 1 500
		{"gemini-1.5-flash", 1, 0, 8, true},                   // 7.5 rounds half up
		{"unknown-model", 1_000_000, 1_000_000, 0, false},
		{"demo", 1_000_000, 1_000_000, 0, true},
	}
	for _, tt := range cases {
		got, known := p.CostMicroCents(tt.model, tt.in, tt.out)
		if got != tt.want || known != tt.known {
			t.Errorf("%s(%d, %d) = %d known=%v, want %d known=%v", tt.model, tt.in, tt.out, got, known, tt.want, tt.known)
		}
	}
}
