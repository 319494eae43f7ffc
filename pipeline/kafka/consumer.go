package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
)

// fetchMaxBytes is the most a consumer asks one fetch to return; it holds
// several maximum-size messages so a fetch is never cut below one message.
func fetchMaxBytes(cfg Config) int {
	n := 4 * (cfg.MaxMessageBytes + messageOverhead)
	if n < 16<<20 {
		n = 16 << 20
	}
	return n
}

// Consumer reads one topic as a member of a consumer group and commits
// offsets only when told to. Every message carries its Partition and
// Offset.
//
// The caller commits a message only after its downstream write (ClickHouse
// insert, stats publish) has succeeded; until then a crash or rebalance
// re-delivers it, which is the at-least-once half of the pipeline's
// delivery contract (the other half is idempotent output). kafka-go's
// Reader has no rebalance callbacks, so a Consumer suits stateless roles
// (sink, alerting); stateful ones that must flush before a partition moves
// use GroupConsumer.
//
// Fetch must be called from one goroutine; Commit may be called from any.
type Consumer struct {
	r      *kafkago.Reader
	topic  string
	group  string
	logger *slog.Logger

	consumed     prometheus.Counter
	bytes        prometheus.Counter
	commits      prometheus.Counter
	commitErrors prometheus.Counter
}

// NewConsumer returns a consumer of the full topic name topic in group
// groupID. A partition with no committed offset starts at its oldest
// message. A nil logger discards.
func NewConsumer(cfg Config, topic, groupID string, logger *slog.Logger, opts ...Option) (*Consumer, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.checked("create consumer"); err != nil {
		return nil, err
	}
	if topic == "" || groupID == "" {
		return nil, fmt.Errorf("cannot create consumer: topic %q and group %q must both be set", topic, groupID)
	}
	d, err := cfg.Dialer()
	if err != nil {
		return nil, fmt.Errorf("cannot create consumer for %s: %w", topic, err)
	}
	o := applyOptions(opts)
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:           cfg.Brokers,
		GroupID:           groupID,
		Topic:             topic,
		Dialer:            d,
		MinBytes:          1,
		MaxBytes:          fetchMaxBytes(cfg),
		MaxWait:           250 * time.Millisecond,
		QueueCapacity:     64,
		CommitInterval:    0, // synchronous: Commit returns after the coordinator accepted
		StartOffset:       kafkago.FirstOffset,
		HeartbeatInterval: cfg.heartbeat(),
		SessionTimeout:    cfg.SessionTimeout,
		RebalanceTimeout:  30 * time.Second,
		JoinGroupBackoff:  time.Second,
		ErrorLogger:       kafkago.LoggerFunc(func(msg string, args ...any) { logger.Warn("kafka reader: " + fmt.Sprintf(msg, args...)) }),
	})
	return &Consumer{
		r:            r,
		topic:        topic,
		group:        groupID,
		logger:       logger,
		consumed:     o.metrics.consumedMessages.WithLabelValues(topic),
		bytes:        o.metrics.consumedBytes.WithLabelValues(topic),
		commits:      o.metrics.commits.WithLabelValues(topic),
		commitErrors: o.metrics.commitErrors.WithLabelValues(topic),
	}, nil
}

// Fetch returns the next message without committing it. It blocks until a
// message arrives or ctx is done.
func (c *Consumer) Fetch(ctx context.Context) (kafkago.Message, error) {
	m, err := c.r.FetchMessage(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return m, ctx.Err()
		}
		return m, fmt.Errorf("cannot fetch from %s as %s: %w", c.topic, c.group, err)
	}
	c.consumed.Inc()
	c.bytes.Add(float64(len(m.Value)))
	return m, nil
}

// Commit marks msgs processed: for each partition the committed offset
// becomes one past the highest offset among msgs. Commit waits for the
// coordinator. Commit in offset order: committing an older message after a
// newer one moves the group back and causes re-delivery.
func (c *Consumer) Commit(ctx context.Context, msgs ...kafkago.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := c.r.CommitMessages(ctx, msgs...); err != nil {
		c.commitErrors.Inc()
		return fmt.Errorf("cannot commit %d messages of %s as %s: %w", len(msgs), c.topic, c.group, err)
	}
	c.commits.Inc()
	return nil
}

// Lag returns how many messages the consumer is behind on the partitions
// it last fetched from, as kafka-go measured it on its last fetch.
func (c *Consumer) Lag() int64 { return c.r.Stats().Lag }

// Close leaves the group and releases connections. Uncommitted messages
// will be delivered again to whichever member gets their partitions.
func (c *Consumer) Close() error {
	if err := c.r.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("cannot close consumer of %s: %w", c.topic, err)
	}
	return nil
}
