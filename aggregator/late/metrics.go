package late

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tpflow/tpflow/internal/promreg"
)

type metrics struct {
	paneEvents, rollupEvents prometheus.Counter
	skipped, invalid, bad    prometheus.Counter
	noSource                 prometheus.Counter
	retries                  prometheus.Counter
	sinkWaits                prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "tpflow_sink_late_" + name, Help: help})
	}
	m := &metrics{
		paneEvents:   c("pane_events_merged_total", "Late events merged into stored panes (call_panes)."),
		rollupEvents: c("rollup_events_merged_total", "Late events merged into stored rollups (call_rollups)."),
		skipped:      c("duplicate_events_total", "Late events already in their stored row (a redelivered or re-produced late message): skipped."),
		noSource:     c("no_source_events_total", "Late events without a valid calls partition and offset (not produced by an aggregator): not merged."),
		invalid:      c("invalid_time_events_total", "Late events whose pane start ClickHouse cannot store (before 1970 or after 2106): not merged."),
		bad:          c("dlq_messages_total", "Late messages sent to the DLQ: undecodable, or refused by ClickHouse as invalid."),
		retries:      c("merge_retries_total", "Failed attempts at merging a late message, retried."),
		sinkWaits:    c("sink_waits_total", "Checks that found the sink behind the stats produced before a late message: the merge waited."),
	}
	if reg == nil {
		return m, nil
	}
	if err := promreg.RegisterAll(reg, &m.paneEvents, &m.rollupEvents, &m.skipped, &m.noSource, &m.invalid, &m.bad, &m.retries, &m.sinkWaits); err != nil {
		return nil, err
	}
	return m, nil
}
