package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/internal/promreg"
)

// Header keys the DLQ adds to every dead-lettered message.
const (
	HeaderReason          = "tpflow-reason"
	HeaderReasonClass     = "tpflow-reason-class"
	HeaderSourceTopic     = "tpflow-source-topic"
	HeaderSourcePartition = "tpflow-source-partition"
	HeaderSourceOffset    = "tpflow-source-offset"
)

// ReasonUnknown is the reason class used when the classifier returns none.
const ReasonUnknown = "unknown"

// maxReasonBytes caps the reason header; an error text can embed input.
const maxReasonBytes = 1024

// DLQ sends messages that can never be processed to the dlq topic, with
// the reason and their origin in headers, and counts them in
// tpflow_dlq_messages_total{topic,reason}. DLQ is safe for concurrent use.
type DLQ struct {
	p        *Producer
	classify func(error) string
	counter  *prometheus.CounterVec
	logger   *slog.Logger
	attempts int
	backoff  time.Duration
	// timeout bounds each attempt, so Send as a whole is bounded too.
	timeout time.Duration
	// lastWarn (unix nanoseconds) throttles the warning to one a second.
	lastWarn atomic.Int64
}

// NewDLQ returns a DLQ producing to cfg.Topic(TopicDLQ). classify maps an
// error to a short stable label (truncated, oversized, unknown_version,
// malformed, bad_reference, ...); nil classifies everything as unknown.
// The counter is registered on reg (nil: not registered). A nil logger
// discards.
func NewDLQ(cfg Config, classify func(error) string, reg prometheus.Registerer, logger *slog.Logger, opts ...Option) (*DLQ, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p, err := NewProducer(cfg, cfg.Topic(TopicDLQ), logger, opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot create DLQ: %w", err)
	}
	counter, err := promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tpflow_dlq_messages_total",
		Help: "Messages sent to the dead-letter topic, by source topic and reason class.",
	}, []string{"topic", "reason"}))
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("cannot register DLQ metrics: %w", err)
	}
	return &DLQ{p: p, classify: classify, counter: counter, logger: logger,
		attempts: 3, backoff: 200 * time.Millisecond, timeout: cfg.WriteTimeout}, nil
}

// Class returns the reason class of err as Send labels it.
func (d *DLQ) Class(err error) string {
	c := ""
	if d.classify != nil && err != nil {
		c = d.classify(err)
	}
	return sanitizeClass(c)
}

// sanitizeClass keeps a label short and in [a-z0-9_] so a bad classifier
// cannot explode the metric's cardinality with free text.
func sanitizeClass(c string) string {
	if c == "" {
		return ReasonUnknown
	}
	var b strings.Builder
	for _, r := range strings.ToLower(c) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 32 {
			break
		}
	}
	return b.String()
}

// Send produces src's key and value, its headers and the tpflow-* headers
// to the dlq topic. It tries a bounded number of times and then returns
// the error, so a broken DLQ stalls a consumer for seconds, not forever;
// the caller decides whether to stop or to skip. Send takes at most about
// 3 × write_timeout. The counter rises only
// once the message is acknowledged. Send does not retain src.
func (d *DLQ) Send(ctx context.Context, src kafkago.Message, reason error) error {
	class := d.Class(reason)
	text := "unknown"
	if reason != nil {
		text = reason.Error()
	}
	if len(text) > maxReasonBytes {
		text = text[:maxReasonBytes]
	}
	headers := make([]kafkago.Header, 0, len(src.Headers)+5)
	for _, h := range src.Headers {
		if !strings.HasPrefix(h.Key, "tpflow-") {
			headers = append(headers, h)
		}
	}
	headers = append(headers,
		kafkago.Header{Key: HeaderReason, Value: []byte(text)},
		kafkago.Header{Key: HeaderReasonClass, Value: []byte(class)},
		kafkago.Header{Key: HeaderSourceTopic, Value: []byte(src.Topic)},
		kafkago.Header{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(src.Partition))},
		kafkago.Header{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(src.Offset, 10))},
	)
	msg := kafkago.Message{Key: src.Key, Value: src.Value, Headers: headers, Time: src.Time}

	var err error
	for attempt := 1; attempt <= d.attempts; attempt++ {
		actx, cancel := context.WithTimeout(ctx, d.timeout)
		err = d.p.Produce(actx, msg)
		cancel()
		if err == nil {
			d.counter.WithLabelValues(src.Topic, class).Inc()
			now := time.Now().UnixNano()
			if last := d.lastWarn.Load(); now-last > int64(time.Second) && d.lastWarn.CompareAndSwap(last, now) {
				d.logger.Warn("message sent to DLQ", "topic", src.Topic, "partition", src.Partition,
					"offset", src.Offset, "reason_class", class, "reason", text)
			}
			return nil
		}
		if ctx.Err() != nil || attempt == d.attempts {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(d.backoff * time.Duration(attempt)):
		}
	}
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		err = errors.Join(err, ctx.Err())
	}
	return fmt.Errorf("cannot dead-letter %s/%d@%d (%s): %w", src.Topic, src.Partition, src.Offset, class, err)
}

// Close releases the DLQ's producer.
func (d *DLQ) Close() error { return d.p.Close() }
