package kafka

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tpflow/tpflow/internal/promreg"
)

// Metrics are the Prometheus counters of producers and consumers. One
// Metrics is shared by every producer and consumer of a process; create it
// once with NewMetrics and pass it with WithMetrics.
type Metrics struct {
	producedMessages *prometheus.CounterVec
	producedBytes    *prometheus.CounterVec
	produceErrors    *prometheus.CounterVec
	consumedMessages *prometheus.CounterVec
	consumedBytes    *prometheus.CounterVec
	commits          *prometheus.CounterVec
	commitErrors     *prometheus.CounterVec
	rebalances       *prometheus.CounterVec
	txnCommits       prometheus.Counter
	txnAborts        prometheus.Counter
}

// NewMetrics creates the transport metrics and registers them on reg; a nil
// reg leaves them unregistered. Registering twice on the same registry
// reuses the collectors already there.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{}
	var err error
	vec := func(name, help string, labels ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
		got, rerr := promreg.Register(reg, v)
		if rerr != nil && err == nil {
			err = rerr
		}
		return got
	}
	m.producedMessages = vec("tpflow_kafka_produced_messages_total", "Kafka messages acknowledged by the brokers.", "topic")
	m.producedBytes = vec("tpflow_kafka_produced_bytes_total", "Value bytes of acknowledged Kafka messages, before compression.", "topic")
	m.produceErrors = vec("tpflow_kafka_produce_errors_total", "Produce calls that failed after the client's retries.", "topic")
	m.consumedMessages = vec("tpflow_kafka_consumed_messages_total", "Kafka messages fetched by consumers.", "topic")
	m.consumedBytes = vec("tpflow_kafka_consumed_bytes_total", "Value bytes of fetched Kafka messages.", "topic")
	m.commits = vec("tpflow_kafka_commits_total", "Offset commits that the group coordinator accepted.", "topic")
	m.commitErrors = vec("tpflow_kafka_commit_errors_total", "Offset commits that failed.", "topic")
	m.rebalances = vec("tpflow_kafka_generations_total", "Consumer group generations this process joined.", "group")
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		got, rerr := promreg.Register(reg, c)
		if rerr != nil && err == nil {
			err = rerr
		}
		return got
	}
	m.txnCommits = counter("tpflow_kafka_transactions_committed_total", "Kafka transactions that committed.")
	m.txnAborts = counter("tpflow_kafka_transactions_aborted_total", "Kafka transactions that failed and were aborted.")
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Option configures a Producer, Consumer or GroupConsumer.
type Option func(*options)

type options struct {
	metrics *Metrics
}

// WithMetrics makes the Producer or Consumer count into m.
func WithMetrics(m *Metrics) Option { return func(o *options) { o.metrics = m } }

func applyOptions(opts []Option) options {
	var o options
	for _, f := range opts {
		f(&o)
	}
	if o.metrics == nil {
		o.metrics, _ = NewMetrics(nil)
	}
	return o
}
