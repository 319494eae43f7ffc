package collect

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/collectors/logtail"
	"github.com/tpflow/tpflow/internal/atomicfile"
	"github.com/tpflow/tpflow/pipeline"
	"github.com/tpflow/tpflow/pipeline/kafka"
)

// Transactions group cut batches: one ends batch.max_age after its first
// batch, or once it holds txnBatchesBytes times batch.max_bytes of
// messages, or when the agent stops. The age bound is short on purpose: a
// file's first checkpoint exists only once a transaction with its lines
// commits, and a file renamed away and then missed by a killed collector
// is found again at the restart only through that checkpoint.
const txnBatchesBytes = 4

// txnSuffix names the state file's companion that holds the position of
// the last committed offsets record, where the recovery scan starts.
const txnSuffix = ".txn"

// offsetsRecord is the value of the collector's record in the offsets
// topic, keyed by host: the acknowledged state after the transaction that
// wrote it.
type offsetsRecord struct {
	Version  int                  `json:"version"`
	Host     string               `json:"host"`
	Seq      uint64               `json:"seq"`
	Files    []logtail.Checkpoint `json:"files"`
	KmsgBoot string               `json:"kmsg_boot,omitempty"`
	KmsgNext uint64               `json:"kmsg_next,omitempty"`
}

const offsetsRecordVersion = 1

// txnHint is what the .txn companion holds.
type txnHint struct {
	Pos kafka.Position `json:"pos"`
	Seq uint64         `json:"seq"`
}

// txnState is the agent's view of its committed transactions.
type txnState struct {
	mu   sync.Mutex
	seq  uint64          // sequence number of the last committed offsets record
	hint *kafka.Position // where it is; nil when unknown
}

func (a *Agent) offsetsTopic() string { return a.kcfg.Topic(kafka.TopicCollectOffsets) }

func (a *Agent) transactionalID() string { return "tpflow-collect/" + a.host }

// readHint returns the position saved next to the state file, if any.
func (a *Agent) readHint() *txnHint {
	if a.cfg.StateFile == "" {
		return nil
	}
	b, err := os.ReadFile(a.cfg.StateFile + txnSuffix)
	if err != nil {
		return nil
	}
	var h txnHint
	if json.Unmarshal(b, &h) != nil || h.Pos.Partition < 0 || h.Pos.Offset < 0 {
		return nil
	}
	return &h
}

func (a *Agent) saveHint() error {
	a.txn.mu.Lock()
	var h *txnHint
	if a.txn.hint != nil {
		h = &txnHint{Pos: *a.txn.hint, Seq: a.txn.seq}
	}
	a.txn.mu.Unlock()
	if h == nil || a.cfg.StateFile == "" {
		return nil
	}
	b, _ := json.Marshal(h)
	return atomicfile.Write(a.cfg.StateFile+txnSuffix, b, 0o644)
}

// latestRecord reads the last committed offsets record of this host.
func (a *Agent) latestRecord(ctx context.Context, hint *kafka.Position) (*offsetsRecord, kafka.Position, error) {
	v, pos, found, err := kafka.LatestCommitted(ctx, a.kcfg, a.offsetsTopic(), []byte(a.host), hint)
	if err != nil || !found {
		return nil, pos, err
	}
	var rec offsetsRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, pos, fmt.Errorf("cannot decode offsets record at %d/%d: %w", pos.Partition, pos.Offset, err)
	}
	if rec.Version != offsetsRecordVersion || rec.Host != a.host {
		return nil, pos, fmt.Errorf("cannot use offsets record at %d/%d: version %d of host %q", pos.Partition, pos.Offset, rec.Version, rec.Host)
	}
	for _, cp := range rec.Files {
		if cp.Offset < 0 || cp.FPLen < 0 || cp.FPLen > logtail.FingerprintBytes {
			return nil, pos, fmt.Errorf("cannot use offsets record at %d/%d: bad entry %s@%d", pos.Partition, pos.Offset, cp.Identity, cp.Offset)
		}
	}
	return &rec, pos, nil
}

// recoverOffsets makes the offsets of the last committed transaction the
// acknowledged state, before any file is read. Kafka's record is the
// authority: the state file is saved after the commit, so it is at most
// as new. Without a record (first start, or a state file written by a
// version without transactions) the state file stays in force. It logs
// once what it resumed from.
func (a *Agent) recoverOffsets(ctx context.Context) error {
	h := a.readHint()
	var hint *kafka.Position
	if h != nil {
		hint = &h.Pos
	}
	var (
		rec *offsetsRecord
		pos kafka.Position
		err error
	)
	b := pipeline.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	_, err = pipeline.Retry(ctx, &b, 5, func() error {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var err error
		rec, pos, err = a.latestRecord(rctx, hint)
		return err
	}, func(_ int, pause time.Duration, err error) {
		a.log.Warn("cannot read the committed offsets from Kafka, retrying", "topic", a.offsetsTopic(), "err", err, "retry_in", pause)
	})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	local := len(a.cp.All())
	if rec == nil {
		if err != nil {
			a.log.Warn("resuming from the state file: the committed offsets in Kafka cannot be read; lines after the last saved offsets may be sent twice",
				"state_file", a.cfg.StateFile, "files", local, "topic", a.offsetsTopic(), "err", err)
			return nil
		}
		a.log.Info("resuming from the state file: Kafka holds no committed offsets of this host",
			"state_file", a.cfg.StateFile, "files", local, "topic", a.offsetsTopic())
		return nil
	}
	keep := make(map[[2]uint64]bool, len(rec.Files))
	for _, cp := range rec.Files {
		a.cp.Ack(cp.Identity, cp.Offset)
		keep[[2]uint64{cp.Dev, cp.Ino}] = true
	}
	forgot := 0
	for _, cp := range a.cp.All() {
		if !keep[[2]uint64{cp.Dev, cp.Ino}] {
			a.cp.Forget(cp.Identity) // acknowledged after Kafka's record: not committed
			forgot++
		}
	}
	a.kmsgMu.Lock()
	if rec.KmsgBoot != "" && rec.KmsgBoot == a.kmsgBoot {
		a.kmsgAcked = rec.KmsgNext
	}
	a.kmsgMu.Unlock()
	a.txn.mu.Lock()
	a.txn.seq = rec.Seq
	a.txn.hint = &pos
	a.txn.mu.Unlock()
	from := "the beginning of the partition"
	if hint != nil && hint.Partition == pos.Partition && hint.Offset <= pos.Offset {
		from = fmt.Sprintf("offset %d", hint.Offset)
	}
	a.log.Info("resuming from the offsets committed in Kafka", "topic", a.offsetsTopic(),
		"partition", pos.Partition, "offset", pos.Offset, "seq", rec.Seq, "scanned_from", from,
		"files", len(rec.Files), "state_file_files", local, "dropped_uncommitted", forgot)
	return nil
}

// sendLoop commits the cut batches in transactions, one at a time: the
// calls and logs messages of every batch in a transaction and, last, an
// offsets record holding the acknowledged state once they are in. A
// transaction is opened at its first batch and its messages are produced
// as batches arrive; it is committed batch.max_age later, when it holds
// txnBatchesBytes×max_bytes, or when the queue is closed. Offsets are
// acknowledged, in batch order, only after the commit.
func (a *Agent) sendLoop(ctx context.Context, txp *kafka.TxnProducer) {
	limit := txnBatchesBytes * a.cfg.Batch.MaxBytes
	for {
		first, ok := <-a.b.q
		if !ok {
			return
		}
		group := []*sendBatch{first}
		tx := a.begin(ctx, txp, first)
		size := first.size()
		age := time.NewTimer(a.cfg.Batch.MaxAge)
		closed := false
	collect:
		for size < limit {
			select {
			case sb, ok := <-a.b.q:
				if !ok {
					closed = true
					break collect
				}
				group = append(group, sb)
				if tx != nil {
					tx.Add(ctx, sb.messages(a.kcfg)...)
				}
				size += sb.size()
			case <-age.C:
				break collect
			}
		}
		age.Stop()
		a.m.inFlight.Set(float64(len(a.b.q)))
		if !a.commit(ctx, txp, tx, group) || closed {
			return
		}
	}
}

// begin opens a transaction with sb's messages. A failed Begin returns
// nil: the group's batches are then only collected, and commit starts
// over with all of them.
func (a *Agent) begin(ctx context.Context, txp *kafka.TxnProducer, sb *sendBatch) *kafka.Txn {
	tx, err := txp.Begin()
	if err != nil {
		return nil
	}
	tx.Add(ctx, sb.messages(a.kcfg)...)
	return tx
}

// commit commits group, in tx if tx is not nil, and acknowledges it. A
// failed transaction is aborted and sent again in a new one, with backoff,
// until it commits or ctx is done (false). When the failure leaves the
// outcome unknown (the commit request got no answer), the last committed
// offsets record says whether the transaction made it.
func (a *Agent) commit(ctx context.Context, txp *kafka.TxnProducer, tx *kafka.Txn, group []*sendBatch) bool {
	a.txn.mu.Lock()
	seq := a.txn.seq + 1
	a.txn.mu.Unlock()
	rec := a.nextRecord(group, seq)
	b := pipeline.Backoff{Min: 50 * time.Millisecond, Max: 5 * time.Second}
	for {
		var err error
		if tx == nil {
			tx, err = txp.Begin()
			if err == nil {
				for _, sb := range group {
					tx.Add(ctx, sb.messages(a.kcfg)...)
				}
			}
		}
		if err == nil {
			tx.Add(ctx, rec)
			if testHookBeforeCommit != nil {
				testHookBeforeCommit(ctx, seq, tx)
			}
			var pos []kafka.Position
			pos, err = tx.Commit(ctx)
			tx = nil
			if err == nil {
				a.acked(group, seq, pos[len(pos)-1])
				a.noteCommit()
				return true
			}
		}
		if ctx.Err() != nil {
			return false
		}
		a.noteFailure(err)
		a.m.produceErrors.Inc()
		pause := b.Next()
		a.log.Warn("cannot commit batches to Kafka, sending them again", "batches", len(group), "err", err, "retry_in", pause)
		// Did it commit after all?
		for {
			a.txn.mu.Lock()
			hint := a.txn.hint
			a.txn.mu.Unlock()
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			last, pos, rerr := a.latestRecord(rctx, hint)
			cancel()
			if rerr == nil {
				if last != nil && last.Seq >= seq {
					a.acked(group, seq, pos)
					a.noteCommit()
					return true
				}
				break
			}
			if ctx.Err() != nil {
				return false
			}
			a.log.Warn("cannot read the committed offsets from Kafka, retrying", "err", rerr, "retry_in", pause)
			if b.Wait(ctx, pause) != nil {
				return false
			}
			pause = b.Next()
		}
		if b.Wait(ctx, pause) != nil {
			return false
		}
	}
}

// testHookBeforeCommit, when set (by tests only), is called with every
// transaction's sequence number once all its messages are added, before
// it is committed.
var testHookBeforeCommit func(ctx context.Context, seq uint64, tx *kafka.Txn)

// nextRecord builds the offsets record of the state after group.
func (a *Agent) nextRecord(group []*sendBatch, seq uint64) kafkago.Message {
	next := logtail.NewCheckpoints("")
	for _, cp := range a.cp.All() {
		next.Ack(cp.Identity, cp.Offset)
	}
	a.kmsgMu.Lock()
	kmsgNext, boot := a.kmsgAcked, a.kmsgBoot
	a.kmsgMu.Unlock()
	for _, sb := range group {
		for _, k := range sb.acks {
			next.Ack(k.id, k.off)
		}
		kmsgNext = max(kmsgNext, sb.kmsgSeq)
	}
	r := offsetsRecord{Version: offsetsRecordVersion, Host: a.host, Seq: seq, Files: next.All()}
	if kmsgNext > 0 {
		r.KmsgBoot, r.KmsgNext = boot, kmsgNext
	}
	v, err := json.Marshal(r)
	if err != nil {
		panic("BUG: cannot encode offsets record: " + err.Error())
	}
	return kafkago.Message{Topic: a.offsetsTopic(), Key: []byte(a.host), Value: v}
}

// acked acknowledges the offsets of a committed group, in batch order.
func (a *Agent) acked(group []*sendBatch, seq uint64, pos kafka.Position) {
	for _, sb := range group {
		for _, k := range sb.acks {
			a.cp.Ack(k.id, k.off)
		}
		if sb.kmsgSeq > 0 {
			a.kmsgMu.Lock()
			a.kmsgAcked = max(a.kmsgAcked, sb.kmsgSeq)
			a.kmsgMu.Unlock()
		}
		a.m.batches.Inc()
		a.m.ackedEvents.Add(float64(sb.events))
	}
	a.txn.mu.Lock()
	a.txn.seq = seq
	a.txn.hint = &pos
	a.txn.mu.Unlock()
}

// messages returns the batch's messages with their topics set.
func (sb *sendBatch) messages(k kafka.Config) []kafkago.Message {
	out := make([]kafkago.Message, 0, len(sb.calls)+len(sb.logs))
	for _, m := range sb.calls {
		m.Topic = k.Topic(kafka.TopicCalls)
		out = append(out, m)
	}
	for _, m := range sb.logs {
		m.Topic = k.Topic(kafka.TopicLogs)
		out = append(out, m)
	}
	return out
}

// size is the bytes of the batch's messages.
func (sb *sendBatch) size() int {
	n := 0
	for _, m := range sb.calls {
		n += len(m.Value)
	}
	for _, m := range sb.logs {
		n += len(m.Value)
	}
	return n
}
