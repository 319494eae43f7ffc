package collect

import (
	"context"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/collectors/logtail"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas/codec"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

// ack is the offset up to which one file's lines are in a batch.
type ack struct {
	id  logtail.Identity
	off int64
}

// sendBatch is one cut batch: its messages and what to acknowledge once
// Kafka has them all.
type sendBatch struct {
	calls   []kafkago.Message
	logs    []kafkago.Message
	acks    []ack
	events  int
	kmsgSeq uint64 // highest kernel record sequence in the batch + 1; 0 if none
}

// callKey is the aggregator key of a call without its group and idc,
// which is what calls are partitioned by.
type callKey struct{ system, app, method string }

// callPart builds the calls of one partition of the calls topic.
type callPart struct {
	b   codec.Builder
	key []byte
}

// batcher accumulates the events of every file into one pending batch
// and cuts it by size, count or age onto the bounded send queue. Adding
// blocks while the queue is full: that is the backpressure that stops the
// tailers when Kafka is slow or down. The caller holds mu.
type batcher struct {
	cfg      BatchConfig
	producer string
	logKey   []byte
	q        chan *sendBatch

	logs    codec.Builder
	parts   []callPart
	partOf  map[callKey]int
	balance kafkago.Hash
	pnums   []int
	acks    []ack
	ackOf   map[*fileState]int
	events  int
	first   time.Time
	gen     uint64
	kmsgSeq uint64
	ev      tpflowpb.LogEvent
	flag    [1]string
}

func newBatcher(cfg BatchConfig, nparts int, producer, host string) *batcher {
	b := &batcher{
		cfg: cfg, producer: producer, logKey: kafka.MetricKey(host, ""),
		q:      make(chan *sendBatch, cfg.MaxInFlight),
		parts:  make([]callPart, nparts),
		partOf: map[callKey]int{},
		pnums:  make([]int, nparts),
		ackOf:  map[*fileState]int{},
		gen:    1,
	}
	for i := range b.pnums {
		b.pnums[i] = i
	}
	b.reset()
	return b
}

func (b *batcher) reset() {
	b.logs.Reset()
	b.logs.SetProducer(b.producer)
	for i := range b.parts {
		b.parts[i].b.Reset()
		b.parts[i].b.SetProducer(b.producer)
		b.parts[i].key = nil
	}
	b.acks = nil
	clear(b.ackOf)
	b.events = 0
	b.kmsgSeq = 0
	b.gen++
}

// logEvent is a log line on its way into a batch.
type logEvent struct {
	tsNano    int64
	labels    uint32
	stream    uint32 // symbols of the logs builder
	level     uint32
	message   string // may alias a reusable buffer: AddLog copies it
	source    uint32
	sourceID  uint64
	offset    uint64
	unparsed  bool
	truncated bool
	flag      string // a parse.Reason or ""
}

// addLog adds one log event; it fails only when the message cannot be
// encoded, which the caller prevents by passing valid UTF-8.
func (b *batcher) addLog(e *logEvent) error {
	b.ev = tpflowpb.LogEvent{
		TsUnixNano: e.tsNano, Labels: e.labels, Stream: e.stream,
		Level: e.level, Message: e.message, Source: e.source,
		SourceId: e.sourceID, Offset: e.offset, Unparsed: e.unparsed, Truncated: e.truncated,
	}
	if e.flag != "" {
		b.flag[0] = e.flag
		b.ev.Flags = b.flag[:]
	}
	if err := b.logs.AddLog(&b.ev); err != nil {
		return err
	}
	b.added()
	return nil
}

// partition returns the index and the builder of the calls partition of k.
func (b *batcher) partition(k callKey) (int, *callPart) {
	p, ok := b.partOf[k]
	if !ok {
		if len(b.partOf) >= 1<<16 {
			clear(b.partOf)
		}
		p = b.balance.Balance(kafkago.Message{Key: kafka.CallKey(k.system, k.app, k.method)}, b.pnums...)
		b.partOf[k] = p
	}
	cp := &b.parts[p]
	if cp.key == nil {
		cp.key = kafka.CallKey(k.system, k.app, k.method)
	}
	return p, cp
}

// addCall adds one call with a label set of cp's builder.
func (b *batcher) addCall(cp *callPart, ls uint32, method string, c codec.Call) {
	c.Series = cp.b.Series(ls, method)
	cp.b.AddCall(c)
	b.added()
}

func (b *batcher) added() {
	if b.events == 0 {
		b.first = time.Now()
	}
	b.events++
}

// setAck records that fs's lines up to off (of file id) are in the batch.
func (b *batcher) setAck(fs *fileState, id logtail.Identity, off int64) {
	if i, ok := b.ackOf[fs]; ok && b.acks[i].id.Dev == id.Dev && b.acks[i].id.Ino == id.Ino {
		b.acks[i] = ack{id, off}
		return
	}
	// A file's new identity after a copytruncate or a rename gets its own
	// entry after the old one, so acks stay in file order.
	b.ackOf[fs] = len(b.acks)
	b.acks = append(b.acks, ack{id, off})
}

// recordRoom bounds what one event adds to a builder beyond the bytes of
// its message, method, source path and label names and values: field tags
// and lengths, the fixed fields, a flag, and the symbol and label set
// entries those strings need.
const recordRoom = 512

// fits reports whether a log event needing logBytes and a call needing
// callBytes (0: none) can be added without the logs message or any calls
// message going over the byte budget. The caller cuts the batch first when
// they cannot: a batch is never over budget, so a Kafka message is never
// over kafka.max_message_bytes.
func (b *batcher) fits(logBytes, callBytes int) bool {
	if b.logs.Size()+logBytes > b.cfg.MaxBytes {
		return false
	}
	if callBytes > 0 {
		for i := range b.parts {
			if b.parts[i].key != nil && b.parts[i].b.Size()+callBytes > b.cfg.MaxBytes {
				return false
			}
		}
	}
	return true
}

// empty reports whether the pending batch holds no event.
func (b *batcher) empty() bool { return b.events == 0 }

// full reports whether the batch must be cut now.
func (b *batcher) full() bool {
	if b.events >= b.cfg.MaxEvents || b.logs.Size() >= b.cfg.MaxBytes {
		return true
	}
	for i := range b.parts {
		if b.parts[i].key != nil && b.parts[i].b.Size() >= b.cfg.MaxBytes {
			return true
		}
	}
	return false
}

// old reports whether the pending batch has waited MaxAge.
func (b *batcher) old(now time.Time) bool {
	return (b.events > 0 || len(b.acks) > 0) && now.Sub(b.first) >= b.cfg.MaxAge
}

// cut moves the pending batch onto the send queue, waiting while the
// queue is full until ctx is done. An empty batch with acks only (lines
// that were all sampled away) is queued too, to keep acks in order. When
// ctx ends first the pending batch stays as it was, events and acks, for
// a later cut (the agent's last one as it stops) to send: dropping it
// would lose its lines, as the acks of lines added after it cover them.
// A queue with room takes the batch even when ctx has ended.
func (b *batcher) cut(ctx context.Context) error {
	if b.events == 0 && len(b.acks) == 0 && b.kmsgSeq == 0 {
		return nil
	}
	sb := &sendBatch{acks: b.acks, events: b.events, kmsgSeq: b.kmsgSeq}
	if b.logs.Len() > 0 {
		sb.logs = append(sb.logs, kafkago.Message{Key: b.logKey, Value: b.logs.AppendTo(nil)})
	}
	for i := range b.parts {
		if p := &b.parts[i]; p.key != nil && p.b.Len() > 0 {
			sb.calls = append(sb.calls, kafkago.Message{Key: p.key, Value: p.b.AppendTo(nil)})
		}
	}
	select {
	case b.q <- sb:
	default:
		select {
		case b.q <- sb:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b.reset()
	return nil
}
