package aggregate

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tpflow/tpflow/internal/promreg"
)

type metrics struct {
	// calls and resources count what each consumer reads and publishes.
	calls, resources topicMetrics

	dropped, publishErrors prometheus.Counter
	lateEvents             prometheus.Counter
	publishSeconds         prometheus.Histogram
}

// topicMetrics are the counters of one consumed topic.
type topicMetrics struct {
	messages, accepted, bad, redelivered, panes prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		calls: topicMetrics{
			messages:    prometheus.NewCounter(prometheus.CounterOpts{Name: "tpflow_aggregate_messages_total", Help: "Calls messages fed to the engine."}),
			accepted:    prometheus.NewCounter(prometheus.CounterOpts{Name: "tpflow_aggregate_calls_accepted_total", Help: "Calls the engine accepted into open panes."}),
			bad:         prometheus.NewCounter(prometheus.CounterOpts{Name: "tpflow_aggregate_bad_messages_total", Help: "Calls messages that could not be decoded (sent to the DLQ)."}),
			redelivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "tpflow_aggregate_redelivered_messages_total", Help: "Re-delivered calls messages skipped because the engine already holds them."}),
			panes:       prometheus.NewCounter(prometheus.CounterOpts{Name: "tpflow_aggregate_panes_published_total", Help: "Panes produced to the stats topic."}),
		},
		resources: topicMetrics{
			messages:    prometheus.NewCounter(prometheus.CounterOpts{Name: "tpflow_aggregate_metrics_messages_total", Help: "Metrics messages fed to the resource engine."}),
			accepted:    prometheus.NewCounter(prometheus.CounterOpts{Name: "tpflow_aggregate_samples_accepted_total", Help: "Metric samples the resource engine accepted into open panes."}),
			bad:         prometheus.NewCounter(prometheus.CounterOpts{Name: "tpflow_aggregate_metrics_bad_messages_total", Help: "Metrics messages that could not be decoded (sent to the DLQ)."}),
			redelivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "tpflow_aggregate_metrics_redelivered_messages_total", Help: "Re-delivered metrics messages skipped because the resource engine already holds them."}),
			panes:       prometheus.NewCounter(prometheus.CounterOpts{Name: "tpflow_aggregate_resource_panes_published_total", Help: "Resource panes produced to the stats topic."}),
		},
		dropped:        prometheus.NewCounter(prometheus.CounterOpts{Name: "tpflow_aggregate_panes_disowned_total", Help: "Final panes not published because their partition moved to another member."}),
		lateEvents:     prometheus.NewCounter(prometheus.CounterOpts{Name: "tpflow_aggregate_late_events_published_total", Help: "Calls past their pane's grace produced to the late topic, for the late merger."}),
		publishErrors:  prometheus.NewCounter(prometheus.CounterOpts{Name: "tpflow_aggregate_publish_errors_total", Help: "Failed attempts to produce panes (retried on the next flush)."}),
		publishSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tpflow_aggregate_publish_seconds", Help: "Time to produce one flush of panes.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}),
	}
	if reg == nil {
		return m, nil
	}
	mc, mr := &m.calls, &m.resources
	if err := errors.Join(
		promreg.RegisterAll(reg, &mc.messages, &mc.accepted, &mc.bad, &mc.redelivered, &mc.panes, &m.dropped, &m.publishErrors, &m.lateEvents,
			&mr.messages, &mr.bad, &mr.redelivered, &mr.accepted, &mr.panes),
		promreg.RegisterAll(reg, &m.publishSeconds),
	); err != nil {
		return nil, err
	}
	return m, nil
}
