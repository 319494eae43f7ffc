package aggregate

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/aggregator/resource"
	"github.com/tpflow/tpflow/pipeline"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas/codec"
)

// engine is what a groupHandler needs of an engine whose final panes are
// of type P.
type engine[P any] interface {
	// Ingest feeds the batch read at offset of partition and returns how
	// many of its events were accepted into open panes.
	Ingest(partition int32, offset int64, b *codec.Batch) int
	// Flush returns the final panes, the offsets that may be committed
	// once they and the late events are published, and the events that
	// arrived past their pane's grace.
	Flush() ([]P, map[int32]int64, []aggregator.LateEvent)
	// RemovePartition forgets a partition this member no longer owns.
	RemovePartition(partition int32)
	// HighWaterMark reports a partition's high-water mark, from its
	// latest message: a partition with a backlog is never idle.
	HighWaterMark(partition int32, hwm int64)
	// Fetched reports a fetch response of a partition, with or without
	// messages, and its high-water mark: a caught-up partition is idle
	// only while its fetches succeed.
	Fetched(partition int32, hwm int64)
}

// callsEngine adapts an aggregator.Engine to engine.
type callsEngine struct{ *aggregator.Engine }

func (e callsEngine) Ingest(partition int32, offset int64, b *codec.Batch) int {
	return e.Engine.Ingest(partition, offset, b).Accepted
}

func (e callsEngine) Flush() ([]aggregator.PaneStat, map[int32]int64, []aggregator.LateEvent) {
	return e.Engine.FlushLate()
}

// resourceEngine adapts a resource.Engine to engine.
type resourceEngine struct{ *resource.Engine }

func (e resourceEngine) Ingest(partition int32, offset int64, b *codec.Batch) int {
	return e.Engine.Ingest(partition, offset, b).Accepted
}

func (e resourceEngine) Flush() ([]resource.Pane, map[int32]int64, []aggregator.LateEvent) {
	panes, commit := e.Engine.Flush()
	return panes, commit, nil
}

// producer is what a groupHandler needs of a kafka.Producer.
type producer interface {
	// Produce returns once every message is acknowledged.
	Produce(ctx context.Context, msgs ...kafkago.Message) error
}

// committer is what a groupHandler needs of a kafka.Session.
type committer interface {
	CommitOffsets(offsets map[int]int64) error
}

// groupHandler is the GroupHandler of one consumer group: it feeds every
// message of the consumed topic to eng, publishes the final panes to stats
// and commits the offsets only after they are acknowledged. The calls and
// the metrics consumer each run one; DESIGN.md records the rules it keeps.
type groupHandler[P any] struct {
	eng  engine[P]
	log  *slog.Logger
	m    *metrics
	tm   topicMetrics
	dlq  *kafka.DLQ
	prod producer
	// encode turns panes into stats messages.
	encode func(panes []P) ([]kafkago.Message, error)
	// lateProd and encodeLate publish late events to the late topic; nil
	// for an engine without a late path.
	lateProd   producer
	encodeLate func(events []aggregator.LateEvent) []kafkago.Message
	// ownerKey returns the key that places a pane's events on a partition
	// of the consumed topic, or nil for an overflow pane, which mixes
	// partitions and is always published.
	ownerKey func(p *P) []byte
	// parts is the partition count of the consumed topic.
	parts int
	// what names the panes in errors.
	what string
	// dec refuses messages larger than producers may cut them.
	dec codec.DecodeOptions

	// fmu serialises flushes, so that panes are published and offsets
	// committed in order; it guards pending, pendingLate and
	// pendingCommit. It is taken before mu, and the produce runs with fmu
	// held but mu released, so Handle never waits for Kafka.
	fmu sync.Mutex
	// pending are panes taken from the engine but not yet published;
	// pendingLate the same for late events; pendingCommit is the commit of
	// the last Flush that added to them.
	pending       []P
	pendingLate   []aggregator.LateEvent
	pendingCommit map[int32]int64

	mu sync.Mutex // guards everything below; held only briefly
	s  committer
	// owned are the partitions of the current generation.
	owned map[int32]bool
	// ingested is the last offset fed to the engine per partition, kept
	// across generations: a partition assigned again after a rebalance
	// re-delivers from its committed offset, and the engine still holds
	// those events in open panes.
	ingested map[int32]int64
	// revoked are partitions of an ended generation not yet removed from
	// the engine; see Assigned.
	revoked map[int32]bool
	batches map[int]*codec.Batch
}

// run consumes with gc until ctx is done, flushing every flushEvery, and
// returns after the final flush of the last generation.
func (h *groupHandler[P]) run(ctx context.Context, gc *kafka.GroupConsumer, flushEvery time.Duration) error {
	flushCtx, stopFlush := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(flushEvery)
		defer t.Stop()
		for {
			select {
			case <-flushCtx.Done():
				return
			case <-t.C:
				if err := h.tick(flushCtx); err != nil && flushCtx.Err() == nil {
					h.log.Warn("cannot publish panes or commit, will retry", "panes", h.what, "err", err)
				}
			}
		}
	}()
	err := gc.Run(ctx, h)
	stopFlush()
	wg.Wait()
	return err
}

// Assigned removes from the engine every partition this member lost, so it
// no longer holds the watermark back, and keeps the state of the partitions
// it got again (see DESIGN.md).
func (h *groupHandler[P]) Assigned(ctx context.Context, s *kafka.Session) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.owned = make(map[int32]bool, len(s.Partitions()))
	for _, p := range s.Partitions() {
		h.owned[int32(p)] = true
		if _, ok := h.batches[p]; !ok {
			h.batches[p] = new(codec.Batch)
		}
	}
	for p := range h.revoked {
		if !h.owned[p] {
			h.eng.RemovePartition(p)
			delete(h.ingested, p)
		}
	}
	h.revoked = nil
	h.s = s
	return nil
}

// Fetched implements kafka.FetchReporter: every fetch response that
// succeeded reaches the engine, so a partition whose fetches fail (broker
// down or unreachable) never counts as idle and the watermark does not
// follow the wall clock past the events it has yet to deliver.
func (h *groupHandler[P]) Fetched(partition int32, hwm int64) { h.eng.Fetched(partition, hwm) }

// Handle decodes one message and feeds it to the engine. It is called
// concurrently, one goroutine per partition.
func (h *groupHandler[P]) Handle(ctx context.Context, s *kafka.Session, msg kafkago.Message) error {
	p := int32(msg.Partition)
	h.mu.Lock()
	last, seen := h.ingested[p]
	b := h.batches[msg.Partition]
	h.mu.Unlock()
	if seen && msg.Offset <= last {
		// Already in the engine's open panes from the last generation.
		h.tm.redelivered.Inc()
		return nil
	}
	if err := h.dec.Decode(msg.Value, b); err != nil {
		h.tm.bad.Inc()
		if err := h.dlq.Send(ctx, msg, pipeline.Permanent(err)); err != nil {
			return err
		}
		// The engine must still learn the offset, or the commit would stop
		// before this message and re-deliver it for ever.
		b.Reset()
	}
	h.eng.HighWaterMark(p, msg.HighWaterMark)
	accepted := h.eng.Ingest(p, msg.Offset, b)
	h.tm.messages.Inc()
	h.tm.accepted.Add(float64(accepted))
	h.mu.Lock()
	h.ingested[p] = msg.Offset
	h.mu.Unlock()
	return nil
}

// Revoked flushes, publishes and commits before the partitions move. A
// failure is logged, not returned: the generation often ends because the
// broker went away, and then the commit cannot succeed. Nothing is lost:
// unpublished panes stay pending for the next flush, uncommitted messages
// are delivered again, and the ones this engine already holds are skipped.
func (h *groupHandler[P]) Revoked(ctx context.Context, s *kafka.Session) error {
	if err := h.flush(ctx, true); err != nil {
		h.log.Warn("cannot flush on revocation; messages will be delivered again", "panes", h.what, "generation", s.GenerationID(), "err", err)
	}
	h.mu.Lock()
	h.revoked = h.owned
	h.owned = nil
	h.s = nil
	h.mu.Unlock()
	return nil
}

// tick is the periodic flush.
func (h *groupHandler[P]) tick(ctx context.Context) error { return h.flush(ctx, false) }

// flush takes the final panes and late events from the engine under h.mu,
// publishes them with any left over from a failed attempt with h.mu
// released, and only after every produce is acknowledged commits, in
// order (h.fmu is held throughout). Between generations (no session) a
// periodic flush does nothing: Revoked flushed already.
func (h *groupHandler[P]) flush(ctx context.Context, revoking bool) error {
	h.fmu.Lock()
	defer h.fmu.Unlock()
	h.mu.Lock()
	s := h.s
	if s == nil && !revoking {
		h.mu.Unlock()
		return nil
	}
	panes, commit, late := h.eng.Flush()
	for i := range panes {
		// A pane of a key whose partition moved to another member is
		// that member's to publish: it re-reads the events from our last
		// commit, which is before every event of this pane.
		if key := h.ownerKey(&panes[i]); key != nil && h.owned != nil && !h.owned[int32(kafka.PartitionOf(key, h.parts))] {
			h.m.dropped.Inc()
			continue
		}
		h.pending = append(h.pending, panes[i])
	}
	// Late events are published whoever owns their partition now: a new
	// owner re-reading them builds at most a partial pane, whose version
	// never replaces a row the late path merged into.
	h.pendingLate = append(h.pendingLate, late...)
	h.pendingCommit = commit
	offs := make(map[int]int64, len(commit))
	for p, off := range commit {
		if h.owned[p] && off >= 0 {
			offs[int(p)] = off
		}
	}
	h.mu.Unlock()

	if len(h.pending) > 0 {
		start := time.Now()
		if err := h.publish(ctx); err != nil {
			h.m.publishErrors.Inc()
			return err
		}
		h.m.publishSeconds.Observe(time.Since(start).Seconds())
		h.tm.panes.Add(float64(len(h.pending)))
		clear(h.pending)
		h.pending = h.pending[:0]
	}
	if len(h.pendingLate) > 0 {
		if err := h.publishLate(ctx); err != nil {
			h.m.publishErrors.Inc()
			return err
		}
		h.m.lateEvents.Add(float64(len(h.pendingLate)))
		h.pendingLate = nil
	}
	if s == nil {
		return nil
	}
	return s.CommitOffsets(offs)
}

// publish produces the pending panes and returns once every message is
// acknowledged.
func (h *groupHandler[P]) publish(ctx context.Context) error {
	msgs, err := h.encode(h.pending)
	if err != nil {
		return err
	}
	if err := h.prod.Produce(ctx, msgs...); err != nil {
		return fmt.Errorf("cannot publish %d %s: %w", len(h.pending), h.what, err)
	}
	return nil
}

// publishLate produces the pending late events and returns once every
// message is acknowledged.
func (h *groupHandler[P]) publishLate(ctx context.Context) error {
	if h.lateProd == nil {
		panic("BUG: late events from an engine without a late path")
	}
	if err := h.lateProd.Produce(ctx, h.encodeLate(h.pendingLate)...); err != nil {
		return fmt.Errorf("cannot publish %d late events: %w", len(h.pendingLate), err)
	}
	return nil
}
