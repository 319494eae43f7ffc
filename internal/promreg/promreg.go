// Package promreg registers tpflow's Prometheus collectors and states how
// they are named.
//
// # Names
//
// Every metric is named tpflow_<owner>_<what>[_<unit>][_total]:
//
//   - A role's own metrics carry the role's name: tpflow_collect_,
//     tpflow_aggregate_, tpflow_sink_, tpflow_alert_, tpflow_api_ and
//     tpflow_broker_. The parts a role runs inside it keep the role's
//     prefix and add their own word: the resource engine of the aggregate
//     role is tpflow_aggregate_resource_, the late merger of the sink role
//     tpflow_sink_late_.
//   - Library code that several roles run keeps one prefix wherever it
//     runs, because it measures the same thing in each: the Kafka transport
//     is tpflow_kafka_, the dead-letter queue tpflow_dlq_, the HTTP
//     server's authentication tpflow_http_. The aggregation
//     engine, run by the aggregate and the alert roles, takes the prefix of
//     the role that runs it (aggregator.WithMetrics).
//   - Development tools (the demo generator of tpflow run) are tpflow_demo_.
//
// Names follow the Prometheus conventions that `promtool check metrics`
// enforces: base units (seconds, bytes), _total on counters and only
// there, and no metric type in the name.
//
// A renamed metric is listed in the README's "Metric renames" table for
// one release.
package promreg

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c with reg and returns it. When reg already holds a
// collector of the same description (a part started again in the same
// process), that collector is returned instead, so that both count into
// one series. A nil reg registers nothing and returns c. Any other
// registration error is returned with c.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if reg == nil {
		return c, nil
	}
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

// MustRegister is Register for collectors whose descriptions are fixed in
// the code, where any error other than a duplicate is a programming error:
// it panics on it.
func MustRegister[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	got, err := Register(reg, c)
	if err != nil {
		panic("BUG: cannot register metric: " + err.Error())
	}
	return got
}

// RegisterAll registers every collector of cs with reg through Register,
// replacing each with the collector reg already holds where there is one.
// It returns the first error other than a duplicate.
func RegisterAll[C prometheus.Collector](reg prometheus.Registerer, cs ...*C) error {
	var first error
	for _, c := range cs {
		got, err := Register(reg, *c)
		if err != nil && first == nil {
			first = err
		}
		*c = got
	}
	return first
}
