// Package telemetry owns what the conductor tells operators: Prometheus
// metrics (Metrics), the audit log's rotation (RotatingFile) and
// OpenTelemetry trace export (Tracing).
//
// It imports nothing of the conductor; internal/server and cmd/conductor feed
// it. Every method of a nil *Metrics is a no-op, so callers need no checks.
package telemetry

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the conductor's Prometheus registry and its instruments. Its
// methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	executions    *prometheus.CounterVec
	execDuration  prometheus.Histogram
	outputBytes   prometheus.Counter
	inFlight      prometheus.Gauge
	toolCalls     *prometheus.CounterVec
	toolDuration  *prometheus.HistogramVec
	searchLatency prometheus.Histogram
	rejected      *prometheus.CounterVec
}

// New returns Metrics with a private registry holding the conductor's
// instruments and the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.executions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "conductor_executions_total",
		Help: "Programs run by execute_code, by outcome (ok or the error kind: timeout, memory, exception, ...).",
	}, []string{"outcome"})
	m.execDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "conductor_execution_duration_seconds",
		Help:    "Wall-clock time of execute_code runs.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
	})
	m.outputBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "conductor_output_bytes_total",
		Help: "Bytes of stdout, stderr and result returned by execute_code runs.",
	})
	m.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "conductor_sandbox_processes",
		Help: "execute_code runs in flight (each one a sandbox process).",
	})
	m.toolCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "conductor_tool_calls_total",
		Help: "Upstream tool calls made by programs, by server, tool and outcome (ok, error, or refused by the policy or role before reaching the server).",
	}, []string{"server", "tool", "outcome"})
	m.toolDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "conductor_tool_call_duration_seconds",
		Help:    "Duration of upstream tool calls made by programs.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
	}, []string{"server", "tool"})
	m.searchLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "conductor_search_duration_seconds",
		Help:    "Latency of search_tools.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
	})
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "conductor_http_rejected_total",
		Help: "HTTP requests refused before reaching MCP, by reason (unauthorized, origin, body_too_large, rate_limited, too_many_executions).",
	}, []string{"reason"})
	m.reg.MustRegister(m.executions, m.execDuration, m.outputBytes, m.inFlight, m.toolCalls, m.toolDuration,
		m.searchLatency, m.rejected,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is where the instruments live (for tests and extra collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ExecStarted counts a run as in flight; call the returned function when it ends.
func (m *Metrics) ExecStarted() (done func()) {
	if m == nil {
		return func() {}
	}
	m.inFlight.Inc()
	return m.inFlight.Dec
}

// ObserveExecution records one finished run.
func (m *Metrics) ObserveExecution(outcome string, d time.Duration, outputBytes int) {
	if m == nil {
		return
	}
	m.executions.WithLabelValues(outcome).Inc()
	m.execDuration.Observe(d.Seconds())
	m.outputBytes.Add(float64(outputBytes))
}

// ObserveToolCall records one upstream tool call made by a program.
func (m *Metrics) ObserveToolCall(server, tool, outcome string, d time.Duration) {
	if m == nil {
		return
	}
	m.toolCalls.WithLabelValues(server, tool, outcome).Inc()
	m.toolDuration.WithLabelValues(server, tool).Observe(d.Seconds())
}

// ObserveSearch records one search_tools latency.
func (m *Metrics) ObserveSearch(d time.Duration) {
	if m == nil {
		return
	}
	m.searchLatency.Observe(d.Seconds())
}

// Rejected counts an HTTP request refused for reason.
func (m *Metrics) Rejected(reason string) {
	if m == nil {
		return
	}
	m.rejected.WithLabelValues(reason).Inc()
}

// GaugeFunc registers a gauge whose value f computes at scrape time.
func (m *Metrics) GaugeFunc(name, help string, f func() float64) {
	if m == nil {
		return
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// Upstream registers conductor_upstream_up{server}: 1 when f reports the
// server up, 0 otherwise, read at scrape time.
func (m *Metrics) Upstream(f func() map[string]bool) {
	if m == nil {
		return
	}
	m.reg.MustRegister(upstreamCollector{f: f, desc: prometheus.NewDesc("conductor_upstream_up",
		"Whether an upstream MCP server is connected (1) or not (0: down, starting or not started yet).", []string{"server"}, nil)})
}

type upstreamCollector struct {
	f    func() map[string]bool
	desc *prometheus.Desc
}

func (u upstreamCollector) Describe(ch chan<- *prometheus.Desc) { ch <- u.desc }

func (u upstreamCollector) Collect(ch chan<- prometheus.Metric) {
	for name, up := range u.f() {
		v := 0.0
		if up {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(u.desc, prometheus.GaugeValue, v, name)
	}
}
