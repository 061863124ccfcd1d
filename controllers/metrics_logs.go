package controllers

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sigwatch/sigwatch/internal/logmonitor"
)

// logMetrics are the metrics of the transparency logs that the log monitor reads.
type logMetrics struct {
	requests   *prometheus.CounterVec
	consistent *prometheus.GaugeVec
	up         *prometheus.GaugeVec
	size       *prometheus.GaugeVec
}

func newLogMetrics() *logMetrics {
	return &logMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sigwatch_transparency_log_requests_total",
			Help: "HTTP requests to transparency logs (live checks), by log (its TransparencyLog), kind (checkpoint, tile) and status code (0: no response).",
		}, []string{"log", "kind", "code"}),
		consistent: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sigwatch_transparency_log_consistent",
			Help: "1 while every checkpoint read of the log is consistent with the last one verified; 0 once the log showed an inconsistency (a fork, a split view or a rollback: see its TransparencyLog).",
		}, []string{"log", "origin"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sigwatch_transparency_log_up",
			Help: "1 when the log's last checkpoint was read and its signature verified; 0 when it could not be read or does not verify.",
		}, []string{"log", "origin"}),
		size: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sigwatch_transparency_log_tree_size",
			Help: "Size of the log's last verified checkpoint.",
		}, []string{"log", "origin"}),
	}
}

func (l *logMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{l.requests, l.consistent, l.up, l.size}
}

// ObserveLogRequest counts one request to a transparency log; it is the log monitor's Observe.
func (m *Metrics) ObserveLogRequest(l logmonitor.Log, kind string, code int, _ error) {
	if m == nil {
		return
	}
	m.logs.requests.WithLabelValues(l.Name(), kind, codeLabel(code)).Inc()
}

// observeLog sets the gauges of a log from what the monitor recorded.
func (m *Metrics) observeLog(r logmonitor.Record) {
	if m == nil {
		return
	}
	labels := []string{r.Log.Name(), r.Log.Origin}
	m.logs.consistent.WithLabelValues(labels...).Set(boolGauge(r.Inconsistency == nil))
	m.logs.up.WithLabelValues(labels...).Set(boolGauge(r.Problem == ""))
	if len(r.Checkpoint) > 0 {
		m.logs.size.WithLabelValues(labels...).Set(float64(r.Tree.N))
	}
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
