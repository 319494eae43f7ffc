package resource

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	samples, late             prometheus.Counter
	rejected                  *prometheus.CounterVec
	overflow, counters, panes prometheus.Counter
	liveKeys, watermarkLag    prometheus.Gauge
}

func newMetrics() *metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "tpflow", Subsystem: "resource", Name: name, Help: help})
	}
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "tpflow", Subsystem: "resource", Name: name, Help: help})
	}
	return &metrics{
		samples: c("samples_total", "Metric samples aggregated into open resource panes."),
		late:    c("late_samples_total", "Samples that arrived after their pane was final, within the grace: they produce a corrected pane."),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "tpflow", Subsystem: "resource", Name: "rejected_samples_total",
			Help: "Samples rejected by the time model (aggregator/DESIGN.md), by reason: too_old (also a sample whose pane's grace is over), too_far_future, invalid_time."}, []string{"reason"}),
		overflow:     c("overflow_samples_total", "Samples of keys beyond the key cap, folded into the __other__ container."),
		counters:     c("counter_samples_total", "Counter samples skipped: resource panes summarise gauges."),
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
	for _, c := range []*prometheus.Counter{&m.samples, &m.late, &m.overflow, &m.counters, &m.panes} {
		if err := r.Register(*c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				panic("BUG: resource: " + err.Error())
			}
			*c = are.ExistingCollector.(prometheus.Counter)
		}
	}
	if err := r.Register(m.rejected); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			panic("BUG: resource: " + err.Error())
		}
		m.rejected = are.ExistingCollector.(*prometheus.CounterVec)
	}
	for _, g := range []*prometheus.Gauge{&m.liveKeys, &m.watermarkLag} {
		if err := r.Register(*g); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				panic("BUG: resource: " + err.Error())
			}
			*g = are.ExistingCollector.(prometheus.Gauge)
		}
	}
}
