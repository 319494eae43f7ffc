package sink

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tpflow/tpflow/internal/promreg"
)

type metrics struct {
	messages, bad, rows *prometheus.CounterVec
	badRecords          *prometheus.CounterVec
	oversized           *prometheus.CounterVec
	flushSeconds        *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		messages:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tpflow_sink_messages_total", Help: "Messages converted into rows, by topic."}, []string{"topic"}),
		bad:          prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tpflow_sink_bad_messages_total", Help: "Messages that could not be converted (sent to the DLQ), by topic."}, []string{"topic"}),
		badRecords:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tpflow_sink_bad_records_total", Help: "Records of a batch that could not be converted or stored, sent to the DLQ one by one while the batch's other records were stored, by topic and kind."}, []string{"topic", "kind"}),
		oversized:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tpflow_sink_oversized_messages_total", Help: "Messages larger than kafka.max_message_bytes, stored all the same, by topic."}, []string{"topic"}),
		rows:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tpflow_sink_rows_total", Help: "Rows inserted and committed, by topic."}, []string{"topic"}),
		flushSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "tpflow_sink_flush_seconds", Help: "Time to insert and commit one batch, by topic.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 9)}, []string{"topic"}),
	}
	if reg == nil {
		return m, nil
	}
	if err := errors.Join(
		promreg.RegisterAll(reg, &m.messages, &m.bad, &m.rows, &m.badRecords, &m.oversized),
		promreg.RegisterAll(reg, &m.flushSeconds),
	); err != nil {
		return nil, err
	}
	return m, nil
}
