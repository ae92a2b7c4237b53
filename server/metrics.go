package server

import (
	"errors"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/agentgate/agentgate/agent"
	"github.com/agentgate/agentgate/db"
	"github.com/agentgate/agentgate/stream"
)

// metrics is the gateway's Prometheus instrumentation, on its own registry (never the global
// one, so two servers in one process — tests — do not collide). Labels are low-cardinality
// only: endpoint slug, provider, run status, tool-call status, token direction.
type metrics struct {
	reg *prometheus.Registry

	runs        *prometheus.CounterVec   // endpoint, provider, status
	runLatency  *prometheus.HistogramVec // endpoint
	runTTFT     *prometheus.HistogramVec // endpoint
	tokens      *prometheus.CounterVec   // endpoint, direction
	cost        *prometheus.CounterVec   // endpoint
	toolCalls   *prometheus.CounterVec   // endpoint, status
	toolLatency *prometheus.HistogramVec // status
	rateLimited *prometheus.CounterVec   // endpoint
	upstreamErr *prometheus.CounterVec   // provider
	overhead    prometheus.Histogram
	logRecords  *prometheus.CounterVec // kind
	logBatch    prometheus.Histogram
}

// latencyBuckets span a fast answer to a long agent run (seconds).
var latencyBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// overheadBuckets span the gateway's own time per JSON run (seconds): 50 µs to 250 ms.
var overheadBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.runs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "agentgate_runs_total", Help: "Finished runs by endpoint slug, provider and final status.",
	}, []string{"endpoint", "provider", "status"})
	m.runLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "agentgate_run_duration_seconds", Help: "Run latency from start to terminal event.", Buckets: latencyBuckets,
	}, []string{"endpoint"})
	m.runTTFT = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "agentgate_run_ttft_seconds", Help: "Time from run start to its first token (runs that produced one).", Buckets: latencyBuckets,
	}, []string{"endpoint"})
	m.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "agentgate_tokens_total", Help: "Model tokens by endpoint and direction (input, output).",
	}, []string{"endpoint", "direction"})
	m.cost = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "agentgate_cost_cents_total", Help: "Token cost of finished runs in cents (price table).",
	}, []string{"endpoint"})
	m.toolCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "agentgate_tool_calls_total", Help: "Executed MCP tool calls by endpoint and status (success, error).",
	}, []string{"endpoint", "status"})
	m.toolLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "agentgate_tool_call_duration_seconds", Help: "MCP tool call latency by status.", Buckets: latencyBuckets,
	}, []string{"status"})
	m.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "agentgate_rate_limited_total", Help: "Run requests refused with 429 RATE_LIMITED, by endpoint.",
	}, []string{"endpoint"})
	m.upstreamErr = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "agentgate_upstream_errors_total", Help: "Runs that ended with an LLM_ERROR from the model provider.",
	}, []string{"provider"})
	m.overhead = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "agentgate_overhead_seconds", Buckets: overheadBuckets,
		Help: "The gateway's own time per JSON run: handler time minus time inside model calls (X-Agentgate-Overhead-Ms).",
	})
	m.logRecords = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "agentgate_runlog_records_written_total", Help: "Run-log records written, by kind (runs: a run's start and finish versions each count; events).",
	}, []string{"kind"})
	m.logBatch = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "agentgate_runlog_batch_duration_seconds", Help: "Time to write one run-log batch.", Buckets: latencyBuckets,
	})
	for _, c := range []prometheus.Collector{m.runs, m.runLatency, m.runTTFT, m.tokens, m.cost, m.toolCalls,
		m.toolLatency, m.rateLimited, m.upstreamErr, m.overhead, m.logRecords, m.logBatch} {
		f(c)
	}
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "agentgate_open_streams", Help: "SSE responses being written now.",
	}, func() float64 { return float64(s.openStreams.Load()) }))
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "agentgate_live_runs", Help: "Runs in progress on this instance.",
	}, func() float64 { return float64(s.runner.active()) }))
	f(collectors.NewGoCollector())
	f(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// handler serves the registry in the Prometheus text format (GET /metrics).
func (m *metrics) handler() fiber.Handler {
	return adaptor.HTTPHandler(promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
}

// observeRun records one finished run.
func (m *metrics) observeRun(slug, provider string, r *db.Run, o agent.Outcome) {
	m.runs.WithLabelValues(slug, provider, r.Status).Inc()
	m.runLatency.WithLabelValues(slug).Observe(o.Latency.Seconds())
	if o.TTFT > 0 {
		m.runTTFT.WithLabelValues(slug).Observe(o.TTFT.Seconds())
	}
	if o.TokensInput > 0 {
		m.tokens.WithLabelValues(slug, "input").Add(float64(o.TokensInput))
	}
	if o.TokensOutput > 0 {
		m.tokens.WithLabelValues(slug, "output").Add(float64(o.TokensOutput))
	}
	if o.CostMicroCents > 0 {
		m.cost.WithLabelValues(slug).Add(float64(o.CostMicroCents) / microPerCent)
	}
	for _, tc := range o.ToolCalls {
		status := "success"
		if !tc.Success {
			status = "error"
		}
		m.toolCalls.WithLabelValues(slug, status).Inc()
		m.toolLatency.WithLabelValues(status).Observe(float64(tc.LatencyMs) / 1e3)
	}
	if o.Err != nil && o.Err.Code == stream.CodeLLM {
		m.upstreamErr.WithLabelValues(provider).Inc()
	}
}

// rejected counts a run request refused by a rate limit (other errors are not counted).
func (m *metrics) rejected(slug string, err error) {
	var se *stream.Error
	if errors.As(err, &se) && se.Code == stream.CodeRateLimited {
		m.rateLimited.WithLabelValues(slug).Inc()
	}
}

// runLogBatch records one run-log batch (called by the run log's writer goroutine).
func (m *metrics) runLogBatch(runs, events int, d time.Duration) {
	if runs > 0 {
		m.logRecords.WithLabelValues("runs").Add(float64(runs))
	}
	if events > 0 {
		m.logRecords.WithLabelValues("events").Add(float64(events))
	}
	m.logBatch.Observe(d.Seconds())
}

// overheadHeader is the response header with the gateway's own time for a JSON run.
const overheadHeader = "X-Agentgate-Overhead-Ms"

// setOverhead sets X-Agentgate-Overhead-Ms on a JSON run answer: the handler's time so far
// (fasthttp stamps the request once it is read) minus the time the run spent inside model
// calls. Call it once the run's terminal event has been received: the run then returns
// within microseconds, so the wait is short; it is bounded by shutdown all the same.
func (s *Server) setOverhead(c *fiber.Ctx, lr *liveRun) {
	select {
	case <-lr.ran:
	case <-s.ctx.Done():
		return
	}
	d := max(time.Since(c.Context().Time())-lr.modelTime, 0)
	s.metrics.overhead.Observe(d.Seconds())
	c.Set(overheadHeader, strconv.FormatFloat(float64(d.Microseconds())/1e3, 'f', 3, 64))
}
