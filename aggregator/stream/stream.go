// Package stream runs an aggregator.Engine as a Kafka consumer: it reads the
// calls topic in a consumer group, feeds every batch to the engine, publishes
// the final panes to the stats topic and commits the calls offsets only
// after those panes are acknowledged. Alongside, in a second consumer group,
// it does the same for the metrics topic with a resource.Engine, whose
// resource panes go to stats too. DESIGN.md next to this file records
// when offsets may be committed and what happens on a rebalance.
package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/aggregator/resource"
	"github.com/tpflow/tpflow/pipeline"
	"github.com/tpflow/tpflow/pipeline/codec"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas"
)

// Config configures the streaming aggregator.
type Config struct {
	// GroupID is the consumer group of the aggregators.
	GroupID string `yaml:"group_id"`
	// FlushInterval is how often final panes are published and offsets
	// committed.
	FlushInterval time.Duration `yaml:"flush_interval"`
}

// MetricsGroupID returns the consumer group in which the metrics topic is
// aggregated into resource panes: GroupID with "-metrics" appended. It is
// a group of its own so that the two topics rebalance independently.
func (c Config) MetricsGroupID() string { return c.GroupID + "-metrics" }

// DefaultConfig returns the defaults: group tpflow-aggregate, a flush every
// second.
func DefaultConfig() Config {
	return Config{GroupID: "tpflow-aggregate", FlushInterval: time.Second}
}

// Validate reports every impossible value as a *schemas.FieldError.
func (c Config) Validate() error {
	var errs []error
	if c.GroupID == "" {
		errs = append(errs, schemas.Fieldf("group_id", "must not be empty"))
	}
	if c.FlushInterval < 10*time.Millisecond || c.FlushInterval > time.Hour {
		errs = append(errs, schemas.Fieldf("flush_interval", "must be between 10ms and 1h, got %s", c.FlushInterval))
	}
	return errors.Join(errs...)
}

// Run consumes the calls topic as a member of cfg.GroupID until ctx is done,
// aggregating into eng, and returns after a final flush. Undecodable
// messages go to the DLQ. Final panes are produced to the stats topic, and
// only after that produce succeeded are the offsets that Flush returned
// committed, so a crash at any point re-delivers, and the re-published
// panes replace their earlier copies downstream.
//
// Run also consumes the metrics topic in the group cfg.MetricsGroupID()
// into a resource.Engine with eng's configuration and publishes its
// resource panes to stats under the same rules. An error of either consumer
// ends Run.
//
// Run does not close eng; it must be the only caller of eng.Flush.
func Run(ctx context.Context, kcfg kafka.Config, cfg Config, eng *aggregator.Engine, reg prometheus.Registerer, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("cannot start aggregator stream: %w", err)
	}
	if err := kafka.EnsureTopics(ctx, kcfg); err != nil {
		return fmt.Errorf("cannot start aggregator stream: %w", err)
	}
	km, err := kafka.NewMetrics(reg)
	if err != nil {
		return fmt.Errorf("cannot start aggregator stream: %w", err)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return fmt.Errorf("cannot start aggregator stream: %w", err)
	}
	reng, err := resource.New(eng.Config(), resource.WithLogger(log), resource.WithRegisterer(reg))
	if err != nil {
		return fmt.Errorf("cannot start aggregator stream: %w", err)
	}
	statsTopic := kcfg.Topic(kafka.TopicStats)
	prod, err := kafka.NewProducer(kcfg, statsTopic, log, kafka.WithMetrics(km))
	if err != nil {
		return err
	}
	defer prod.Close()
	dlq, err := kafka.NewDLQ(kcfg, codec.Reason, reg, log, kafka.WithMetrics(km))
	if err != nil {
		return err
	}
	defer dlq.Close()
	gc, err := kafka.NewGroupConsumer(kcfg, kcfg.Topic(kafka.TopicCalls), cfg.GroupID, log, kafka.WithMetrics(km))
	if err != nil {
		return err
	}
	statsParts := kcfg.PartitionsFor(kafka.TopicStats)
	if n, err := kafka.TopicPartitions(ctx, kcfg, statsTopic); err == nil && n[statsTopic] > 0 {
		statsParts = n[statsTopic]
	}
	callsTopic := kcfg.Topic(kafka.TopicCalls)
	callsParts := kcfg.PartitionsFor(kafka.TopicCalls)
	if n, err := kafka.TopicPartitions(ctx, kcfg, callsTopic); err == nil && n[callsTopic] > 0 {
		callsParts = n[callsTopic]
	}

	h := &handler{
		eng: eng, log: log, m: m, dlq: dlq,
		pub:        &publisher{prod: prod, maxBytes: kcfg.MaxMessageBytes, partitions: statsParts},
		callsParts: callsParts,
		dec:        codec.DecodeOptions{MaxBytes: kcfg.MaxMessageBytes},
		ingested:   map[int32]int64{},
		batches:    map[int]*codec.Batch{},
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	var rwg sync.WaitGroup
	var rerr error
	rwg.Add(1)
	go func() {
		defer rwg.Done()
		if err := runResources(runCtx, kcfg, cfg.MetricsGroupID(), cfg.FlushInterval, reng, prod, dlq, km, m, log); err != nil && runCtx.Err() == nil {
			rerr = fmt.Errorf("resource panes: %w", err)
			stopRun()
		}
	}()
	flushCtx, stopFlush := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(cfg.FlushInterval)
		defer t.Stop()
		for {
			select {
			case <-flushCtx.Done():
				return
			case <-t.C:
				if err := h.tick(flushCtx); err != nil && flushCtx.Err() == nil {
					log.Warn("cannot publish panes or commit, will retry", "err", err)
				}
			}
		}
	}()
	err = gc.Run(runCtx, h)
	stopFlush()
	wg.Wait()
	stopRun()
	rwg.Wait()
	if rerr != nil && ctx.Err() == nil {
		return rerr
	}
	return err
}

// handler is the GroupHandler of the calls consumer.
type handler struct {
	eng        *aggregator.Engine
	log        *slog.Logger
	m          *metrics
	dlq        *kafka.DLQ
	pub        *publisher
	callsParts int
	// dec refuses messages larger than producers may cut them.
	dec codec.DecodeOptions

	mu sync.Mutex // guards everything below; held across a flush
	s  *kafka.Session
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
	// pending are panes taken from the engine but not yet published;
	// pendingCommit is the commit of the last Flush that added to them.
	pending       []aggregator.PaneStat
	pendingCommit map[int32]int64
	batches       map[int]*codec.Batch
}

// Assigned removes from the engine every partition this member lost, so it
// no longer holds the watermark back, and keeps the state of the partitions
// it got again (see DESIGN.md).
func (h *handler) Assigned(ctx context.Context, s *kafka.Session) error {
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

// Handle decodes one message and feeds it to the engine. It is called
// concurrently, one goroutine per partition.
func (h *handler) Handle(ctx context.Context, s *kafka.Session, msg kafkago.Message) error {
	p := int32(msg.Partition)
	h.mu.Lock()
	last, seen := h.ingested[p]
	b := h.batches[msg.Partition]
	h.mu.Unlock()
	if seen && msg.Offset <= last {
		// Already in the engine's open panes from the last generation.
		h.m.redelivered.Inc()
		return nil
	}
	if err := h.dec.Decode(msg.Value, b); err != nil {
		h.m.bad.Inc()
		if err := h.dlq.Send(ctx, msg, pipeline.Permanent(err)); err != nil {
			return err
		}
		// The engine must still learn the offset, or the commit would stop
		// before this message and re-deliver it for ever.
		b.Reset()
	}
	st := h.eng.Ingest(p, msg.Offset, b)
	h.m.messages.Inc()
	h.m.calls.Add(float64(st.Accepted))
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
func (h *handler) Revoked(ctx context.Context, s *kafka.Session) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.flushLocked(ctx); err != nil {
		h.log.Warn("cannot flush on revocation; messages will be delivered again", "generation", s.GenerationID(), "err", err)
	}
	h.revoked = h.owned
	h.owned = nil
	h.s = nil
	return nil
}

// tick is the periodic flush.
func (h *handler) tick(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.s == nil {
		return nil // between generations: Revoked flushed already
	}
	return h.flushLocked(ctx)
}

// flushLocked takes the final panes from the engine, publishes them with any
// left over from a failed attempt, and then commits. h.mu is held.
func (h *handler) flushLocked(ctx context.Context) error {
	panes, commit := h.eng.Flush()
	for _, ps := range panes {
		// A pane of a key whose partition moved to another member is
		// that member's to publish: it re-reads the events from our last
		// commit, which is before every event of this pane.
		if ps.Key.Method != aggregator.OtherMethod && h.owned != nil &&
			!h.owned[int32(partitionOf(kafka.CallKey(ps.Key.System, ps.Key.App, ps.Key.Method), h.callsParts))] {
			h.m.dropped.Inc()
			continue
		}
		h.pending = append(h.pending, ps)
	}
	h.pendingCommit = commit
	if len(h.pending) > 0 {
		start := time.Now()
		if err := h.pub.publish(ctx, h.pending); err != nil {
			h.m.publishErrors.Inc()
			return err
		}
		h.m.publishSeconds.Observe(time.Since(start).Seconds())
		h.m.panes.Add(float64(len(h.pending)))
		clear(h.pending)
		h.pending = h.pending[:0]
	}
	if h.s == nil {
		return nil
	}
	offs := make(map[int]int64, len(h.pendingCommit))
	for p, off := range h.pendingCommit {
		if h.owned[p] && off >= 0 {
			offs[int(p)] = off
		}
	}
	return h.s.CommitOffsets(offs)
}
