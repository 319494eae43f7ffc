package aggregator

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	eventsIn       prometheus.Counter
	late           prometheus.Counter
	lateDropped    prometheus.Counter
	lateOut        prometheus.Counter
	rejected       [NumReasons]prometheus.Counter
	rejectedVec    *prometheus.CounterVec
	offBy          *prometheus.HistogramVec
	offByMax       *prometheus.GaugeVec
	offByObs       [NumReasons]prometheus.Observer
	offByMaxG      [NumReasons]prometheus.Gauge
	overflow       prometheus.Counter
	overflowKeys   prometheus.Counter
	panesEmitted   prometheus.Counter
	rollupsEmitted prometheus.Counter
	liveKeys       prometheus.Gauge
	watermarkLag   prometheus.Gauge
}

// DefaultMetricsPrefix starts the names of the engine's metrics: the
// aggregate role's prefix (internal/promreg states the naming rule).
const DefaultMetricsPrefix = "tpflow_aggregate_"

// newMetrics returns the engine's metrics, each named prefix + its name.
func newMetrics(prefix string) *metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: prefix + name, Help: help})
	}
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: prefix + name, Help: help})
	}
	m := &metrics{
		eventsIn:    c("events_total", "Call events aggregated into open panes."),
		late:        c("late_events_total", "Events that arrived after their pane was final, within the grace: they produce a corrected pane."),
		lateDropped: c("late_dropped_events_total", "Events that arrived after their pane's grace ended and were dropped because the caller has no late path (Flush instead of FlushAll)."),
		lateOut:     c("late_path_events_total", "Events that arrived after their pane's grace ended: handed to the late path, which merges them into the stored panes (FlushResult.Late)."),
		rejectedVec: prometheus.NewCounterVec(prometheus.CounterOpts{Name: prefix + "rejected_events_total",
			Help: "Events rejected by the time model (aggregator/DESIGN.md), by reason: too_old, too_far_future, invalid_time."}, []string{"reason"}),
		offBy: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: prefix + "rejected_off_by_seconds",
			Help:    "How far outside the accepted time range rejected events were, by reason.",
			Buckets: []float64{1, 10, 60, 600, 3600, 86400, 30 * 86400, 365 * 86400, 100 * 365 * 86400}}, []string{"reason"}),
		offByMax: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: prefix + "rejected_off_by_max_seconds",
			Help: "The largest distance outside the accepted time range of a rejected event since start, by reason."}, []string{"reason"}),
		overflow:       c("overflow_events_total", "Events of keys beyond the key cap, folded into the __other__ method."),
		overflowKeys:   c("overflow_keys_total", "Key lookups that found the key cap reached."),
		panesEmitted:   c("panes_emitted_total", "Pane statistics emitted, corrections and rollups included."),
		rollupsEmitted: c("rollups_emitted_total", "5-minute rollup panes emitted, corrections included."),
		liveKeys:       g("live_keys", "Keys held in memory."),
		watermarkLag:   g("watermark_lag_seconds", "Wall clock minus the global watermark."),
	}
	for _, r := range Reasons {
		m.rejected[r] = m.rejectedVec.WithLabelValues(r.String())
		m.offByObs[r] = m.offBy.WithLabelValues(r.String())
		m.offByMaxG[r] = m.offByMax.WithLabelValues(r.String())
	}
	return m
}

func (m *metrics) register(r prometheus.Registerer) {
	if r == nil {
		return
	}
	r.MustRegister(m.eventsIn, m.late, m.lateDropped, m.lateOut, m.rejectedVec, m.offBy, m.offByMax, m.overflow, m.overflowKeys, m.panesEmitted, m.rollupsEmitted, m.liveKeys, m.watermarkLag)
}
