package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
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

// groupBalancers are the eager balancers every tpflow group member
// offers. They are the protocols kafka-go's members offer too, so members
// of both kinds can share a group during an upgrade; franz-go's default,
// cooperative-sticky, would make the join fail with
// InconsistentGroupProtocol.
func groupBalancers() kgo.Opt {
	return kgo.Balancers(kgo.RangeBalancer(), kgo.RoundRobinBalancer())
}

// Consumer reads one topic as a member of a consumer group and commits
// offsets only when told to. Every message carries its Partition, Offset
// and the partition's HighWaterMark as of the fetch it came in.
//
// It reads with isolation level read_committed: records of an aborted
// transaction are never returned, and records of an open one only once it
// commits. (kafka-go decodes a fetch's list of aborted transactions and
// drops it, so its readers hand out aborted records; consumers are built on
// franz-go's kgo for that reason, see DESIGN.md.)
//
// The caller commits a message only after its downstream write (ClickHouse
// insert, stats publish) has succeeded; until then a crash or rebalance
// re-delivers it, which is the at-least-once half of the pipeline's
// delivery contract (the other half is idempotent output). A Consumer has
// no rebalance callbacks, so it suits stateless roles (sink, alerting);
// stateful ones that must flush before a partition moves use
// GroupConsumer.
//
// Fetch must be called from one goroutine; Commit may be called from any.
type Consumer struct {
	cl     *kgo.Client
	topic  string
	group  string
	logger *slog.Logger

	buf []kafkago.Message // fetched, not yet returned
	lag atomic.Int64

	closeOnce sync.Once
	closed    chan struct{}
	warned    time.Time

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
	kopts, err := cfg.kgoOptions(logger)
	if err != nil {
		return nil, fmt.Errorf("cannot create consumer for %s: %w", topic, err)
	}
	kopts = append(kopts,
		kgo.ConsumerGroup(groupID),
		kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		groupBalancers(),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.HeartbeatInterval(cfg.heartbeat()),
		kgo.RebalanceTimeout(30*time.Second),
	)
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, fmt.Errorf("cannot create consumer for %s: %w", topic, err)
	}
	o := applyOptions(opts)
	return &Consumer{
		cl:           cl,
		topic:        topic,
		group:        groupID,
		logger:       logger,
		closed:       make(chan struct{}),
		consumed:     o.metrics.consumedMessages.WithLabelValues(topic),
		bytes:        o.metrics.consumedBytes.WithLabelValues(topic),
		commits:      o.metrics.commits.WithLabelValues(topic),
		commitErrors: o.metrics.commitErrors.WithLabelValues(topic),
	}, nil
}

// Fetch returns the next message without committing it. It blocks until a
// message arrives or ctx is done.
func (c *Consumer) Fetch(ctx context.Context) (kafkago.Message, error) {
	for len(c.buf) == 0 {
		select {
		case <-c.closed:
			return kafkago.Message{}, fmt.Errorf("cannot fetch from %s as %s: %w", c.topic, c.group, kgo.ErrClientClosed)
		default:
		}
		fs := c.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return kafkago.Message{}, ctx.Err()
		}
		if fs.IsClientClosed() {
			return kafkago.Message{}, fmt.Errorf("cannot fetch from %s as %s: %w", c.topic, c.group, kgo.ErrClientClosed)
		}
		fs.EachError(func(t string, p int32, err error) {
			// The client retries fetch errors itself; they are worth
			// a warning now and then, not an exit.
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return
			}
			if time.Since(c.warned) > time.Minute {
				c.warned = time.Now()
				c.logger.Warn("cannot fetch, retrying", "topic", t, "partition", p, "group", c.group, "err", err)
			}
		})
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			for _, r := range p.Records {
				c.buf = append(c.buf, toMessage(r, p.HighWatermark))
			}
			if n := len(p.Records); n > 0 {
				c.lag.Store(max(0, p.HighWatermark-(p.Records[n-1].Offset+1)))
			}
		})
	}
	m := c.buf[0]
	c.buf[0] = kafkago.Message{}
	c.buf = c.buf[1:]
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
	offs := map[int32]kgo.EpochOffset{}
	for _, m := range msgs {
		if next := m.Offset + 1; next > offs[int32(m.Partition)].Offset {
			offs[int32(m.Partition)] = kgo.EpochOffset{Epoch: -1, Offset: next}
		}
	}
	if err := commitSync(ctx, c.cl, c.topic, offs); err != nil {
		c.commitErrors.Inc()
		return fmt.Errorf("cannot commit %d messages of %s as %s: %w", len(msgs), c.topic, c.group, err)
	}
	c.commits.Inc()
	return nil
}

// commitSync commits offs of topic with cl's current group generation and
// returns the first error of the request or of any partition.
func commitSync(ctx context.Context, cl *kgo.Client, topic string, offs map[int32]kgo.EpochOffset) error {
	var rerr error
	cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{topic: offs},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				rerr = err
				return
			}
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if err := kerr.ErrorForCode(p.ErrorCode); err != nil && rerr == nil {
						rerr = fmt.Errorf("partition %d: %w", p.Partition, err)
					}
				}
			}
		})
	return rerr
}

// Lag returns how many messages the consumer was behind, on the partition
// of its last fetched message, when that message was fetched: the
// partition's high watermark minus the message's next offset.
func (c *Consumer) Lag() int64 { return c.lag.Load() }

// Close leaves the group and releases connections. Uncommitted messages
// will be delivered again to whichever member gets their partitions.
func (c *Consumer) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.cl.Close()
	})
	return nil
}
