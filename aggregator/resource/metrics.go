package resource

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tpflow/tpflow/internal/promreg"
)

type metrics struct {
	samples, late             prometheus.Counter
	rejected                  *prometheus.CounterVec
	overflow, counters, panes prometheus.Counter
	liveKeys, watermarkLag    prometheus.Gauge
}

func newMetrics() *metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "tpflow_aggregate_resource_" + name, Help: help})
	}
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: "tpflow_aggregate_resource_" + name, Help: help})
	}
	return &metrics{
		samples: c("samples_total", "Metric samples aggregated into open resource panes."),
		late:    c("late_samples_total", "Samples that arrived after their pane was final, within the grace: they produce a corrected pane."),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tpflow_aggregate_resource_rejected_samples_total",
			Help: "Samples rejected by the time model (aggregator/DESIGN.md), by reason: too_old (also a sample whose pane's grace is over), too_far_future, invalid_time."}, []string{"reason"}),
		overflow:     c("overflow_samples_total", "Samples of keys beyond the key cap, folded into the __other__ container."),
		counters:     c("monotonic_samples_total", "Samples of counters (monotonic series) skipped: resource panes summarise gauges."),
		panes:        c("panes_emitted_total", "Resource panes emitted, corrections included."),
		liveKeys:     g("live_keys", "Resource keys held in memory."),
		watermarkLag: g("watermark_lag_seconds", "Wall clock minus the resource watermark."),
	}
}

// register registers m with r; a collector already registered there (an
// engine started again in the same process) is shared rather than refused.
func (m *metrics) register(r prometheus.Registerer) {
	if r == nil {
		return
	}
	if err := errors.Join(
		promreg.RegisterAll(r, &m.samples, &m.late, &m.overflow, &m.counters, &m.panes),
		promreg.RegisterAll(r, &m.rejected),
		promreg.RegisterAll(r, &m.liveKeys, &m.watermarkLag),
	); err != nil {
		panic("BUG: resource: " + err.Error())
	}
}
