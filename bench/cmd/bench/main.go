//go:build linux

// Command bench runs agentgate's benchmark scenarios against a built gateway process and an
// upstream stand-in (bench/cmd/upstream), all on 127.0.0.1, and writes the results as
// Markdown and JSON into bench/out/. See bench/README.md for what each number means. It reads
// process figures from /proc, so it builds on Linux only.
//
//	go run ./bench/cmd/bench -quick      # under 3 minutes (make bench)
//	go run ./bench/cmd/bench             # full (make bench/full)
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/lib/pq"
)

// The paced upstream (streaming scenario): 20 words, one per chunk, at 200 tokens/s.
const (
	pacedWords = 20
	pacedTPS   = 200.0
)

type upstream struct {
	p   *proc
	url string // …/v1
	mcp string
}

type bench struct {
	openNs       string
	rates        string // -rates
	gwBin        string // -gateway-bin
	repeat       int    // -repeat
	quick        bool
	tmp          string
	bin          string
	pgURL        string
	profile      bool
	outDir       string
	gwClient     *http.Client
	directClient *http.Client
	fast         upstream
	paced        upstream
	tool         upstream
	slow         upstream
	slowCA       string
	res          results
}

func main() {
	quick := flag.Bool("quick", false, "the quick set (under 3 minutes)")
	out := flag.String("out", "bench/out", "directory for results and profiles")
	dbs := flag.String("db", "sqlite,postgres", "databases to run on (sqlite, postgres)")
	pg := flag.String("postgres", envOr("AGENTGATE_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"),
		"PostgreSQL URL (the bench creates and drops its own schema)")
	only := flag.String("scenarios", "overhead,streaming,open,tools,storage", "scenarios to run")
	profile := flag.Bool("profile", false, "save gateway CPU and heap profiles (pprof) into -out")
	gwEnv := flag.String("gateway-env", "", "space-separated VAR=value pairs added to the gateway's environment, e.g. GOGC=400 (recorded in the results)")
	openNs := flag.String("open", "", "comma-separated N for the open-streams scenario (default 1000,10000; full 1000,5000,10000)")
	rates := flag.String("rates", "", "comma-separated runs/s for the overhead scenario (default 100,500,1000; full 100,250,500,1000,2000)")
	repeat := flag.Int("repeat", 0, "how often the phases the targets judge (overhead at 1,000 runs/s, streaming) run (default 1; full 3): the targets take the median")
	gwBin := flag.String("gateway-bin", "", "an agentgate binary to measure instead of building this tree's (to compare two builds on the same machine)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bench{openNs: *openNs, rates: *rates, gwBin: *gwBin, repeat: *repeat, quick: *quick, pgURL: *pg, profile: *profile, outDir: *out, gwClient: newClient(), directClient: newClient()}
	b.res.GatewayEnv = strings.Fields(*gwEnv)
	for _, kv := range b.res.GatewayEnv {
		if !strings.Contains(kv, "=") {
			log.Fatalf("bench: -gateway-env: want VAR=value, got %q", kv)
		}
	}
	if err := b.run(ctx, strings.Split(*dbs, ","), *only); err != nil {
		log.Fatal("bench: ", err)
	}
}

// parseFloats parses a comma-separated list of positive numbers.
func parseFloats(list string) ([]float64, error) {
	var out []float64
	for _, f := range strings.Split(list, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("want positive numbers, got %q", f)
		}
		out = append(out, v)
	}
	return out, nil
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func (b *bench) run(ctx context.Context, dbs []string, only string) error {
	has := func(s string) bool { return strings.Contains(","+only+",", ","+s+",") }
	limit := raiseFileLimit()
	var err error
	if b.tmp, err = os.MkdirTemp("", "agentgate-bench-"); err != nil {
		return err
	}
	defer os.RemoveAll(b.tmp)
	if err := os.MkdirAll(b.outDir, 0o755); err != nil {
		return err
	}
	env := b.res.GatewayEnv
	b.res = newResults(b.quick, limit)
	b.res.GatewayEnv = env
	log.Printf("building agentgate and the upstream into %s", b.tmp)
	b.bin = filepath.Join(b.tmp, "agentgate")
	upBin := filepath.Join(b.tmp, "upstream")
	builds := [][]string{{"-o", upBin, "./bench/cmd/upstream"}}
	if b.gwBin != "" {
		b.bin = b.gwBin
		b.res.GatewayBin = b.gwBin
	} else {
		builds = append(builds, []string{"-o", b.bin, "."})
	}
	for _, bld := range builds {
		cmd := exec.CommandContext(ctx, "go", append([]string{"build"}, bld...)...)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build: %w", err)
		}
	}
	b.slowCA = filepath.Join(b.tmp, "upstream-ca.pem")
	ups := []struct {
		u    *upstream
		args []string
	}{
		{&b.fast, []string{"-words", "20"}},
		{&b.paced, []string{"-words", strconv.Itoa(pacedWords), "-tps", fmt.Sprint(pacedTPS)}},
		{&b.tool, []string{"-words", "20", "-tool", "-mcp-addr", "127.0.0.1:0"}},
		// Slow streams: a token every 20 s, so the hold phase is heartbeats only. HTTPS (HTTP/2)
		// as real providers: thousands of runs share a few upstream connections.
		{&b.slow, []string{"-words", "100", "-tps", "0.05", "-tls", "-ca-out", b.slowCA}},
	}
	for _, u := range ups {
		if err := startUpstream(upBin, u.args, u.u); err != nil {
			return err
		}
		defer u.u.p.stop()
	}

	phase := func(d time.Duration) time.Duration {
		if b.quick {
			return d
		}
		return 3 * d
	}
	// The phases the targets judge run repeat times: on a shared machine one phase's p99 can
	// rest on a single stall of the host; the targets take the median and show every value.
	repeat := b.repeat
	if repeat <= 0 {
		repeat = 1
		if !b.quick {
			repeat = 3
		}
	}
	for _, db := range dbs {
		db = strings.TrimSpace(db)
		if !has("overhead") && !has("streaming") && !has("tools") && !has("storage") {
			break
		}
		g, err := b.startGateway(ctx, db, 15*time.Second, nil)
		if err != nil {
			return err
		}
		log.Printf("[%s] warm-up", db)
		b.overhead(ctx, g, 200, time.Second)
		if has("overhead") {
			rates := []float64{100, 500, 1000}
			if !b.quick {
				rates = []float64{100, 250, 500, 1000, 2000}
			}
			if b.rates != "" {
				if rates, err = parseFloats(b.rates); err != nil {
					return fmt.Errorf("-rates: %w", err)
				}
			}
			for _, r := range rates {
				rounds := 1
				if r == targetRate {
					rounds = repeat
				}
				for round := 1; round <= rounds; round++ {
					var stopProf func()
					if b.profile && r == targetRate && round == 1 {
						stopProf = g.cpuProfile(ctx, filepath.Join(b.outDir, "cpu-overhead-"+db+".pprof"), phase(3*time.Second))
					}
					g.settle(ctx)
					row := b.overhead(ctx, g, r, phase(3*time.Second))
					if rounds > 1 {
						row.Round = round
					}
					if stopProf != nil {
						stopProf()
						// Allocations since the gateway started (mostly this phase's): where GC work comes from.
						if err := fetch(ctx, g.pprof+"/debug/pprof/allocs", filepath.Join(b.outDir, "allocs-overhead-"+db+".pprof")); err != nil {
							log.Printf("allocs profile: %v", err)
						}
					}
					log.Printf("[%s] overhead %v/s: added p50 %.3f p99 %.3f ms, header p99 %.3f ms, errors %d", db, r, row.Added.P50, row.Added.P99, row.Header.P99, row.Errors)
					b.res.Overhead = append(b.res.Overhead, row)
				}
			}
		}
		if has("streaming") && (db == "sqlite" || !b.quick) {
			for round := 1; round <= repeat; round++ {
				g.settle(ctx)
				row := b.streaming(ctx, g, 100, phase(3*time.Second))
				if repeat > 1 {
					row.Round = round
				}
				log.Printf("[%s] streaming: added TTFT p50 %.3f p99 %.3f ms, gap p99 %.3f ms, errors %d", db, row.AddedTTFT.P50, row.AddedTTFT.P99, row.AddedGap.P99, row.Errors)
				b.res.Streaming = append(b.res.Streaming, row)
			}
		}
		if has("tools") && (db == "sqlite" || !b.quick) {
			g.settle(ctx)
			row, err := b.tools(ctx, g, 50, phase(3*time.Second))
			if err != nil {
				g.stop()
				return fmt.Errorf("tools: %w", err)
			}
			log.Printf("[%s] tools: added p50 %.3f p99 %.3f ms, errors %d %s", db, row.Added.P50, row.Added.P99, row.Errors, row.FirstError)
			b.res.Tools = append(b.res.Tools, row)
		}
		if has("storage") {
			rates := []float64{2000}
			if !b.quick {
				rates = []float64{1000, 2000, 3000}
			}
			for _, r := range rates {
				g.settle(ctx)
				row := b.storage(ctx, g, r, phase(3*time.Second))
				log.Printf("[%s] storage %v/s: %.0f records/s, drain %.0f ms, errors %d", db, r, row.RecordsPerSec, row.DrainMs, row.Errors)
				b.res.Storage = append(b.res.Storage, row)
			}
		}
		g.stop()
	}
	if has("open") {
		ns := []int{1000, 10000}
		if !b.quick {
			ns = []int{1000, 5000, 10000}
		}
		if b.openNs != "" {
			ns = nil
			for _, f := range strings.Split(b.openNs, ",") {
				n, err := strconv.Atoi(strings.TrimSpace(f))
				if err != nil || n < 1 || n > 15000 {
					return fmt.Errorf("-open: want numbers between 1 and 15000, got %q", f)
				}
				ns = append(ns, n)
			}
		}
		for _, n := range ns {
			g, err := b.startGateway(ctx, "sqlite", time.Second, []string{"SSL_CERT_FILE=" + b.slowCA})
			if err != nil {
				return err
			}
			// A few short runs first, so the baseline holds the warmed-up process.
			b.overhead(ctx, g, 100, time.Second)
			row := b.openStreams(ctx, g, n, 2000, phase(5*time.Second))
			log.Printf("open streams %d: opened %d failed %d, %.2f KiB RSS/stream, heartbeat CPU %.3f cores (%.1f µs/beat), closed in %.2f s, left %v",
				n, row.Opened, row.Failed, row.PerStreamKiB, row.HoldCPUCores, row.CPUPerBeatUs, row.CloseSeconds, row.LeftOpen)
			b.res.Open = append(b.res.Open, row)
			g.stop()
		}
	}
	return b.res.write(b.outDir)
}

func startUpstream(bin string, args []string, u *upstream) error {
	pr, pw := io.Pipe()
	p, err := start("upstream", bin, append([]string{"-addr", "127.0.0.1:0"}, args...), nil, pw)
	if err != nil {
		return err
	}
	u.p = p
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case l, ok := <-line:
		f := strings.Fields(l)
		if !ok || len(f) != 4 {
			p.stop()
			return fmt.Errorf("upstream did not start: %q %s", l, p.logs.buf)
		}
		u.url, u.mcp = f[1], f[3]
		return nil
	case <-time.After(20 * time.Second):
		p.stop()
		return errors.New("upstream did not start in 20 s")
	}
}

// gateway is one agentgate process with its endpoints.
type gateway struct {
	b         *bench
	p         *proc
	db        string
	url       string
	pprof     string
	heartbeat time.Duration
	api       *api
	fast      endpoint
	paced     endpoint
	tool      endpoint
	slow      endpoint
	dropPG    func()
}

func (b *bench) startGateway(ctx context.Context, db string, heartbeat time.Duration, env []string) (*gateway, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	paddr, err := freePort()
	if err != nil {
		return nil, err
	}
	data, err := os.MkdirTemp(b.tmp, "data-")
	if err != nil {
		return nil, err
	}
	g := &gateway{b: b, db: db, url: "http://" + addr, pprof: "http://" + paddr, heartbeat: heartbeat}
	env = append(env, "AGENTGATE_LOG_LEVEL=warn")
	env = append(env, b.res.GatewayEnv...)
	switch db {
	case "sqlite":
	case "postgres":
		u, drop, err := pgSchema(ctx, b.pgURL)
		if err != nil {
			return nil, fmt.Errorf("postgres: %w", err)
		}
		g.dropPG = drop
		env = append(env, "DATABASE_URL="+u)
	default:
		return nil, fmt.Errorf("unknown database %q", db)
	}
	args := []string{"serve", "--addr", addr, "--data", data, "--pprof-addr", paddr, "--runs-per-minute", "1000000000",
		"--heartbeat", heartbeat.String(), "--allow-private-egress", "--log-format", "text"}
	if g.p, err = start("agentgate", b.bin, args, env, nil); err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, g.url+"/readyz", g.p); err != nil {
		g.stop()
		return nil, err
	}
	g.api = &api{base: g.url, c: b.gwClient}
	if err := g.api.setup(ctx); err != nil {
		g.stop()
		return nil, err
	}
	ws, err := g.api.toolWorkspace(ctx, b.tool.mcp)
	if err != nil {
		g.stop()
		return nil, err
	}
	for _, e := range []struct {
		ep    *endpoint
		slug  string
		up    string
		extra map[string]any
	}{
		{&g.fast, "fast", b.fast.url, nil},
		{&g.paced, "paced", b.paced.url, nil},
		{&g.tool, "tool", b.tool.url, map[string]any{"workspace_id": ws, "max_tool_calls": 1}},
		{&g.slow, "slow", b.slow.url, nil},
	} {
		if *e.ep, err = g.api.endpoint(ctx, e.slug, e.up, e.extra); err != nil {
			g.stop()
			return nil, err
		}
	}
	return g, nil
}

func (g *gateway) stop() {
	g.p.stop()
	if g.dropPG != nil {
		g.dropPG()
	}
}

// scrape reads the gateway's /metrics into name{labels} → value.
// settle waits (at most 30 s) until the gateway has no run in progress and has written every
// run-log record of the runs it finished, so that a phase does not pay for the backlog of the
// one before (a saturated 2,000 runs/s phase can leave seconds of it).
func (g *gateway) settle(ctx context.Context) {
	deadline := time.Now().Add(30 * time.Second)
	last := -1.0
	for time.Now().Before(deadline) {
		m := g.scrape(ctx)
		written := m[`agentgate_runlog_records_written_total{kind="runs"}`]
		if m["agentgate_live_runs"] == 0 && written == last {
			return
		}
		last = written
		time.Sleep(200 * time.Millisecond)
	}
	log.Printf("gateway not idle after 30 s; the next phase starts anyway")
}

func (g *gateway) scrape(ctx context.Context) map[string]float64 {
	out := map[string]float64{}
	req, _ := http.NewRequestWithContext(ctx, "GET", g.url+"/metrics", nil)
	res, err := g.b.gwClient.Do(req)
	if err != nil {
		return out
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// cpuProfile records a CPU profile of the gateway for d into path; the returned function
// waits for it.
func (g *gateway) cpuProfile(ctx context.Context, path string, d time.Duration) func() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := fetch(ctx, g.pprof+"/debug/pprof/profile?seconds="+strconv.Itoa(int(d.Seconds())), path); err != nil {
			log.Printf("cpu profile: %v", err)
		}
	}()
	return func() { <-done }
}

func fetch(ctx context.Context, url, path string) error {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, res.Body)
	return err
}

// pgSchema creates a fresh schema and returns a URL using it and a function that drops it.
func pgSchema(ctx context.Context, base string) (string, func(), error) {
	var rb [6]byte
	_, _ = rand.Read(rb[:])
	schema := "bench_" + hex.EncodeToString(rb[:])
	db, err := sql.Open("postgres", base)
	if err != nil {
		return "", nil, err
	}
	if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		db.Close()
		return "", nil, err
	}
	u, err := url.Parse(base)
	if err != nil {
		db.Close()
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = db.ExecContext(dctx, "DROP SCHEMA "+schema+" CASCADE")
		db.Close()
	}, nil
}
