package late

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/pipeline"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
)

// Config configures the late merger.
type Config struct {
	// GroupID is the consumer group of the late mergers on the late topic.
	GroupID string
	// SinkGroupID is the consumer group of the sinks that store the stats
	// topic: a late message is merged only once that group has stored
	// every stats message produced before it (see DESIGN.md).
	SinkGroupID string
	// Aggregator gives the pane length and the compressions of merged
	// panes and rollups; it must be the aggregators' configuration.
	Aggregator aggregator.Config
}

// GroupIDFor returns the late mergers' consumer group for a sink group:
// sinkGroup with "-late" appended.
func GroupIDFor(sinkGroup string) string { return sinkGroup + "-late" }

// Validate reports every impossible value as a *schemas.FieldError.
func (c Config) Validate() error {
	var errs []error
	if c.GroupID == "" {
		errs = append(errs, schemas.Fieldf("group_id", "must not be empty"))
	}
	if c.SinkGroupID == "" {
		errs = append(errs, schemas.Fieldf("sink_group_id", "must not be empty"))
	}
	if err := c.Aggregator.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// store is what the merger needs of ClickHouse.
type store interface {
	query(ctx context.Context, rollups bool, ids []clickhouse.PaneID) (map[clickhouse.PaneID]clickhouse.MergedPane, error)
	write(ctx context.Context, rollups bool, rows []clickhouse.MergedPane) error
}

type chStore struct {
	conn     driver.Conn
	w        *clickhouse.Writer
	database string
}

func (s chStore) query(ctx context.Context, rollups bool, ids []clickhouse.PaneID) (map[clickhouse.PaneID]clickhouse.MergedPane, error) {
	return clickhouse.QueryMergedPanes(ctx, s.conn, s.database, rollups, ids)
}

func (s chStore) write(ctx context.Context, rollups bool, rows []clickhouse.MergedPane) error {
	return s.w.WriteMergedPanes(ctx, rollups, rows)
}

// merger is the GroupHandler of the late topic.
type merger struct {
	cfg     Config
	paneMs  int64
	st      store
	dlq     *kafka.DLQ
	log     *slog.Logger
	m       *metrics
	barrier func(ctx context.Context) error
	// backoff bounds the wait between attempts at a transient failure.
	backoff time.Duration

	mu      sync.Mutex
	batches map[int]*codec.Batch
}

// Run consumes the late topic as a member of cfg.GroupID until ctx is done
// and merges every late event into the pane (and, where the event says so,
// the rollup) stored in ClickHouse: it reads the stored row FINAL, merges
// the events' latencies into its digest and writes the merged row with a
// higher version and the message's late mark. A message is committed only
// after its rows are written; a message at or below a row's late mark is
// not merged into that row again, so a redelivery adds nothing.
// Undecodable messages go to the DLQ.
func Run(ctx context.Context, kcfg kafka.Config, ccfg clickhouse.Config, cfg Config, reg prometheus.Registerer, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("cannot start late merger: %w", err)
	}
	conn, err := openMigrated(ctx, ccfg, log)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := kafka.EnsureTopics(ctx, kcfg); err != nil {
		return fmt.Errorf("cannot start late merger: %w", err)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return fmt.Errorf("cannot start late merger: %w", err)
	}
	dlq, err := kafka.NewDLQ(kcfg, codec.Reason, nil, log)
	if err != nil {
		return err
	}
	defer dlq.Close()
	bar, err := newSinkBarrier(kcfg, cfg.SinkGroupID)
	if err != nil {
		return err
	}
	defer bar.close()
	gc, err := kafka.NewGroupConsumer(kcfg, kcfg.Topic(kafka.TopicLate), cfg.GroupID, log)
	if err != nil {
		return err
	}
	h := newMerger(cfg, chStore{conn: conn, w: clickhouse.NewWriter(conn, ccfg, log), database: ccfg.Database}, dlq, m, log)
	bar.m = m
	h.barrier = bar.wait
	return gc.Run(ctx, h)
}

func newMerger(cfg Config, st store, dlq *kafka.DLQ, m *metrics, log *slog.Logger) *merger {
	return &merger{
		cfg: cfg, paneMs: cfg.Aggregator.Pane.Milliseconds(), st: st, dlq: dlq, log: log, m: m,
		barrier: func(context.Context) error { return nil }, backoff: 5 * time.Second,
		batches: map[int]*codec.Batch{},
	}
}

// openMigrated is clickhouse.OpenMigrated with the error of this role.
func openMigrated(ctx context.Context, ccfg clickhouse.Config, log *slog.Logger) (driver.Conn, error) {
	c, err := clickhouse.OpenMigrated(ctx, ccfg, log)
	if err != nil {
		return nil, fmt.Errorf("cannot open ClickHouse for the late merger: %w", err)
	}
	return c, nil
}

// Assigned implements kafka.GroupHandler.
func (h *merger) Assigned(ctx context.Context, s *kafka.Session) error { return nil }

// Revoked implements kafka.GroupHandler: every handled message was
// committed by Handle already.
func (h *merger) Revoked(ctx context.Context, s *kafka.Session) error { return nil }

// Handle merges one late message and commits it.
func (h *merger) Handle(ctx context.Context, s *kafka.Session, msg kafkago.Message) error {
	if err := h.handle(ctx, msg); err != nil {
		return err
	}
	if err := s.Commit(msg); err != nil {
		// The generation ended: the next owner gets the message again and
		// the late marks keep it from being merged twice.
		h.log.Warn("cannot commit late message; it will be delivered again", "partition", msg.Partition, "offset", msg.Offset, "err", err)
	}
	return nil
}

// handle merges msg into the stored panes, retrying transient failures
// until ctx ends; poison goes to the DLQ.
func (h *merger) handle(ctx context.Context, msg kafkago.Message) error {
	h.mu.Lock()
	b := h.batches[msg.Partition]
	if b == nil {
		b = new(codec.Batch)
		h.batches[msg.Partition] = b
	}
	h.mu.Unlock()
	if err := codec.Decode(msg.Value, b); err != nil {
		h.m.bad.Inc()
		return h.dlq.Send(ctx, msg, pipeline.Permanent(err))
	}
	panes, rolls := h.group(decodeEvents(nil, b))
	if len(panes) == 0 && len(rolls) == 0 {
		return nil
	}
	bo := pipeline.Backoff{Min: min(100*time.Millisecond, h.backoff), Max: h.backoff}
	_, err := pipeline.Retry(ctx, &bo, 0, func() error {
		if err := h.barrier(ctx); err != nil {
			return err
		}
		return h.apply(ctx, panes, rolls)
	}, func(_ int, _ time.Duration, err error) {
		h.m.retries.Inc()
		h.log.Warn("cannot merge late message, will retry", "partition", msg.Partition, "offset", msg.Offset, "err", err)
	})
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case pipeline.IsPermanent(err): // clickhouse.ErrPermanent is pipeline.ErrPermanent
		h.m.bad.Inc()
		return h.dlq.Send(ctx, msg, err)
	}
	return err
}

// group collects the events by stored pane and, for those whose rollup
// the late path owns, by stored rollup. Events whose pane cannot be
// stored (before 1970 or after 2106) or without a source are counted and
// left out.
func (h *merger) group(evs []event) (panes, rolls []*acc) {
	byPane := map[clickhouse.PaneID]*acc{}
	byRoll := map[clickhouse.PaneID]*acc{}
	add := func(m map[clickhouse.PaneID]*acc, out *[]*acc, ev *event, start int64) {
		k := ev.key
		id := clickhouse.PaneID{System: k.System, App: k.App, Group: k.Group, IDC: k.IDC, Method: k.Method, Start: start / 1000}
		a := m[id]
		if a == nil {
			a = &acc{key: k, startMs: start}
			m[id] = a
			*out = append(*out, a)
		}
		a.evs = append(a.evs, accEvent{lat: ev.call.LatencyUs, ok: ev.call.OK, partition: ev.partition, offset: ev.offset})
	}
	rollMs := aggregator.RollupLength.Milliseconds()
	for i := range evs {
		ev := &evs[i]
		if !ev.src {
			h.m.noSource.Inc()
			continue
		}
		start, ok := floorTo(ev.call.TsUnixMs, h.paneMs)
		if !ok {
			h.m.invalid.Inc()
			continue
		}
		add(byPane, &panes, ev, start)
		if ev.rollup {
			b, _ := floorTo(ev.call.TsUnixMs, rollMs)
			add(byRoll, &rolls, ev, b)
		}
	}
	return panes, rolls
}

// apply merges the grouped events of a message into the stored panes, then
// the stored rollups.
func (h *merger) apply(ctx context.Context, panes, rolls []*acc) error {
	for _, t := range []struct {
		rollups  bool
		accs     []*acc
		lengthMs int64
		delta    float64
	}{
		{false, panes, h.paneMs, h.cfg.Aggregator.Compression},
		{true, rolls, aggregator.RollupLength.Milliseconds(), h.cfg.Aggregator.RollupCompression},
	} {
		if len(t.accs) == 0 {
			continue
		}
		ids := make([]clickhouse.PaneID, len(t.accs))
		for i, a := range t.accs {
			ids[i] = clickhouse.PaneID{System: a.key.System, App: a.key.App, Group: a.key.Group, IDC: a.key.IDC, Method: a.key.Method, Start: a.startMs / 1000}
		}
		stored, err := h.st.query(ctx, t.rollups, ids)
		if err != nil {
			return err
		}
		rows := make([]clickhouse.MergedPane, 0, len(t.accs))
		events := 0
		for i, a := range t.accs {
			r, ok := stored[ids[i]]
			if !ok {
				r.LatePartition, r.LateOffset = -1, -1
			}
			evs, mp, mo := a.fresh(r.LatePartition, r.LateOffset)
			if skipped := len(a.evs) - len(evs); skipped > 0 {
				// In the row already: a redelivered or re-produced message.
				h.m.skipped.Add(float64(skipped))
			}
			if len(evs) == 0 {
				continue
			}
			rows = append(rows, merge(&r, ok, a, evs, t.lengthMs, t.delta, mp, mo))
			events += len(evs)
		}
		if len(rows) == 0 {
			continue
		}
		if err := h.st.write(ctx, t.rollups, rows); err != nil {
			return err
		}
		if t.rollups {
			h.m.rollupEvents.Add(float64(events))
		} else {
			h.m.paneEvents.Add(float64(events))
		}
	}
	return nil
}
