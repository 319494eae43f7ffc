package collect

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tpflow/tpflow/collectors/logtail"
)

// agentMetrics are the collect role's Prometheus metrics.
type agentMetrics struct {
	lines, truncated, dropped *prometheus.CounterVec
	unparsed, badValues       *prometheus.CounterVec
	calls, logs               prometheus.Counter
	batches, ackedEvents      prometheus.Counter
	produceErrors             prometheus.Counter
	inFlight, files, standby  prometheus.Gauge
	discoverErrors            prometheus.Counter
	tailErrors, saveErrors    prometheus.Counter
	kernelErrors              *prometheus.CounterVec
	kmsgRecords, kmsgBad      prometheus.Counter
	samples, sampleErrors     prometheus.Counter
	watcher                   atomic.Pointer[logtail.Watcher]
}

func newAgentMetrics(reg prometheus.Registerer, a *Agent) *agentMetrics {
	m := &agentMetrics{}
	cv := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tpflow_collect_" + name, Help: help}, labels)
	}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "tpflow_collect_" + name, Help: help})
	}
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: "tpflow_collect_" + name, Help: help})
	}
	m.lines = cv("lines_total", "Lines read from log files, by source.", "source")
	m.truncated = cv("truncated_lines_total", "Lines or records cut at the line limit, by source.", "source")
	m.dropped = cv("dropped_lines_total", "Log lines left out by min_level or sampling, by source.", "source")
	m.unparsed = cv("unparsed_lines_total", "Lines that did not unwrap or parse, by source and reason.", "source", "reason")
	m.badValues = cv("bad_values_total", "Lines naming a call with a value that cannot be right (negative_latency, latency_overflow, not_a_number, invalid_latency, invalid_status, method_too_long, unsafe_label, missing_time, invalid_time, too_old, too_far_future), by source and reason: no call is emitted and the line is kept as a log event flagged with the reason.", "source", "reason")
	m.calls = c("calls_total", "Call events taken from log lines.")
	m.logs = c("log_events_total", "Log events added to batches.")
	m.batches = c("batches_total", "Batches acknowledged by Kafka.")
	m.ackedEvents = c("acked_events_total", "Events in batches acknowledged by Kafka.")
	m.produceErrors = c("produce_errors_total", "Failed attempts to produce a batch (each is retried).")
	m.inFlight = g("queued_batches", "Cut batches waiting for Kafka.")
	m.files = g("files", "Files followed.")
	m.standby = g("standby", "1 while the agent waits for the state lock that another agent on the same state directory holds (a rolling update), else 0.")
	m.discoverErrors = c("discover_errors_total", "Paths refused or unreadable during discovery.")
	m.tailErrors = c("tail_errors_total", "Tailers that stopped on an error (restarted by the next discovery).")
	m.saveErrors = c("save_errors_total", "Failed writes of the state file.")
	m.kernelErrors = cv("kernel_errors_total", "Kernel messages matching an error class (crc, io, ext4, memory).", "class")
	m.kmsgRecords = c("kmsg_records_total", "Kernel log records read.")
	m.kmsgBad = c("kmsg_malformed_total", "Kernel log records that did not parse or were overwritten before they were read.")
	m.samples = c("metric_samples_total", "Metric samples produced.")
	m.sampleErrors = c("metric_errors_total", "Failed readings or produces of metric samples.")
	if reg == nil {
		return m
	}
	stat := func(name, help string, f func(logtail.Stats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tpflow_collect_tail_" + name, Help: help}, func() float64 {
			var n int64
			for _, t := range a.snapshotFiles() {
				n += f(t.t.Stats())
			}
			return float64(n)
		})
	}
	reg.MustRegister(m.lines, m.truncated, m.dropped, m.unparsed, m.badValues, m.calls, m.logs, m.batches, m.ackedEvents,
		m.produceErrors, m.inFlight, m.files, m.standby, m.discoverErrors, m.tailErrors, m.saveErrors, m.kernelErrors,
		m.kmsgRecords, m.kmsgBad, m.samples, m.sampleErrors,
		stat("bytes_total", "Bytes read by running tailers.", func(s logtail.Stats) int64 { return s.Bytes }),
		stat("rotations_total", "Renames or deletions noticed by running tailers.", func(s logtail.Stats) int64 { return s.Rotations }),
		stat("truncations_total", "Copytruncate restarts of running tailers.", func(s logtail.Stats) int64 { return s.Truncations }),
		stat("partial_lines_total", "Lines flushed without a newline by running tailers.", func(s logtail.Stats) int64 { return s.Partial }),
		stat("dropped_bytes_total", "Bytes cut off over-long lines by running tailers.", func(s logtail.Stats) int64 { return s.DroppedBytes }),
		stat("refused_total", "Times the path of a running tailer led out of its source's root (a link planted after discovery) and was not read.", func(s logtail.Stats) int64 { return s.Refused }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tpflow_collect_watch_events_total", Help: "File system events of the shared watcher."}, func() float64 {
			if w := m.watcher.Load(); w != nil {
				return float64(w.Events())
			}
			return 0
		}),
	)
	return m
}
