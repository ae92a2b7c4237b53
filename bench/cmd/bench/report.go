//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// results is everything one bench run measured, with where and when.
type results struct {
	Date    string  `json:"date"`
	Commit  string  `json:"commit"`
	Mode    string  `json:"mode"`
	Machine machine `json:"machine"`
	// GatewayEnv is what -gateway-env added to the gateway's environment (empty: defaults).
	GatewayEnv []string `json:"gateway_env,omitempty"`
	// GatewayBin is the binary given with -gateway-bin (empty: built from this tree).
	GatewayBin string        `json:"gateway_bin,omitempty"`
	Overhead   []overheadRow `json:"overhead"`
	Streaming  []streamRow   `json:"streaming"`
	Open       []openRow     `json:"open_streams"`
	Tools      []toolRow     `json:"tools"`
	Storage    []storageRow  `json:"storage"`
}

type machine struct {
	CPU       string `json:"cpu"`
	Cores     int    `json:"cores"`
	MemoryMiB int64  `json:"memory_mib"`
	Kernel    string `json:"kernel"`
	Go        string `json:"go"`
	FileLimit uint64 `json:"open_files_limit"`
	// LoadAvg is /proc/loadavg at the start: other work on the machine skews every figure.
	LoadAvg string `json:"loadavg_at_start"`
}

func newResults(quick bool, fileLimit uint64) results {
	mode := "full"
	if quick {
		mode = "quick"
	}
	r := results{Date: time.Now().UTC().Format(time.RFC3339), Mode: mode, Commit: commit()}
	r.Machine = machine{Cores: runtime.NumCPU(), Go: runtime.Version(), FileLimit: fileLimit}
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(l, "model name") {
				r.Machine.CPU = strings.TrimSpace(l[strings.IndexByte(l, ':')+1:])
				break
			}
		}
	}
	if raw, err := os.ReadFile("/proc/loadavg"); err == nil {
		r.Machine.LoadAvg = strings.Join(strings.Fields(string(raw))[:3], " ")
	}
	if raw, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		r.Machine.Kernel = strings.TrimSpace(string(raw))
	}
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(raw), "MemTotal: %d kB", &kb); err == nil {
			r.Machine.MemoryMiB = kb / 1024
		}
	}
	return r
}

func commit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		c += "-dirty"
	}
	return c
}

// write saves results-<date>.json/.md and latest.json/.md into dir and prints the Markdown.
func (r results) write(dir string) error {
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	md := r.markdown()
	stamp := strings.NewReplacer(":", "", "-", "").Replace(r.Date)
	for _, f := range []struct{ name, body string }{
		{"results-" + stamp + ".json", string(raw)}, {"results-" + stamp + ".md", md},
		{"latest.json", string(raw)}, {"latest.md", md},
	} {
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.body), 0o644); err != nil {
			return err
		}
	}
	fmt.Println(md)
	log.Printf("results in %s (results-%s.{md,json}, latest.{md,json})", dir, stamp)
	return nil
}

func (r results) markdown() string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	// section writes a table's title, header row and separator (one cell per column).
	section := func(title string, cols ...string) {
		p("## %s\n\n| %s |\n|%s\n", title, strings.Join(cols, " | "), strings.Repeat("---|", len(cols)))
	}
	p("# agentgate benchmark results (%s)\n\n", r.Mode)
	p("- date: %s\n- commit: %s\n- machine: %s, %d cores, %d MiB, Linux %s, %s, open-files limit %d\n",
		r.Date, r.Commit, r.Machine.CPU, r.Machine.Cores, r.Machine.MemoryMiB, r.Machine.Kernel, r.Machine.Go, r.Machine.FileLimit)
	p("- load average when the bench started: %s (the machine is shared: other processes compete for its cores)\n", r.Machine.LoadAvg)
	if r.GatewayBin != "" {
		p("- gateway binary: %s (not built from this tree)\n", r.GatewayBin)
	}
	if len(r.GatewayEnv) > 0 {
		p("- gateway environment changed from the defaults: %s\n", strings.Join(r.GatewayEnv, " "))
	}
	p("- everything on one machine over 127.0.0.1: load generator, gateway, upstream stand-in (and PostgreSQL)\n")
	p("- latencies in ms, measured from each request's intended send time (open-loop, fixed rate)\n\n")

	if len(r.Overhead) > 0 {
		section("1. Overhead: non-streaming runs, run logging on (gateway vs direct to the upstream, same run)",
			"db", "rate/s", "gateway p50 / p90 / p99 / max", "direct p50 / p90 / p99 / max", "**added p50 / p99**", "overhead header p50 / p99", "runs/s", "errors", "CPU cores gateway / upstream / load gen", "**gateway CPU ms per run**", "gateway RSS MiB")
		for _, o := range r.Overhead {
			p("| %s | %.0f%s | %s | %s | **%.3f / %.3f** | %.3f / %.3f | %.0f | %d%s | %.2f / %.2f / %.2f | **%.3f** | %.0f |\n", o.DB, o.Rate, roundNote(o.Round), d4(o.Gateway), d4(o.Direct),
				o.Added.P50, o.Added.P99, o.Header.P50, o.Header.P99, o.Throughput, o.Errors+o.DirectErrors, errNote(o.FirstError),
				o.Gateway_.CPUCores, o.Upstream_.CPUCores, o.BenchCPU, o.CPUMsPerRun, o.Gateway_.RSSMiB)
		}
		p("\n")
	}
	if len(r.Streaming) > 0 {
		section("2. Streaming: time to first token and gap between tokens (gateway vs direct, same run)",
			"db", "streams/s", "upstream", "TTFT gateway p50 / p99", "TTFT direct p50 / p99", "**added TTFT p50 / p99**", "gap gateway p50 / p99", "gap direct p50 / p99", "added gap p50 / p99", "errors", "gateway CPU")
		for _, s := range r.Streaming {
			p("| %s | %.0f%s | %d words at %.0f tok/s | %.3f / %.3f | %.3f / %.3f | **%.3f / %.3f** | %.3f / %.3f | %.3f / %.3f | %.3f / %.3f | %d%s | %.2f |\n",
				s.DB, s.Rate, roundNote(s.Round), s.Words, s.TPS, s.GwTTFT.P50, s.GwTTFT.P99, s.DirectTTFT.P50, s.DirectTTFT.P99,
				s.AddedTTFT.P50, s.AddedTTFT.P99, s.GwGap.P50, s.GwGap.P99, s.DirectGap.P50, s.DirectGap.P99,
				s.AddedGap.P50, s.AddedGap.P99, s.Errors, errNote(s.FirstError), s.Gateway_.CPUCores)
		}
		p("\n")
	}
	if len(r.Open) > 0 {
		section("3. Open streams: N concurrent slow streaming runs (SQLite, upstream over HTTPS/HTTP2)",
			"N", "opened", "failed", "open time s", "RSS baseline → plateau MiB", "**RSS per stream KiB**", "Go heap per stream KiB", "live heap per stream KiB", "goroutine stacks per stream KiB", "goroutines per stream", "heartbeat", "heartbeats in hold", "hold CPU (cores)", "CPU per heartbeat µs", "bytes allocated per heartbeat", "all closed in s")
		for _, o := range r.Open {
			p("| %d | %d | %d%s | %.2f | %.1f → %.1f | **%.2f** | %.2f | %.2f | %.2f | %.2f | %s | %d in %.0f s | %.3f | %.2f | %.0f | %.2f%s |\n", o.N, o.Opened, o.Failed, errNote(o.FirstError),
				o.OpenSeconds, o.BaselineMiB, o.PlateauMiB, o.PerStreamKiB, o.HeapPerStreamKB, o.LivePerStream, o.StackPerStream, o.Goroutines, o.Heartbeat,
				o.Heartbeats, o.HoldSeconds, o.HoldCPUCores, o.CPUPerBeatUs, o.BytesPerBeat, o.CloseSeconds, leftNote(o.LeftOpen))
		}
		p("\n")
	}
	if len(r.Tools) > 0 {
		section("4. Tools: one MCP tool call per run (gateway vs the same three calls made directly)",
			"db", "runs/s", "gateway p50 / p90 / p99 / max", "direct p50 / p90 / p99 / max", "**added p50 / p99**", "errors", "gateway CPU")
		for _, t := range r.Tools {
			p("| %s | %.0f | %s | %s | **%.3f / %.3f** | %d%s | %.2f |\n", t.DB, t.Rate, d4(t.Gateway), d4(t.Direct), t.Added.P50, t.Added.P99,
				t.Errors, errNote(t.FirstError), t.Gateway_.CPUCores)
		}
		p("\n")
	}
	if len(r.Storage) > 0 {
		section("5. Storage: run-log writes under load (non-streaming runs at a fixed rate)",
			"db", "offered runs/s", "runs ok", "errors", "latency p50 / p90 / p99 / max", "**records written/s**", "drain after load ms", "mean batch ms", "gateway CPU")
		for _, s := range r.Storage {
			p("| %s | %.0f | %d | %d%s | %s | **%.0f** | %.0f | %.3f | %.2f |\n", s.DB, s.Rate, s.Runs, s.Errors, errNote(s.FirstError), d4(s.Latency),
				s.RecordsPerSec, s.DrainMs, s.BatchMeanMs, s.Gateway_.CPUCores)
		}
		p("\n")
	}
	p("## Targets\n\n")
	for _, t := range r.targets() {
		p("- %s\n", t)
	}
	return b.String()
}

// targets checks issue 8's targets against these results.
func (r results) targets() []string {
	var out []string
	mark := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	// A repeated phase is judged on the median of its rounds; every round is listed.
	type judged struct {
		p99, header []float64
		errors      int
	}
	var dbs []string
	over, strm := map[string]*judged{}, map[string]*judged{}
	get := func(m map[string]*judged, db string) *judged {
		if m[db] == nil {
			m[db] = &judged{}
			if !slices.Contains(dbs, db) {
				dbs = append(dbs, db)
			}
		}
		return m[db]
	}
	for _, o := range r.Overhead {
		if o.Rate == targetRate {
			j := get(over, o.DB)
			j.p99, j.header, j.errors = append(j.p99, o.Added.P99), append(j.header, o.Header.P99), j.errors+o.Errors
		}
	}
	for _, s := range r.Streaming {
		j := get(strm, s.DB)
		j.p99, j.errors = append(j.p99, s.AddedTTFT.P99), j.errors+s.Errors
	}
	for _, db := range dbs {
		if j := over[db]; j != nil {
			m := median(j.p99)
			out = append(out, fmt.Sprintf("added p99 ≤ 1 ms at 1,000 runs/s with run logging on (%s): %s — measured %.3f ms%s (gateway's own time by header: p99 %s ms)",
				db, mark(m <= 1 && j.errors == 0), m, rounds(j.p99), joinMs(j.header)))
		}
	}
	for _, db := range dbs {
		if j := strm[db]; j != nil {
			m := median(j.p99)
			out = append(out, fmt.Sprintf("streaming TTFT overhead ≤ 1 ms p99 (%s): %s — measured %.3f ms%s", db, mark(m <= 1 && j.errors == 0), m, rounds(j.p99)))
		}
	}
	for _, o := range r.Open {
		if o.N == 10000 {
			out = append(out, fmt.Sprintf("10,000 open streams at ≤ 30 KiB each, zero failed: %s — measured %.2f KiB per stream, %d failed",
				mark(o.PerStreamKiB <= 30 && o.Failed == 0 && o.Opened == o.N), o.PerStreamKiB, o.Failed))
		}
	}
	return out
}

// median of vs (vs not empty).
func median(vs []float64) float64 {
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// rounds names the values a median came from, when there were several.
func rounds(vs []float64) string {
	if len(vs) < 2 {
		return ""
	}
	return fmt.Sprintf(", the median of %d phases: %s ms", len(vs), joinMs(vs))
}

func joinMs(vs []float64) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = fmt.Sprintf("%.3f", v)
	}
	return strings.Join(parts, ", ")
}

// roundNote marks a repeated phase's round in a table's rate column.
func roundNote(round int) string {
	if round == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d)", round)
}

func d4(d dist) string { return fmt.Sprintf("%.3f / %.3f / %.3f / %.3f", d.P50, d.P90, d.P99, d.Max) }

func errNote(first string) string {
	if first == "" {
		return ""
	}
	if len(first) > 80 {
		first = first[:80] + "…"
	}
	return " (" + strings.ReplaceAll(first, "|", "/") + ")"
}

func leftNote(left float64) string {
	if left == 0 {
		return ""
	}
	return fmt.Sprintf(" (%v still open!)", left)
}
