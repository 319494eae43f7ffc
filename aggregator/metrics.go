package aggregator

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	eventsIn       prometheus.Counter
	late           prometheus.Counter
	lateDropped    prometheus.Counter
	latePath       prometheus.Counter
	future         prometheus.Counter
	overflow       prometheus.Counter
	overflowKeys   prometheus.Counter
	panesEmitted   prometheus.Counter
	rollupsEmitted prometheus.Counter
	liveKeys       prometheus.Gauge
	watermarkLag   prometheus.Gauge
}

func newMetrics() *metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "tpflow", Subsystem: "aggregator", Name: name, Help: help})
	}
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "tpflow", Subsystem: "aggregator", Name: name, Help: help})
	}
	return &metrics{
		eventsIn:       c("events_total", "Call events aggregated into open panes."),
		late:           c("late_events_total", "Events that arrived after their pane was final, within the grace: they produce a corrected pane."),
		lateDropped:    c("late_dropped_events_total", "Events that arrived after their pane's grace ended and were dropped because the engine's caller has no late path."),
		latePath:       c("late_path_events_total", "Events that arrived after their pane's grace ended: handed to the late path, which merges them into the stored panes."),
		future:         c("future_events_total", "Events dated further ahead of the wall clock than the allowed clock skew: dropped."),
		overflow:       c("overflow_events_total", "Events of keys beyond the key cap, folded into the __other__ method."),
		overflowKeys:   c("overflow_keys_total", "Key lookups that found the key cap reached."),
		panesEmitted:   c("panes_emitted_total", "Pane statistics emitted, corrections and rollups included."),
		rollupsEmitted: c("rollups_emitted_total", "5-minute rollup panes emitted, corrections included."),
		liveKeys:       g("live_keys", "Keys held in memory."),
		watermarkLag:   g("watermark_lag_seconds", "Wall clock minus the global watermark."),
	}
}

func (m *metrics) register(r prometheus.Registerer) {
	if r == nil {
		return
	}
	r.MustRegister(m.eventsIn, m.late, m.lateDropped, m.latePath, m.future, m.overflow, m.overflowKeys, m.panesEmitted, m.rollupsEmitted, m.liveKeys, m.watermarkLag)
}
