package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TopicCollectOffsets is the topic (without prefix) where collectors keep
// their file checkpoints, written in the same transaction as the events
// they cover. EnsureTopics creates it with CollectOffsetsPartitions
// partitions and, where the broker supports it, compaction.
const TopicCollectOffsets = "collect.offsets"

// CollectOffsetsPartitions is the partition count of the offsets topic.
const CollectOffsetsPartitions = 4

// TxnTimeout is the transaction timeout of a TxnProducer: a transaction
// that is neither committed nor aborted this long after its first record
// is aborted by the broker. It bounds how long a producer that died in a
// transaction holds read_committed consumers of the partitions it wrote.
const TxnTimeout = 10 * time.Second

// Position is where a record is stored.
type Position struct {
	Partition int   `json:"partition"`
	Offset    int64 `json:"offset"`
}

// TxnProducer writes messages in Kafka transactions: idempotent, acks from
// all in-sync replicas, and all the messages of a transaction visible to
// read_committed consumers together, or none of them. Its transactional
// ID names the producer across restarts: a new TxnProducer with the same
// ID fences the old one (its open transaction is aborted and it can no
// longer commit). Messages keep kafka-go's Hash placement by key.
//
// One transaction runs at a time: Begin, Add, then Commit or Abort, from
// one goroutine.
type TxnProducer struct {
	cfg    Config
	id     string
	logger *slog.Logger
	cl     *kgo.Client

	produced prometheus.Counter
	bytes    prometheus.Counter
	errors   prometheus.Counter
	commits  prometheus.Counter
	aborts   prometheus.Counter
}

// NewTxnProducer returns a transactional producer with the given
// transactional ID. It connects on the first Begin. A nil logger discards.
func NewTxnProducer(cfg Config, transactionalID string, logger *slog.Logger, opts ...Option) (*TxnProducer, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.checked("create transactional producer"); err != nil {
		return nil, err
	}
	if transactionalID == "" {
		return nil, errors.New("cannot create transactional producer: empty transactional ID")
	}
	if _, err := cfg.kgoOptions(logger); err != nil {
		return nil, fmt.Errorf("cannot create transactional producer %s: %w", transactionalID, err)
	}
	o := applyOptions(opts)
	const label = "transactions"
	return &TxnProducer{
		cfg: cfg, id: transactionalID, logger: logger,
		produced: o.metrics.producedMessages.WithLabelValues(label),
		bytes:    o.metrics.producedBytes.WithLabelValues(label),
		errors:   o.metrics.produceErrors.WithLabelValues(label),
		commits:  o.metrics.txnCommits,
		aborts:   o.metrics.txnAborts,
	}, nil
}

func (p *TxnProducer) client() (*kgo.Client, error) {
	if p.cl != nil {
		return p.cl, nil
	}
	kopts, err := p.cfg.kgoOptions(p.logger)
	if err != nil {
		return nil, err
	}
	kopts = append(kopts,
		kgo.TransactionalID(p.id),
		kgo.TransactionTimeout(TxnTimeout),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(hashPartitioner{}),
		kgo.ProducerBatchCompression(compressionKgo(p.cfg.Compression)),
		kgo.ProducerLinger(p.cfg.BatchTimeout),
		kgo.RecordDeliveryTimeout(p.cfg.WriteTimeout),
		kgo.ProduceRequestTimeout(p.cfg.WriteTimeout),
	)
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, err
	}
	p.cl = cl
	return cl, nil
}

// Txn is one open transaction of a TxnProducer.
type Txn struct {
	p   *TxnProducer
	cl  *kgo.Client
	wg  sync.WaitGroup
	mu  sync.Mutex
	err error
	pos []Position
	n   int

	first time.Time // when the first message was added
}

// Begin opens a transaction.
func (p *TxnProducer) Begin() (*Txn, error) {
	cl, err := p.client()
	if err != nil {
		return nil, fmt.Errorf("cannot begin transaction of %s: %w", p.id, err)
	}
	if err := cl.BeginTransaction(); err != nil {
		p.reset()
		return nil, fmt.Errorf("cannot begin transaction of %s: %w", p.id, err)
	}
	return &Txn{p: p, cl: cl}, nil
}

// Add produces msgs into the transaction without waiting. Every message
// must set Topic (a full topic name). Their positions are returned by
// Commit in the order they were added. Add does not retain msgs, but
// keeps their Key and Value until Commit or Abort returns.
func (t *Txn) Add(ctx context.Context, msgs ...kafkago.Message) {
	if t.first.IsZero() && len(msgs) > 0 {
		t.first = time.Now()
	}
	for _, m := range msgs {
		i := t.n
		t.n++
		t.mu.Lock()
		t.pos = append(t.pos, Position{Partition: -1, Offset: -1})
		t.mu.Unlock()
		t.wg.Add(1)
		t.cl.Produce(ctx, toRecord(m.Topic, m), func(r *kgo.Record, err error) {
			defer t.wg.Done()
			t.mu.Lock()
			defer t.mu.Unlock()
			if err != nil {
				if t.err == nil {
					t.err = fmt.Errorf("cannot produce to %s: %w", r.Topic, err)
				}
				return
			}
			t.pos[i] = Position{Partition: int(r.Partition), Offset: r.Offset}
		})
		t.p.produced.Inc()
		t.p.bytes.Add(float64(len(m.Value)))
	}
}

// Flush waits until every added message is on the broker (not yet
// visible to read_committed consumers). An error is reported again by
// Commit.
func (t *Txn) Flush(ctx context.Context) error {
	return t.cl.Flush(ctx)
}

// Commit waits for every added message and commits the transaction. The
// wait ends at the transaction timeout (counted from the first Add): by
// then the broker aborts the transaction anyway. On any error the
// transaction is aborted, the producer reconnects on the
// next Begin (fencing whatever the failed client left open), and the
// messages must be sent again in a new transaction. An error from the
// commit request itself leaves the outcome unknown: the caller finds out
// what committed from the data (see the collector's offsets record).
func (t *Txn) Commit(ctx context.Context) ([]Position, error) {
	fctx, cancel := context.WithDeadline(ctx, t.first.Add(TxnTimeout))
	if t.first.IsZero() {
		fctx, cancel = context.WithTimeout(ctx, TxnTimeout)
	}
	ferr := t.cl.Flush(fctx)
	cancel()
	if ferr != nil {
		// Records still buffered fail when the client closes.
		t.p.reset()
	}
	t.wg.Wait()
	t.mu.Lock()
	err := t.err
	t.mu.Unlock()
	if ferr != nil && err == nil {
		err = fmt.Errorf("cannot flush transaction: %w", ferr)
	}
	if err == nil {
		ectx, cancel := context.WithTimeout(ctx, t.p.cfg.WriteTimeout)
		err = t.cl.EndTransaction(ectx, kgo.TryCommit)
		cancel()
		if err == nil {
			t.p.commits.Inc()
			return t.pos, nil
		}
		err = fmt.Errorf("cannot commit transaction: %w", err)
	}
	t.p.errors.Inc()
	t.abort()
	return nil, fmt.Errorf("transaction of %s with %d messages aborted: %w", t.p.id, t.n, err)
}

// Abort aborts the transaction.
func (t *Txn) Abort() {
	t.abort()
}

func (t *Txn) abort() {
	t.p.aborts.Inc()
	if t.p.cl == t.cl {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := t.cl.AbortBufferedRecords(ctx); err == nil {
			if err := t.cl.EndTransaction(ctx, kgo.TryAbort); err == nil {
				t.wg.Wait()
				return
			}
		}
		t.p.reset()
	}
	t.wg.Wait()
}

// reset closes the client; the next Begin connects again, and its
// InitProducerID fences the old producer epoch.
func (p *TxnProducer) reset() {
	if p.cl != nil {
		p.cl.Close()
		p.cl = nil
	}
}

// Close releases the connections. An open transaction is aborted by the
// broker when it times out, or at once by the next producer with the same
// transactional ID.
func (p *TxnProducer) Close() error {
	p.reset()
	return nil
}

// LatestCommitted returns the last committed record with key in topic,
// read with isolation level read_committed from the partition that
// kafka-go's Hash places key on. It reads from hint (the position of an
// earlier record with that key; a hint on another partition, or outside
// the partition's log, is ignored) to the partition's last stable offset
// as of the call. found is false when no such record exists.
func LatestCommitted(ctx context.Context, cfg Config, topic string, key []byte, hint *Position) (value []byte, pos Position, found bool, err error) {
	if err := cfg.checked("read committed record"); err != nil {
		return nil, pos, false, err
	}
	parts, err := TopicPartitions(ctx, cfg, topic)
	if err != nil {
		return nil, pos, false, err
	}
	n, ok := parts[topic]
	if !ok {
		return nil, pos, false, fmt.Errorf("cannot read %s: no such topic", topic)
	}
	part := int32(hashPartition(key, n))
	kopts, err := cfg.kgoOptions(slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, pos, false, err
	}
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return nil, pos, false, fmt.Errorf("cannot read %s: %w", topic, err)
	}
	start, end, err := stableRange(ctx, cl, topic, part)
	cl.Close()
	if err != nil {
		return nil, pos, false, err
	}
	from := start
	if hint != nil && int32(hint.Partition) == part && hint.Offset >= start && hint.Offset < end {
		from = hint.Offset
	}
	if from >= end {
		return nil, pos, false, nil
	}
	kopts = append(kopts,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {part: kgo.NewOffset().At(from)}}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Control records (transaction markers) are returned so the
		// read knows when it has passed the end offset even when the
		// last records before it are a marker.
		kgo.KeepControlRecords(),
	)
	cl, err = kgo.NewClient(kopts...)
	if err != nil {
		return nil, pos, false, fmt.Errorf("cannot read %s: %w", topic, err)
	}
	defer cl.Close()
	next := from
	for next < end {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return value, pos, found, fmt.Errorf("cannot read %s/%d from %d to %d (at %d): %w", topic, part, from, end, next, err)
		}
		if fs.IsClientClosed() {
			return value, pos, found, fmt.Errorf("cannot read %s/%d: %w", topic, part, kgo.ErrClientClosed)
		}
		fs.EachRecord(func(r *kgo.Record) {
			next = max(next, r.Offset+1)
			if r.Attrs.IsControl() || r.Offset >= end || !bytes.Equal(r.Key, key) {
				return
			}
			value, pos, found = r.Value, Position{Partition: int(r.Partition), Offset: r.Offset}, true
		})
	}
	return value, pos, found, nil
}

// stableRange returns the log start offset and the last stable offset of a
// partition.
func stableRange(ctx context.Context, cl *kgo.Client, topic string, part int32) (start, end int64, err error) {
	ask := func(ts int64) (int64, error) {
		req := kmsg.NewPtrListOffsetsRequest()
		req.ReplicaID = -1
		req.IsolationLevel = 1 // read_committed: the last stable offset
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = part
		rp.Timestamp = ts
		rp.CurrentLeaderEpoch = -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return 0, err
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if p.Partition != part {
					continue
				}
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					return 0, err
				}
				return p.Offset, nil
			}
		}
		return 0, errors.New("partition missing from the answer")
	}
	if start, err = ask(-2); err != nil {
		return 0, 0, fmt.Errorf("cannot list the start offset of %s/%d: %w", topic, part, err)
	}
	if end, err = ask(-1); err != nil {
		return 0, 0, fmt.Errorf("cannot list the stable offset of %s/%d: %w", topic, part, err)
	}
	return start, end, nil
}
