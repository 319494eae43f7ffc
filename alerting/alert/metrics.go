package alert

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tpflow/tpflow/internal/promreg"
)

// MetricsPrefix starts the names of the alert role's metrics, those of its
// aggregation engine included.
const MetricsPrefix = "tpflow_alert_"

// metrics are the alert role's Prometheus metrics.
type metrics struct {
	reg         prometheus.Registerer
	messages    prometheus.Counter
	badMessages prometheus.Counter
	panes       *prometheus.CounterVec
	reloads     *prometheus.CounterVec
	rules       prometheus.Gauge
	evaluations prometheus.Counter
	notified    prometheus.Counter
	logMessages *prometheus.CounterVec
	logLines    prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		reg: reg,
		messages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tpflow_alert_stats_messages_total", Help: "Stats messages read by the alert role.",
		}),
		badMessages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tpflow_alert_stats_bad_messages_total", Help: "Stats messages the alert role sent to the DLQ.",
		}),
		panes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tpflow_alert_panes_total",
			Help: "Final panes read from stats, by result: added to the windows, resource (a resource pane a resource measure reads), rollup (a 5-minute rollup, skipped), stale (older than every window) or rejected (other pane length).",
		}, []string{"result"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tpflow_alert_rule_loads_total", Help: "Loads of the alert rules files, by result (ok or error).",
		}, []string{"result"}),
		rules: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tpflow_alert_rules", Help: "Alert rules in force.",
		}),
		evaluations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tpflow_alert_evaluations_total", Help: "Evaluations of the alert rules.",
		}),
		notified: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tpflow_alert_notifications_total", Help: "Alerts handed to the senders.",
		}),
		logMessages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tpflow_alert_log_messages_total", Help: "Logs messages read by the alert role, by result (ok, or bad: skipped in part or whole).",
		}, []string{"result"}),
		logLines: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tpflow_alert_log_lines_total", Help: "Log lines the alert role matched against its log rules.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	if err := errors.Join(
		promreg.RegisterAll(reg, &m.messages, &m.badMessages, &m.evaluations, &m.notified, &m.logLines),
		promreg.RegisterAll(reg, &m.panes, &m.reloads, &m.logMessages),
		promreg.RegisterAll(reg, &m.rules),
	); err != nil {
		return nil, err
	}
	return m, nil
}

// sender registers the counters of one notification sender.
func (m *metrics) sender(name string, sent, failed, dropped func() uint64) {
	if m.reg == nil {
		return
	}
	labels := prometheus.Labels{"receiver": name}
	for _, c := range []struct {
		name, help string
		f          func() uint64
	}{
		{"tpflow_alert_sent_total", "Alerts or webhook messages a receiver accepted.", sent},
		{"tpflow_alert_send_failures_total", "Alerts or webhook messages a receiver did not accept.", failed},
		{"tpflow_alert_dropped_total", "Alerts dropped because a sender's queue was full.", dropped},
	} {
		f := c.f
		// Registration fails only for a duplicate receiver name, which
		// newSenders never produces.
		_, _ = promreg.Register(m.reg, prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: c.name, Help: c.help, ConstLabels: labels,
		}, func() float64 { return float64(f()) }))
	}
}

// logCounter registers the log counter's drop counters.
func (m *metrics) logCounter(c interface {
	Late() uint64
	Dropped() uint64
}) {
	if m.reg == nil {
		return
	}
	_, _ = promreg.Register(m.reg, prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "tpflow_alert_log_lines_late_total", Help: "Log lines older than every log rule's window when they arrived.",
	}, func() float64 { return float64(c.Late()) }))
	_, _ = promreg.Register(m.reg, prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "tpflow_alert_log_lines_dropped_total", Help: "Log lines not counted because a rule had its most groups.",
	}, func() float64 { return float64(c.Dropped()) }))
}
