//go:build linux

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mcpclient "github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
)

// targetRate is the overhead scenario's rate that issue 8's target is about.
const targetRate = 1000

// overheadRow is scenario 1 at one rate.
type overheadRow struct {
	DB           string  `json:"db"`
	Rate         float64 `json:"rate_per_s"`
	Round        int     `json:"round,omitempty"` // which of the repeated phases (0: not repeated)
	Seconds      float64 `json:"seconds"`
	Gateway      dist    `json:"gateway"`
	Direct       dist    `json:"direct"`
	Added        dist    `json:"added"`
	Header       dist    `json:"overhead_header"`
	Errors       int     `json:"errors"`
	DirectErrors int     `json:"direct_errors"`
	FirstError   string  `json:"first_error,omitempty"`
	Throughput   float64 `json:"gateway_runs_per_s"`
	Gateway_     usage   `json:"gateway_process"`
	// CPUMsPerRun is the gateway's CPU time per run (all its work / gateway runs): the figure
	// least skewed by other load on the machine.
	CPUMsPerRun float64 `json:"gateway_cpu_ms_per_run"`
	Upstream_   usage   `json:"upstream_process"`
	BenchCPU    float64 `json:"load_generator_cpu_cores"`
}

// interleaved runs gw and direct requests alternately at 2×rate for dur (rate each).
func interleaved(ctx context.Context, rate float64, dur time.Duration, gw, direct func(ctx context.Context, due time.Time) sample) []sample {
	return openLoop(ctx, 2*rate, dur, 20000, func(ctx context.Context, i int, due time.Time) sample {
		if i%2 == 0 {
			return gw(ctx, due)
		}
		return direct(ctx, due)
	})
}

func (b *bench) overhead(ctx context.Context, g *gateway, rate float64, dur time.Duration) overheadRow {
	m, um, bm := startMeter(g.p.pid()), startMeter(b.fast.p.pid()), startMeter(os.Getpid())
	t0 := time.Now()
	ss := interleaved(ctx, rate, dur,
		func(ctx context.Context, due time.Time) sample {
			return gatewayRun(ctx, b.gwClient, g.url, g.fast, due)
		},
		func(ctx context.Context, due time.Time) sample {
			return directRun(ctx, b.directClient, b.fast.url, due)
		})
	wall := time.Since(t0).Seconds()
	row := overheadRow{DB: g.db, Rate: rate, Seconds: dur.Seconds(), Gateway_: m.stop(), Upstream_: um.stop(), BenchCPU: bm.stop().CPUCores}
	gl, ge, gerr := split(ss, "gateway")
	dl, de, derr := split(ss, "direct")
	row.Gateway, row.Direct = distOf(gl), distOf(dl)
	row.Added = row.Gateway.minus(row.Direct)
	row.Errors, row.DirectErrors = ge, de
	row.FirstError = gerr
	if row.FirstError == "" {
		row.FirstError = derr
	}
	var hdr []float64
	for _, s := range ss {
		if s.target == "gateway" && s.err == "" && s.overheadMs >= 0 {
			hdr = append(hdr, s.overheadMs)
		}
	}
	row.Header = distOfFloat(hdr)
	row.Throughput = round(float64(len(gl))/wall, 1)
	if len(gl) > 0 {
		row.CPUMsPerRun = round(row.Gateway_.CPUCores*wall*1000/float64(len(gl)), 3)
	}
	return row
}

// streamRow is scenario 2.
type streamRow struct {
	DB         string  `json:"db"`
	Rate       float64 `json:"rate_per_s"`
	Round      int     `json:"round,omitempty"` // which of the repeated phases (0: not repeated)
	Seconds    float64 `json:"seconds"`
	Words      int     `json:"answer_words"`
	TPS        float64 `json:"upstream_tokens_per_s"`
	GwTTFT     dist    `json:"gateway_ttft"`
	DirectTTFT dist    `json:"direct_ttft"`
	AddedTTFT  dist    `json:"added_ttft"`
	GwGap      dist    `json:"gateway_gap"`
	DirectGap  dist    `json:"direct_gap"`
	AddedGap   dist    `json:"added_gap"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	Gateway_   usage   `json:"gateway_process"`
}

func (b *bench) streaming(ctx context.Context, g *gateway, rate float64, dur time.Duration) streamRow {
	m := startMeter(g.p.pid())
	ss := interleaved(ctx, rate, dur,
		func(ctx context.Context, due time.Time) sample {
			return gatewayStream(ctx, b.gwClient, g.url, g.paced, due)
		},
		func(ctx context.Context, due time.Time) sample {
			return directRun(ctx, b.directClient, b.paced.url, due)
		})
	row := streamRow{DB: g.db, Rate: rate, Seconds: dur.Seconds(), Words: pacedWords, TPS: pacedTPS, Gateway_: m.stop()}
	var gt, dt, gg, dg []time.Duration
	for _, s := range ss {
		if s.err != "" {
			row.Errors++
			if row.FirstError == "" {
				row.FirstError = s.err
			}
			continue
		}
		if s.target == "gateway" {
			gt, gg = append(gt, s.ttft), append(gg, s.gaps...)
		} else {
			dt, dg = append(dt, s.ttft), append(dg, s.gaps...)
		}
	}
	row.GwTTFT, row.DirectTTFT = distOf(gt), distOf(dt)
	row.AddedTTFT = row.GwTTFT.minus(row.DirectTTFT)
	row.GwGap, row.DirectGap = distOf(gg), distOf(dg)
	row.AddedGap = row.GwGap.minus(row.DirectGap)
	return row
}

// toolRow is scenario 4.
type toolRow struct {
	DB         string  `json:"db"`
	Rate       float64 `json:"rate_per_s"`
	Seconds    float64 `json:"seconds"`
	Gateway    dist    `json:"gateway"`
	Direct     dist    `json:"direct"`
	Added      dist    `json:"added"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	Gateway_   usage   `json:"gateway_process"`
}

// toolBody is the upstream request of the run's first model call (with the tool offered).
const toolBody = `{"model":"bench-model","messages":[{"role":"system","content":"You are a benchmark."},` +
	`{"role":"user","content":"hello bench"}],"tools":[{"type":"function","function":{"name":"calc__add",` +
	`"description":"adds two numbers","parameters":{"type":"object","properties":{"a":{"type":"number"},"b":{"type":"number"}}}}}],` +
	`"stream":true,"stream_options":{"include_usage":true}}`

func (b *bench) tools(ctx context.Context, g *gateway, rate float64, dur time.Duration) (toolRow, error) {
	mc, err := mcpclient.NewStreamableHttpClient(b.tool.mcp)
	if err != nil {
		return toolRow{}, err
	}
	defer mc.Close()
	if err := mc.Start(ctx); err != nil {
		return toolRow{}, err
	}
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = mcp.LATEST_PROTOCOL_VERSION
	init.Params.ClientInfo = mcp.Implementation{Name: "bench", Version: "1"}
	if _, err := mc.Initialize(ctx, init); err != nil {
		return toolRow{}, err
	}
	// The direct path does what the gateway does, in order: model call offering the tool,
	// the MCP call, then the model call that answers.
	direct := func(ctx context.Context, due time.Time) sample {
		s := sample{target: "direct"}
		if err := post(ctx, b.directClient, b.tool.url+"/chat/completions", toolBody); err != nil {
			s.err = err.Error()
			return s
		}
		call := mcp.CallToolRequest{}
		call.Params.Name = "add"
		call.Params.Arguments = map[string]any{"a": 2, "b": 3}
		if _, err := mc.CallTool(ctx, call); err != nil {
			s.err = "mcp: " + err.Error()
			return s
		}
		if err := post(ctx, b.directClient, b.tool.url+"/chat/completions", upstreamBody); err != nil {
			s.err = err.Error()
			return s
		}
		s.lat = time.Since(due)
		return s
	}
	m := startMeter(g.p.pid())
	ss := interleaved(ctx, rate, dur,
		func(ctx context.Context, due time.Time) sample {
			return gatewayRun(ctx, b.gwClient, g.url, g.tool, due)
		}, direct)
	row := toolRow{DB: g.db, Rate: rate, Seconds: dur.Seconds(), Gateway_: m.stop()}
	gl, ge, gerr := split(ss, "gateway")
	dl, de, derr := split(ss, "direct")
	row.Gateway, row.Direct = distOf(gl), distOf(dl)
	row.Added = row.Gateway.minus(row.Direct)
	row.Errors = ge + de
	row.FirstError = gerr + derr
	return row, nil
}

// post sends body and reads the answer to its end.
func post(ctx context.Context, c *http.Client, url, body string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if _, err := io.Copy(io.Discard, res.Body); err != nil {
		return err
	}
	if res.StatusCode != 200 {
		return fmt.Errorf("status %d", res.StatusCode)
	}
	return nil
}

// storageRow is scenario 5.
type storageRow struct {
	DB            string  `json:"db"`
	Rate          float64 `json:"rate_per_s"`
	Seconds       float64 `json:"seconds"`
	Runs          int     `json:"runs_ok"`
	Errors        int     `json:"errors"`
	FirstError    string  `json:"first_error,omitempty"`
	Latency       dist    `json:"latency"`
	RecordsPerSec float64 `json:"records_written_per_s"`
	DrainMs       float64 `json:"drain_after_load_ms"`
	BatchMeanMs   float64 `json:"batch_mean_ms"`
	Gateway_      usage   `json:"gateway_process"`
}

func (b *bench) storage(ctx context.Context, g *gateway, rate float64, dur time.Duration) storageRow {
	before := g.scrape(ctx)
	m := startMeter(g.p.pid())
	t0 := time.Now()
	ss := openLoop(ctx, rate, dur, 20000, func(ctx context.Context, _ int, due time.Time) sample {
		return gatewayRun(ctx, b.gwClient, g.url, g.fast, due)
	})
	loadEnd := time.Now()
	row := storageRow{DB: g.db, Rate: rate, Seconds: dur.Seconds(), Gateway_: m.stop()}
	lat, errs, first := split(ss, "gateway")
	row.Runs, row.Errors, row.FirstError, row.Latency = len(lat), errs, first, distOf(lat)
	// Every run queues two record versions (start and finish); wait until both are written.
	want := before["agentgate_runlog_records_written_total{kind=\"runs\"}"] + float64(2*len(ss))
	var after map[string]float64
	deadline := time.Now().Add(60 * time.Second)
	for {
		after = g.scrape(ctx)
		if after["agentgate_runlog_records_written_total{kind=\"runs\"}"] >= want || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	drained := time.Since(t0)
	row.DrainMs = round(float64(time.Since(loadEnd))/float64(time.Millisecond), 1)
	written := after["agentgate_runlog_records_written_total{kind=\"runs\"}"] - before["agentgate_runlog_records_written_total{kind=\"runs\"}"]
	row.RecordsPerSec = round(written/drained.Seconds(), 1)
	if n := after["agentgate_runlog_batch_duration_seconds_count"] - before["agentgate_runlog_batch_duration_seconds_count"]; n > 0 {
		row.BatchMeanMs = round((after["agentgate_runlog_batch_duration_seconds_sum"]-before["agentgate_runlog_batch_duration_seconds_sum"])/n*1000, 3)
	}
	return row
}

// openRow is scenario 3 at one N.
type openRow struct {
	N               int     `json:"n"`
	Opened          int     `json:"opened"`
	Failed          int     `json:"failed"`
	FirstError      string  `json:"first_error,omitempty"`
	OpenSeconds     float64 `json:"open_seconds"`
	BaselineMiB     float64 `json:"baseline_rss_mib"`
	PlateauMiB      float64 `json:"plateau_rss_mib"`
	PerStreamKiB    float64 `json:"rss_per_stream_kib"`
	HeapPerStreamKB float64 `json:"heap_inuse_per_stream_kib"`
	StackPerStream  float64 `json:"stack_inuse_per_stream_kib"`
	// LivePerStream is the live heap per stream: read after the hold, right after a forced
	// collection (pprof's heap?gc=1), so it holds no garbage.
	LivePerStream float64 `json:"live_heap_per_stream_kib"`
	Goroutines    float64 `json:"goroutines_per_stream"`
	HoldSeconds   float64 `json:"hold_seconds"`
	Heartbeat     string  `json:"heartbeat"`
	Heartbeats    int64   `json:"heartbeats_received"`
	HoldCPUCores  float64 `json:"hold_cpu_cores"`
	CPUPerBeatUs  float64 `json:"cpu_us_per_heartbeat"`
	BytesPerBeat  float64 `json:"bytes_allocated_per_heartbeat"`
	CloseSeconds  float64 `json:"close_seconds"`
	LeftOpen      float64 `json:"streams_left_open"`
}

// openStreams holds n slow streaming runs open at once and measures the gateway.
func (b *bench) openStreams(ctx context.Context, g *gateway, n int, openRate float64, hold time.Duration) openRow {
	row := openRow{N: n, Heartbeat: g.heartbeat.String(), HoldSeconds: hold.Seconds()}
	base := g.scrape(ctx)
	row.BaselineMiB = round(float64(memKB(g.p.pid(), "VmRSS"))/1024, 1)

	c := newClient()
	defer c.CloseIdleConnections()
	sctx, stopStreams := context.WithCancel(ctx)
	defer stopStreams()
	var opened, failed, beats atomic.Int64
	var holding atomic.Bool
	var errMu sync.Mutex
	fail := func(msg string) {
		if !holding.Load() {
			// Closed by us at the end of the hold: not a failure.
			return
		}
		failed.Add(1)
		errMu.Lock()
		if row.FirstError == "" {
			row.FirstError = msg
		}
		errMu.Unlock()
	}
	holding.Store(true)
	var wg sync.WaitGroup
	t0 := time.Now()
	interval := time.Duration(float64(time.Second) / openRate)
	for i := 0; i < n; i++ {
		if d := time.Until(t0.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(sctx, "POST", g.url+"/api/run/"+g.slow.slug, strings.NewReader(runInput))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "text/event-stream")
			req.Header.Set("Authorization", "Bearer "+g.slow.key)
			res, err := c.Do(req)
			if err != nil {
				fail(err.Error())
				return
			}
			defer res.Body.Close()
			if res.StatusCode != 200 {
				fail("status " + strconv.Itoa(res.StatusCode))
				return
			}
			br := bufio.NewReaderSize(res.Body, 512)
			first := true
			for {
				line, err := br.ReadSlice('\n')
				if err != nil {
					fail("stream broke: " + err.Error())
					return
				}
				switch {
				case first && bytes.HasPrefix(line, []byte("event: ")):
					first = false
					opened.Add(1)
				case bytes.HasPrefix(line, []byte(": ping")):
					beats.Add(1)
				case bytes.Equal(line, []byte("event: done\n")), bytes.Equal(line, []byte("event: error\n")):
					fail("run ended during the hold: " + strings.TrimSpace(string(line)))
					return
				}
			}
		}()
	}
	// Wait until every stream is open (or failed), bounded.
	deadline := time.Now().Add(60 * time.Second)
	for opened.Load()+failed.Load() < int64(n) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	row.OpenSeconds = round(time.Since(t0).Seconds(), 2)
	time.Sleep(2 * time.Second) // let allocation settle before reading memory
	plateau := g.scrape(ctx)
	row.PlateauMiB = round(float64(memKB(g.p.pid(), "VmRSS"))/1024, 1)
	row.PerStreamKiB = round((row.PlateauMiB-row.BaselineMiB)*1024/float64(n), 2)
	row.HeapPerStreamKB = round((plateau["go_memstats_heap_inuse_bytes"]-base["go_memstats_heap_inuse_bytes"])/1024/float64(n), 2)
	row.StackPerStream = round((plateau["go_memstats_stack_inuse_bytes"]-base["go_memstats_stack_inuse_bytes"])/1024/float64(n), 2)
	row.Goroutines = round((plateau["go_goroutines"]-base["go_goroutines"])/float64(n), 2)
	if b.profile {
		path := filepath.Join(b.outDir, "goroutines-open-"+strconv.Itoa(n)+".txt")
		if err := fetch(ctx, g.pprof+"/debug/pprof/goroutine?debug=1", path); err != nil {
			log.Printf("goroutine profile: %v", err)
		}
	}

	// Hold: only heartbeats (and the disconnect watcher) run; the upstream is silent.
	beats0 := beats.Load()
	m := startMeter(g.p.pid())
	time.Sleep(hold)
	u := m.stop()
	held := g.scrape(ctx)
	row.HoldCPUCores = u.CPUCores
	row.Heartbeats = beats.Load() - beats0
	if row.Heartbeats > 0 {
		row.CPUPerBeatUs = round(u.CPUCores*hold.Seconds()*1e6/float64(row.Heartbeats), 2)
		// What the hold allocates decides how soon the heap grows to the collector's goal:
		// an open stream that allocates nothing while it waits keeps the heap where it is.
		row.BytesPerBeat = round((held["go_memstats_alloc_bytes_total"]-plateau["go_memstats_alloc_bytes_total"])/float64(row.Heartbeats), 1)
	}
	row.Opened = int(opened.Load())
	// After the hold, so the forced collection changes none of the figures above. With
	// -profile the heap profile it answers is kept: it shows what the open streams hold.
	heapTo := os.DevNull
	if b.profile {
		heapTo = filepath.Join(b.outDir, "heap-open-"+strconv.Itoa(n)+".pprof")
	}
	if err := fetch(ctx, g.pprof+"/debug/pprof/heap?gc=1", heapTo); err != nil {
		log.Printf("forced collection: %v", err)
	} else {
		live := g.scrape(ctx)
		row.LivePerStream = round((live["go_memstats_heap_alloc_bytes"]-base["go_memstats_heap_alloc_bytes"])/1024/float64(n), 2)
	}

	// Close every stream; the gateway must notice and end every run.
	holding.Store(false)
	row.Failed = int(failed.Load())
	tc := time.Now()
	stopStreams()
	wg.Wait()
	deadline = time.Now().Add(60 * time.Second)
	for {
		s := g.scrape(ctx)
		row.LeftOpen = s["agentgate_open_streams"] + s["agentgate_live_runs"]
		if row.LeftOpen == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	row.CloseSeconds = round(time.Since(tc).Seconds(), 2)
	return row
}
