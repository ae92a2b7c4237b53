package agent

import (
	"math"
	"math/bits"
	"strings"
)

// Price is a model's token price in USD per million tokens.
type Price struct {
	InputPerMTok  float64 `json:"input_per_mtok"`
	OutputPerMTok float64 `json:"output_per_mtok"`
}

// Prices maps model names to prices. A name also prices its dated and suffixed variants
// (gpt-4o-mini prices gpt-4o-mini-2024-07-18) unless a longer known name matches.
type Prices map[string]Price

// DefaultPrices returns list prices (USD per million tokens, standard tier, short prompts)
// of common models of the built-in providers. Operators override them in config; demo is
// free.
func DefaultPrices() Prices {
	return Prices{
		// OpenAI
		"gpt-4o":        {2.50, 10.00},
		"gpt-4o-mini":   {0.15, 0.60},
		"gpt-4.1":       {2.00, 8.00},
		"gpt-4.1-mini":  {0.40, 1.60},
		"gpt-4.1-nano":  {0.10, 0.40},
		"gpt-4":         {30.00, 60.00},
		"gpt-4-turbo":   {10.00, 30.00},
		"gpt-3.5-turbo": {0.50, 1.50},
		"gpt-5":         {1.25, 10.00},
		"gpt-5-mini":    {0.25, 2.00},
		"gpt-5-nano":    {0.05, 0.40},
		"gpt-5.1":       {1.25, 10.00},
		"o1":            {15.00, 60.00},
		"o1-mini":       {1.10, 4.40},
		"o1-pro":        {150.00, 600.00},
		"o3":            {2.00, 8.00},
		"o3-mini":       {1.10, 4.40},
		"o3-pro":        {20.00, 80.00},
		"o4-mini":       {1.10, 4.40},
		// Anthropic
		"claude-3-haiku":    {0.25, 1.25},
		"claude-3-5-haiku":  {0.80, 4.00},
		"claude-3-5-sonnet": {3.00, 15.00},
		"claude-3-7-sonnet": {3.00, 15.00},
		"claude-sonnet-4":   {3.00, 15.00},
		"claude-opus-4":     {15.00, 75.00},
		"claude-opus-4-5":   {5.00, 25.00},
		"claude-haiku-4-5":  {1.00, 5.00},
		// Gemini
		"gemini-1.5-flash":      {0.075, 0.30},
		"gemini-1.5-pro":        {1.25, 5.00},
		"gemini-2.0-flash":      {0.10, 0.40},
		"gemini-2.0-flash-lite": {0.075, 0.30},
		"gemini-2.5-flash":      {0.30, 2.50},
		"gemini-2.5-flash-lite": {0.10, 0.40},
		"gemini-2.5-pro":        {1.25, 10.00},
		// Groq
		"llama-3.3-70b-versatile":                       {0.59, 0.79},
		"llama-3.1-8b-instant":                          {0.05, 0.08},
		"meta-llama/llama-4-scout-17b-16e-instruct":     {0.11, 0.34},
		"meta-llama/llama-4-maverick-17b-128e-instruct": {0.20, 0.60},
		"qwen/qwen3-32b":                                {0.29, 0.59},
		// Built-in
		"demo": {0, 0},
	}
}

// Lookup returns the price of model: an exact match, else the longest known name that is a
// prefix of model followed by '-', ':' or '@' (a dated or tagged variant). Case-insensitive.
func (p Prices) Lookup(model string) (Price, bool) {
	if pr, ok := p[model]; ok {
		return pr, true
	}
	lower := strings.ToLower(model)
	best, found := "", false
	var price Price
	for name, pr := range p {
		n := strings.ToLower(name)
		if lower == n {
			return pr, true
		}
		if len(n) <= len(best) || len(n) >= len(lower) || !strings.HasPrefix(lower, n) {
			continue
		}
		if c := lower[len(n)]; c != '-' && c != ':' && c != '@' {
			continue
		}
		best, price, found = n, pr, true
	}
	return price, found
}

// microCentsPerUSD: 1 USD = 100 cents = 1e8 micro-cents.
const microCentsPerUSD = 1e8

// CostMicroCents returns the cost of in input and out output tokens of model in
// micro-cents (1 cent = 1e6 micro-cents). Prices are turned into integer micro-cents per
// million tokens first, so the rest is exact integer math rounded half up once at the
// end. Unknown models cost 0 and report known=false; negative counts count as 0.
func (p Prices) CostMicroCents(model string, in, out int64) (microCents int64, known bool) {
	pr, ok := p.Lookup(model)
	if !ok {
		return 0, false
	}
	// numerator = in×priceIn + out×priceOut, in micro-cents per million tokens (128 bits).
	hi1, lo1 := bits.Mul64(nonNegative(in), perMTok(pr.InputPerMTok))
	hi2, lo2 := bits.Mul64(nonNegative(out), perMTok(pr.OutputPerMTok))
	lo, carry := bits.Add64(lo1, lo2, 0)
	hi, _ := bits.Add64(hi1, hi2, carry)
	lo, carry = bits.Add64(lo, 500_000, 0) // round half up
	hi += carry
	const million = 1_000_000
	if hi >= million { // the quotient would not fit in 64 bits
		return math.MaxInt64, true
	}
	q, _ := bits.Div64(hi, lo, million)
	if q > math.MaxInt64 {
		return math.MaxInt64, true
	}
	return int64(q), true
}

// perMTok converts USD per million tokens to integer micro-cents per million tokens.
func perMTok(usd float64) uint64 {
	if !(usd > 0) || math.IsInf(usd, 0) {
		return 0
	}
	v := math.Round(usd * microCentsPerUSD)
	if v >= math.MaxUint64/2 {
		return math.MaxUint64 / 2
	}
	return uint64(v)
}

func nonNegative(n int64) uint64 {
	if n < 0 {
		return 0
	}
	return uint64(n)
}
