// Package sink moves tpflow's Kafka topics into ClickHouse: it consumes
// stats (final call panes into call_panes, resource panes into
// resource_panes), logs, metrics and alerts, converts their events into
// rows, inserts them in batches by size and age, and commits the consumed
// offsets only after the insert succeeded. While ClickHouse is down the
// insert retries and consumption pauses, so nothing is dropped; undecodable
// messages go to the dead-letter topic.
package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/tpflow/tpflow/pipeline"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
)

// Config configures the sink.
type Config struct {
	// GroupID is the consumer group of the sinks.
	GroupID string `yaml:"group_id"`
	// Topics are the topics (without prefix) the sink consumes: stats,
	// logs, metrics, alerts.
	Topics []string `yaml:"topics"`
}

// DefaultConfig returns the defaults: group tpflow-sink, every topic.
func DefaultConfig() Config {
	return Config{
		GroupID: "tpflow-sink",
		Topics:  []string{kafka.TopicStats, kafka.TopicLogs, kafka.TopicMetrics, kafka.TopicAlerts},
	}
}

// Validate reports every impossible value as a *schemas.FieldError.
func (c Config) Validate() error {
	var errs []error
	if c.GroupID == "" {
		errs = append(errs, schemas.Fieldf("group_id", "must not be empty"))
	}
	if len(c.Topics) == 0 {
		errs = append(errs, schemas.Fieldf("topics", "must name at least one topic"))
	}
	seen := map[string]bool{}
	for i, t := range c.Topics {
		if newConverter(t) == nil {
			errs = append(errs, schemas.Fieldf(fmt.Sprintf("topics[%d]", i), "must be stats, logs, metrics or alerts, got %q", t))
		}
		if seen[t] {
			errs = append(errs, schemas.Fieldf(fmt.Sprintf("topics[%d]", i), "%q is listed twice", t))
		}
		seen[t] = true
	}
	return errors.Join(errs...)
}

// Migrate connects to ClickHouse and applies every pending migration. It is
// what `tpflow sink --migrate` runs.
func Migrate(ctx context.Context, ccfg clickhouse.Config, log *slog.Logger) ([]uint32, error) {
	conn, err := clickhouse.Open(ctx, ccfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return clickhouse.Migrate(ctx, conn, ccfg)
}

// Run applies the migrations and then consumes cfg.Topics into ClickHouse
// until ctx is done. Before it returns it tries once more, for a bounded
// time, to insert and commit what it holds; what it cannot is delivered
// again to the next sink.
func Run(ctx context.Context, kcfg kafka.Config, ccfg clickhouse.Config, cfg Config, reg prometheus.Registerer, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("cannot start sink: %w", err)
	}
	conn, err := openMigrated(ctx, ccfg, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := kafka.EnsureTopics(ctx, kcfg); err != nil {
		return fmt.Errorf("cannot start sink: %w", err)
	}
	km, err := kafka.NewMetrics(reg)
	if err != nil {
		return fmt.Errorf("cannot start sink: %w", err)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return fmt.Errorf("cannot start sink: %w", err)
	}
	dlq, err := kafka.NewDLQ(kcfg, codec.Reason, reg, log, kafka.WithMetrics(km))
	if err != nil {
		return err
	}
	defer dlq.Close()
	w := clickhouse.NewWriter(conn, ccfg, log)

	g, gctx := errgroup.WithContext(ctx)
	for _, t := range cfg.Topics {
		c, err := kafka.NewConsumer(kcfg, kcfg.Topic(t), cfg.GroupID, log, kafka.WithMetrics(km))
		if err != nil {
			return err
		}
		defer c.Close()
		l := &loop{
			topic: t, c: c, conv: newConverter(t), w: w, dlq: dlq, log: log, m: m,
			maxRows: ccfg.BatchRows, maxAge: ccfg.BatchAge, maxBytes: kcfg.MaxMessageBytes,
			dec: codec.DecodeOptions{MaxBytes: math.MaxInt, KeepBadRecords: true},
		}
		g.Go(func() error { return l.run(gctx) })
	}
	return g.Wait()
}

// openMigrated is clickhouse.OpenMigrated with the error of this role.
func openMigrated(ctx context.Context, ccfg clickhouse.Config, log *slog.Logger) (driver.Conn, error) {
	c, err := clickhouse.OpenMigrated(ctx, ccfg, log)
	if err != nil {
		return nil, fmt.Errorf("cannot start sink: %w", err)
	}
	return c, nil
}

// fetchRetry is the pause after a failed fetch before the next.
const fetchRetry = time.Second

// finalFlushTimeout bounds the last insert when ctx is done.
const finalFlushTimeout = 10 * time.Second

// loop consumes one topic.
type loop struct {
	topic   string
	c       *kafka.Consumer
	conv    converter
	w       *clickhouse.Writer
	dlq     *kafka.DLQ
	log     *slog.Logger
	m       *metrics
	maxRows int
	maxAge  time.Duration
	// maxBytes is kafka.max_message_bytes: a larger message is counted
	// but stored.
	maxBytes int
	dec      codec.DecodeOptions

	batch  codec.Batch
	msgs   []kafkago.Message // consumed since the last commit, in order
	oldest time.Time         // when the first row of the buffer arrived
}

func (l *loop) run(ctx context.Context) error {
	for {
		fctx, cancel := ctx, context.CancelFunc(func() {})
		if len(l.msgs) > 0 {
			fctx, cancel = context.WithDeadline(ctx, l.oldest.Add(l.maxAge))
		}
		msg, err := l.c.Fetch(fctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				fl, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalFlushTimeout)
				defer cancel()
				if err := l.flush(fl); err != nil {
					l.log.Warn("cannot flush on shutdown; the messages will be delivered again", "topic", l.topic, "err", err)
				}
				return nil
			}
			if errors.Is(err, context.DeadlineExceeded) {
				if err := l.flush(ctx); err != nil {
					return l.stopErr(ctx, err)
				}
				continue
			}
			// The broker is away (an outage, a restart): the reader
			// reconnects on the next fetch, so wait and carry on.
			l.log.Warn("cannot consume, retrying", "topic", l.topic, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(fetchRetry):
			}
			continue
		}
		if len(l.msgs) == 0 {
			l.oldest = time.Now()
		}
		l.msgs = append(l.msgs, msg)
		if err := l.add(ctx, msg); err != nil {
			return l.stopErr(ctx, err)
		}
		if l.conv.rows() >= l.maxRows || time.Since(l.oldest) >= l.maxAge {
			if err := l.flush(ctx); err != nil {
				return l.stopErr(ctx, err)
			}
		}
	}
}

// stopErr turns an error caused by shutdown into a clean return.
func (l *loop) stopErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// add converts msg into buffered rows. A message that does not decode as
// a batch (its symbols, label sets or framing broken) goes to the DLQ
// whole; a batch with records that do not convert has its other records
// buffered and only those records dead-lettered. A message larger than
// kafka.max_message_bytes is decoded all the same (it is in memory
// already) and counted.
func (l *loop) add(ctx context.Context, msg kafkago.Message) error {
	if len(msg.Value) > l.maxBytes {
		l.m.oversized.WithLabelValues(l.topic).Inc()
	}
	if err := l.dec.Decode(msg.Value, &l.batch); err != nil {
		l.m.bad.WithLabelValues(l.topic).Inc()
		return l.dlq.Send(ctx, msg, pipeline.Permanent(err))
	}
	if err := l.sendBad(ctx, l.conv.add(&l.batch, len(l.msgs)-1)); err != nil {
		return err
	}
	l.m.messages.WithLabelValues(l.topic).Inc()
	return nil
}

// DLQ headers of a dead-lettered record (besides the DLQ's own, which name
// the source topic, partition and offset of its batch).
const (
	HeaderRecordKind  = "dlq-record-kind"  // log, metric, pane, resource_pane, alert
	HeaderRecordIndex = "dlq-record-index" // index among the batch's records of that kind
)

// sendBad dead-letters records one by one: each DLQ message holds the
// record's encoded bytes (its symbol and label references point into the
// source batch, which the headers locate), or for a metric a batch of its
// own.
func (l *loop) sendBad(ctx context.Context, bad []badRecord) error {
	for _, r := range bad {
		src := l.msgs[r.msg]
		m := src
		m.Value = r.raw
		m.Headers = append(append([]kafkago.Header(nil), src.Headers...),
			kafkago.Header{Key: HeaderRecordKind, Value: []byte(r.kind)},
			kafkago.Header{Key: HeaderRecordIndex, Value: []byte(strconv.Itoa(r.rec))})
		l.m.badRecords.WithLabelValues(l.topic, r.kind).Inc()
		if err := l.dlq.Send(ctx, m, pipeline.Permanent(fmt.Errorf("%s %d of the batch: %w", r.kind, r.rec, r.err))); err != nil {
			return err
		}
	}
	return nil
}

// flush inserts the buffered rows and then commits the buffered messages.
func (l *loop) flush(ctx context.Context) error {
	if len(l.msgs) == 0 {
		return nil
	}
	start := time.Now()
	n := l.conv.rows()
	bad, err := l.conv.write(ctx, l.w)
	if err != nil {
		return fmt.Errorf("cannot insert %d rows from %s: %w", n, l.topic, err)
	}
	// Rows ClickHouse refuses send their records to the DLQ; the other
	// rows are stored.
	if err := l.sendBad(ctx, bad); err != nil {
		return err
	}
	if err := l.c.Commit(ctx, l.msgs...); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("cannot commit %s after inserting %d rows: %w", l.topic, n, err)
		}
		// The rows are stored. A failed commit (the broker restarting, a
		// rebalance) only means the messages come again, and their rows
		// replace themselves: carry on rather than stop the sink.
		l.log.Warn("cannot commit after insert; the messages will be delivered again and replace their rows",
			"topic", l.topic, "rows", n, "err", err)
	}
	l.m.rows.WithLabelValues(l.topic).Add(float64(n))
	l.m.flushSeconds.WithLabelValues(l.topic).Observe(time.Since(start).Seconds())
	clear(l.msgs)
	l.msgs = l.msgs[:0]
	l.conv.reset()
	return nil
}
