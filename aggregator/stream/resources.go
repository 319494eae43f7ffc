package stream

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/aggregator/resource"
	"github.com/tpflow/tpflow/pipeline"
	"github.com/tpflow/tpflow/pipeline/codec"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

// runResources consumes the metrics topic as a member of groupID into eng
// until ctx is done, publishing final resource panes to stats with prod and
// committing after the publish, as Run does for calls.
func runResources(ctx context.Context, kcfg kafka.Config, groupID string, flushEvery time.Duration, eng *resource.Engine,
	prod *kafka.Producer, dlq *kafka.DLQ, km *kafka.Metrics, m *metrics, log *slog.Logger) error {
	gc, err := kafka.NewGroupConsumer(kcfg, kcfg.Topic(kafka.TopicMetrics), groupID, log, kafka.WithMetrics(km))
	if err != nil {
		return err
	}
	statsTopic := kcfg.Topic(kafka.TopicStats)
	statsParts := kcfg.PartitionsFor(kafka.TopicStats)
	metricsTopic := kcfg.Topic(kafka.TopicMetrics)
	metricsParts := kcfg.PartitionsFor(kafka.TopicMetrics)
	if n, err := kafka.TopicPartitions(ctx, kcfg, statsTopic, metricsTopic); err == nil {
		if n[statsTopic] > 0 {
			statsParts = n[statsTopic]
		}
		if n[metricsTopic] > 0 {
			metricsParts = n[metricsTopic]
		}
	}
	h := &resourceHandler{
		eng: eng, log: log, m: m, dlq: dlq, prod: prod,
		maxBytes: kcfg.MaxMessageBytes, statsParts: statsParts, metricsParts: metricsParts,
		dec:      codec.DecodeOptions{MaxBytes: kcfg.MaxMessageBytes},
		ingested: map[int32]int64{},
		batches:  map[int]*codec.Batch{},
	}
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
					log.Warn("cannot publish resource panes or commit, will retry", "err", err)
				}
			}
		}
	}()
	err = gc.Run(ctx, h)
	stopFlush()
	wg.Wait()
	return err
}

// resourceHandler is the GroupHandler of the metrics consumer. It keeps the
// calls handler's rules (DESIGN.md): skip re-delivered messages it already
// holds, remove lost partitions at the next assignment, publish only panes
// whose metrics partition it still owns, commit after publishing.
type resourceHandler struct {
	eng          *resource.Engine
	log          *slog.Logger
	m            *metrics
	dlq          *kafka.DLQ
	prod         *kafka.Producer
	maxBytes     int
	statsParts   int
	metricsParts int
	dec          codec.DecodeOptions

	mu            sync.Mutex // guards everything below; held across a flush
	s             *kafka.Session
	owned         map[int32]bool
	ingested      map[int32]int64
	revoked       map[int32]bool
	pending       []resource.Pane
	pendingCommit map[int32]int64
	batches       map[int]*codec.Batch
}

func (h *resourceHandler) Assigned(ctx context.Context, s *kafka.Session) error {
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

func (h *resourceHandler) Handle(ctx context.Context, s *kafka.Session, msg kafkago.Message) error {
	p := int32(msg.Partition)
	h.mu.Lock()
	last, seen := h.ingested[p]
	b := h.batches[msg.Partition]
	h.mu.Unlock()
	if seen && msg.Offset <= last {
		h.m.metricsRedelivered.Inc()
		return nil
	}
	if err := h.dec.Decode(msg.Value, b); err != nil {
		h.m.metricsBad.Inc()
		if err := h.dlq.Send(ctx, msg, pipeline.Permanent(err)); err != nil {
			return err
		}
		b.Reset()
	}
	st := h.eng.Ingest(p, msg.Offset, b)
	h.m.metricsMessages.Inc()
	h.m.samples.Add(float64(st.Accepted))
	h.mu.Lock()
	h.ingested[p] = msg.Offset
	h.mu.Unlock()
	return nil
}

func (h *resourceHandler) Revoked(ctx context.Context, s *kafka.Session) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.flushLocked(ctx); err != nil {
		h.log.Warn("cannot flush resource panes on revocation; messages will be delivered again", "generation", s.GenerationID(), "err", err)
	}
	h.revoked = h.owned
	h.owned = nil
	h.s = nil
	return nil
}

func (h *resourceHandler) tick(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.s == nil {
		return nil
	}
	return h.flushLocked(ctx)
}

// flushLocked takes the final resource panes, publishes them with any left
// over from a failed attempt, and then commits. h.mu is held.
func (h *resourceHandler) flushLocked(ctx context.Context) error {
	panes, commit := h.eng.Flush()
	for _, rp := range panes {
		k := rp.Key
		if k.Container != resource.OtherContainer && h.owned != nil &&
			!h.owned[int32(partitionOf(kafka.MetricKey(k.Host, k.Container), h.metricsParts))] {
			h.m.dropped.Inc()
			continue
		}
		h.pending = append(h.pending, rp)
	}
	h.pendingCommit = commit
	if len(h.pending) > 0 {
		start := time.Now()
		msgs, err := encodeResources(h.pending, h.maxBytes, h.statsParts)
		if err != nil {
			return err
		}
		if err := h.prod.Produce(ctx, msgs...); err != nil {
			h.m.publishErrors.Inc()
			return fmt.Errorf("cannot publish %d resource panes: %w", len(h.pending), err)
		}
		h.m.publishSeconds.Observe(time.Since(start).Seconds())
		h.m.resourcePanes.Add(float64(len(h.pending)))
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

// resourceSizeBound over-estimates the encoded size of a resource pane.
func resourceSizeBound(p *resource.Pane) int {
	k := p.Key
	return 120 + 2*(len(k.System)+len(k.App)+len(k.Group)+len(k.IDC)+len(k.Host)+len(k.Container)+len(k.Name))
}

// encodeResources turns resource panes into messages of at most maxBytes
// each, grouped by the stats partition of their metrics key (host,
// container), as encode does for call panes.
func encodeResources(panes []resource.Pane, maxBytes, partitions int) ([]kafkago.Message, error) {
	type group struct {
		key []byte
		idx []int
	}
	groups := map[int]*group{}
	var order []int
	for i := range panes {
		k := panes[i].Key
		key := kafka.MetricKey(k.Host, k.Container)
		p := partitionOf(key, partitions)
		g := groups[p]
		if g == nil {
			g = &group{key: key}
			groups[p] = g
			order = append(order, p)
		}
		g.idx = append(g.idx, i)
	}
	var msgs []kafkago.Message
	var b codec.Builder
	labels := make([]schemas.Label, 6)
	for _, p := range order {
		g := groups[p]
		b.Reset()
		for _, i := range g.idx {
			rp := &panes[i]
			if b.Len() > 0 && b.Size()+resourceSizeBound(rp) > maxBytes {
				msgs = append(msgs, kafkago.Message{Key: g.key, Value: b.AppendTo(nil)})
				b.Reset()
			}
			k := rp.Key
			labels[0] = schemas.Label{Name: schemas.LabelSystem, Value: k.System}
			labels[1] = schemas.Label{Name: schemas.LabelApp, Value: k.App}
			labels[2] = schemas.Label{Name: schemas.LabelGroup, Value: k.Group}
			labels[3] = schemas.Label{Name: schemas.LabelIDC, Value: k.IDC}
			labels[4] = schemas.Label{Name: schemas.LabelHost, Value: k.Host}
			labels[5] = schemas.Label{Name: schemas.LabelContainer, Value: k.Container}
			pb := tpflowpb.ResourcePane{
				Labels:          b.LabelSet(labels),
				Name:            b.Symbol(k.Name),
				PaneStartUnixMs: rp.Start,
				PaneMs:          uint32(rp.PaneMs),
				Version:         rp.Version,
				Count:           rp.Count,
				Sum:             rp.Sum,
				Max:             rp.Max,
				P95:             rp.P95,
			}
			if err := b.AddResourcePane(&pb); err != nil {
				return nil, fmt.Errorf("cannot encode resource pane %v@%d: %w", k, rp.Start, err)
			}
		}
		if b.Len() > 0 {
			msgs = append(msgs, kafkago.Message{Key: g.key, Value: b.AppendTo(nil)})
		}
	}
	return msgs, nil
}
