package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
)

// Producer writes messages to one topic and waits for all in-sync replicas
// to acknowledge them. kafka-go has no idempotent producer, so a retried
// request may store a message twice: consumers must be idempotent (pane
// identity, insert identity), which tpflow's are. Producer is safe for
// concurrent use; concurrent Produce calls share requests.
type Producer struct {
	w      *kafkago.Writer
	topic  string
	logger *slog.Logger

	produced prometheus.Counter
	bytes    prometheus.Counter
	errors   prometheus.Counter
}

// PartitionOf returns the partition a Producer's Hash balancer picks for
// key among n partitions, so that a caller can group messages by the
// partition they will land on.
func PartitionOf(key []byte, n int) int {
	if n <= 1 {
		return 0
	}
	parts := make([]int, n)
	for i := range parts {
		parts[i] = i
	}
	return (&kafkago.Hash{}).Balance(kafkago.Message{Key: key}, parts...)
}

// PartitionGroup is the items bound for one partition: their indexes in
// order, and the message key of the first.
type PartitionGroup struct {
	Partition int
	Key       []byte
	Idx       []int
}

// GroupByPartition groups n items, item i keyed key(i), by the partition
// among partitions that PartitionOf picks for the key, in partition order;
// each group keeps its items' order.
func GroupByPartition(n, partitions int, key func(i int) []byte) []PartitionGroup {
	at := map[int]int{} // partition → index in out
	var out []PartitionGroup
	for i := range n {
		k := key(i)
		p := PartitionOf(k, partitions)
		j, ok := at[p]
		if !ok {
			j = len(out)
			at[p] = j
			out = append(out, PartitionGroup{Partition: p, Key: k})
		}
		out[j].Idx = append(out[j].Idx, i)
	}
	slices.SortFunc(out, func(a, b PartitionGroup) int { return a.Partition - b.Partition })
	return out
}

// NewProducer returns a producer for the full topic name topic (use
// cfg.Topic). Messages are spread over partitions by a hash of their key;
// messages with the same key keep their order. A nil logger discards.
func NewProducer(cfg Config, topic string, logger *slog.Logger, opts ...Option) (*Producer, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.checked("create producer"); err != nil {
		return nil, err
	}
	if topic == "" {
		return nil, errors.New("cannot create producer: empty topic")
	}
	codec, _ := compressionCodec(cfg.Compression)
	tr, err := cfg.Transport()
	if err != nil {
		return nil, fmt.Errorf("cannot create producer for %s: %w", topic, err)
	}
	o := applyOptions(opts)
	w := &kafkago.Writer{
		Addr:  kafkago.TCP(cfg.Brokers...),
		Topic: topic,
		// The default balancer is round-robin; Hash keeps one key on one
		// partition so one aggregator owns all of a method's events.
		Balancer:     &kafkago.Hash{},
		RequiredAcks: kafkago.RequireAll,
		Compression:  codec,
		// Messages are already ~1 MiB batches of events, so a request
		// is cut by bytes long before it reaches this count.
		BatchSize:    1000,
		BatchBytes:   int64(cfg.MaxMessageBytes + messageOverhead),
		BatchTimeout: cfg.BatchTimeout,
		WriteTimeout: cfg.WriteTimeout,
		ReadTimeout:  cfg.WriteTimeout,
		MaxAttempts:  5,
		Transport:    tr,
		ErrorLogger:  kafkago.LoggerFunc(func(msg string, args ...any) { logger.Warn("kafka writer: " + fmt.Sprintf(msg, args...)) }),
	}
	return &Producer{
		w:        w,
		topic:    topic,
		logger:   logger,
		produced: o.metrics.producedMessages.WithLabelValues(topic),
		bytes:    o.metrics.producedBytes.WithLabelValues(topic),
		errors:   o.metrics.produceErrors.WithLabelValues(topic),
	}, nil
}

// Topic returns the topic the producer writes to.
func (p *Producer) Topic() string { return p.topic }

// Produce writes msgs and returns once every one of them is acknowledged by
// all in-sync replicas, or with the first error. Messages must not set
// Topic. On error some messages may have been stored: retrying is safe only
// because consumers are idempotent. Produce does not retain msgs after it
// returns.
func (p *Producer) Produce(ctx context.Context, msgs ...kafkago.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := p.w.WriteMessages(ctx, msgs...); err != nil {
		p.errors.Inc()
		var werr kafkago.WriteErrors
		if errors.As(err, &werr) {
			failed := 0
			var first error
			for _, e := range werr {
				if e != nil {
					failed++
					if first == nil {
						first = e
					}
				}
			}
			return fmt.Errorf("cannot produce %d of %d messages to %s: %w", failed, len(msgs), p.topic, first)
		}
		return fmt.Errorf("cannot produce %d messages to %s: %w", len(msgs), p.topic, err)
	}
	n := 0
	for i := range msgs {
		n += len(msgs[i].Value)
	}
	p.produced.Add(float64(len(msgs)))
	p.bytes.Add(float64(n))
	return nil
}

// Close flushes nothing (Produce is synchronous) and releases connections.
func (p *Producer) Close() error {
	if err := p.w.Close(); err != nil {
		return fmt.Errorf("cannot close producer for %s: %w", p.topic, err)
	}
	return nil
}

// CallKey returns the message key of a call event: a stable 64-bit FNV-1a
// hash of (system, app, method), big-endian. The parts are separated by a
// zero byte so that ("ab","c") and ("a","bc") differ.
func CallKey(system, app, method string) []byte {
	return hashKey(system, app, method)
}

// MetricKey returns the message key of a metric sample: a stable 64-bit
// FNV-1a hash of (host, container), big-endian.
func MetricKey(host, container string) []byte {
	return hashKey(host, container)
}

func hashKey(parts ...string) []byte {
	h := fnv.New64a()
	for i, p := range parts {
		if i > 0 {
			h.Write([]byte{0})
		}
		h.Write([]byte(p))
	}
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), h.Sum64())
}
