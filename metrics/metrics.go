// Package metrics exposes the server's Prometheus metrics, on a listener
// of their own that is off by default. Labels name routes by template and
// results by kind: never a user ID, room ID or address.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the series the server keeps.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	commits  prometheus.Histogram
	writes   prometheus.Counter
	prunes   *prometheus.CounterVec
	pruned   *prometheus.CounterVec
	backups  *prometheus.CounterVec
	sent     *prometheus.CounterVec
	lastSent *prometheus.GaugeVec
	lag      *prometheus.GaugeVec
}

// New registers the series; waiting and queue report the number of
// waiting long-polls and of writes queued for the writer.
func New(waiting, queue func() float64) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "redoubt_http_requests_total",
		Help: "HTTP requests by route template, method and status."}, []string{"route", "method", "status"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "redoubt_http_request_duration_seconds",
		Help: "HTTP request latency by route template (long-polls included).", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 18)},
		[]string{"route", "method"})
	m.commits = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "redoubt_db_commit_duration_seconds",
		Help: "Time each write transaction (a batch of writes) took.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)})
	m.writes = prometheus.NewCounter(prometheus.CounterOpts{Name: "redoubt_db_writes_total", Help: "Writes committed."})
	m.prunes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "redoubt_prune_runs_total", Help: "Pruner passes by result."}, []string{"result"})
	m.pruned = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "redoubt_pruned_total", Help: "What the pruner deleted, by kind."}, []string{"kind"})
	m.backups = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "redoubt_backup_runs_total", Help: "Scheduled backups by result."}, []string{"result"})
	m.sent = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "redoubt_backup_destination_runs_total",
		Help: "Scheduled backups sent to each destination, by result."}, []string{"destination", "result"})
	m.lastSent = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "redoubt_backup_destination_last_success_timestamp_seconds",
		Help: "When the newest snapshot a destination holds whole was taken."}, []string{"destination"})
	m.lag = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "redoubt_backup_replication_lag_seconds",
		Help: "How far each destination is behind what is committed (continuous backup)."}, []string{"destination"})
	m.reg.MustRegister(m.requests, m.latency, m.commits, m.writes, m.prunes, m.pruned, m.backups, m.sent, m.lastSent, m.lag,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "redoubt_sync_waiting", Help: "Long-polling /sync and sliding sync requests."}, waiting),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "redoubt_db_write_queue", Help: "Writes waiting for the writer."}, queue),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics.
func (m *Metrics) Handler() http.Handler { return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}) }

// Request records one HTTP request.
func (m *Metrics) Request(route, method string, status int, d time.Duration) {
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route, method).Observe(d.Seconds())
}

// Commit records one write transaction of n writes.
func (m *Metrics) Commit(d time.Duration, n int) {
	m.commits.Observe(d.Seconds())
	m.writes.Add(float64(n))
}

// Prune records a pruner pass.
func (m *Metrics) Prune(events, media, connections int64, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.prunes.WithLabelValues(result).Inc()
	m.pruned.WithLabelValues("events").Add(float64(events))
	m.pruned.WithLabelValues("media").Add(float64(media))
	m.pruned.WithLabelValues("connection_records").Add(float64(connections))
}

// Backup records a scheduled backup.
func (m *Metrics) Backup(err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.backups.WithLabelValues(result).Inc()
}

// ReplicationLag records how far a destination is behind.
func (m *Metrics) ReplicationLag(destination string, lag time.Duration) {
	m.lag.WithLabelValues(destination).Set(lag.Seconds())
}

// BackupSent records a scheduled backup's outcome at one destination.
func (m *Metrics) BackupSent(destination string, err error, at time.Time) {
	result := "ok"
	if err != nil {
		result = "error"
	} else {
		m.lastSent.WithLabelValues(destination).Set(float64(at.UnixMilli()) / 1000)
	}
	m.sent.WithLabelValues(destination, result).Inc()
}
