package agent_test

import (
	"math"
	"testing"

	"github.com/agentgate/agentgate/agent"
)

func TestCostMicroCents(t *testing.T) {
	t.Parallel()
	custom := agent.Prices{
		"cheap":   {InputPerMTok: 0.075, OutputPerMTok: 0.30},
		"m":       {InputPerMTok: 1, OutputPerMTok: 2},
		"m-large": {InputPerMTok: 10, OutputPerMTok: 20},
		"huge":    {InputPerMTok: 1e6, OutputPerMTok: 1e6},
	}
	tests := []struct {
		name    string
		prices  agent.Prices
		model   string
		in, out int64
		want    int64
		known   bool
	}{
		// 0.15 USD/MTok = 15 µ¢/token; 0.60 = 60 µ¢/token.
		{"exact", agent.DefaultPrices(), "gpt-4o-mini", 1000, 500, 1000*15 + 500*60, true},
		{"dated variant", agent.DefaultPrices(), "gpt-4o-mini-2024-07-18", 1000, 500, 45000, true},
		{"longest prefix wins", agent.DefaultPrices(), "gpt-4o-2024-08-06", 1000, 0, 250000, true},
		{"tagged variant", agent.DefaultPrices(), "claude-3-5-haiku-latest", 1_000_000, 0, 80_000_000, true},
		{"case-insensitive", agent.DefaultPrices(), "GPT-4.1-NANO", 10, 10, 10*10 + 10*40, true},
		{"gemini", agent.DefaultPrices(), "gemini-2.5-flash", 2000, 100, 2000*30 + 100*250, true},
		{"groq", agent.DefaultPrices(), "llama-3.1-8b-instant", 100, 100, 100*5 + 100*8, true},
		{"demo is free", agent.DefaultPrices(), "demo", 1e6, 1e6, 0, true},
		{"unknown", agent.DefaultPrices(), "my-finetune", 1000, 1000, 0, false},
		{"prefix needs a separator", agent.DefaultPrices(), "gpt-4ox", 10, 10, 0, false},
		{"nil table", nil, "gpt-4o", 10, 10, 0, false},
		// 7.5 µ¢/token: half a micro-cent rounds up, once, on the sum.
		{"round half up", custom, "cheap", 1, 0, 8, true},
		{"rounded once", custom, "cheap", 3, 0, 23, true},
		{"sum before rounding", custom, "cheap", 1, 1, 38, true},
		{"zero", custom, "cheap", 0, 0, 0, true},
		{"negative counts as zero", custom, "m", -5, 3, 600, true},
		{"longer custom name", custom, "m-large-v2", 1, 1, 3000, true},
		{"shorter custom name", custom, "m-small", 1, 1, 300, true},
		{"overflow clamps", custom, "huge", math.MaxInt64, math.MaxInt64, math.MaxInt64, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, known := tt.prices.CostMicroCents(tt.model, tt.in, tt.out)
			if got != tt.want || known != tt.known {
				t.Errorf("CostMicroCents(%q, %d, %d) = %d, %v; want %d, %v", tt.model, tt.in, tt.out, got, known, tt.want, tt.known)
			}
		})
	}
}

func TestDefaultPricesCover(t *testing.T) {
	t.Parallel()
	prices := agent.DefaultPrices()
	for _, model := range []string{
		"gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o3-mini",
		"claude-3-5-haiku", "claude-sonnet-4", "claude-sonnet-4-20250514",
		"gemini-2.0-flash", "gemini-2.5-flash", "gemini-2.5-pro",
		"llama-3.3-70b-versatile", "llama-3.1-8b-instant", "demo",
	} {
		p, ok := prices.Lookup(model)
		if !ok {
			t.Errorf("%s has no price", model)
			continue
		}
		if model != "demo" && (p.InputPerMTok <= 0 || p.OutputPerMTok < p.InputPerMTok) {
			t.Errorf("%s: implausible price %+v", model, p)
		}
	}
}
