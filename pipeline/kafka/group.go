package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
)

// GroupHandler is what a GroupConsumer drives, once per consumer group
// generation: Assigned, then Handle for every message of the assigned
// partitions, then Revoked.
type GroupHandler interface {
	// Assigned is called when a generation starts, before any Handle,
	// with the partitions this member owns in it.
	Assigned(ctx context.Context, s *Session) error
	// Handle processes one message. It is called concurrently from one
	// goroutine per partition, in offset order within a partition. An
	// error ends Run (after Revoked): route poison input to the DLQ and
	// return nil instead.
	Handle(ctx context.Context, s *Session, msg kafkago.Message) error
	// Revoked is called when the generation ends (rebalance, shutdown or
	// error), after every Handle of the generation has returned and while
	// the generation can still commit: flush downstream and call
	// s.Commit/s.CommitOffsets here, because the partitions may belong to
	// another member right after Revoked returns. It must return well
	// within the group's rebalance timeout. ctx is not the Run context: it
	// stays live for the flush even when Run's context is done.
	Revoked(ctx context.Context, s *Session) error
}

// Session is one consumer group generation as a GroupHandler sees it. Its
// methods are safe for concurrent use.
type Session struct {
	gen    *kafkago.Generation
	topic  string
	parts  []int
	start  map[int]int64
	commit func(map[int]int64) error
}

// GenerationID returns the coordinator's generation number.
func (s *Session) GenerationID() int32 { return s.gen.ID }

// Topic returns the consumed topic.
func (s *Session) Topic() string { return s.topic }

// Partitions returns the partitions assigned in this generation, sorted.
// The caller must not modify the slice.
func (s *Session) Partitions() []int { return s.parts }

// StartOffset returns the offset this generation starts reading partition
// from: the committed offset, or kafka-go's FirstOffset (-2) when the
// group has never committed one.
func (s *Session) StartOffset(partition int) int64 { return s.start[partition] }

// Commit commits, for each partition among msgs, one past the highest
// offset in msgs. It fails once the generation is over (the coordinator
// rejects its generation ID), which is how a late commit for a partition
// that has moved is kept out.
func (s *Session) Commit(msgs ...kafkago.Message) error {
	offs := make(map[int]int64)
	for _, m := range msgs {
		if next := m.Offset + 1; next > offs[m.Partition] {
			offs[m.Partition] = next
		}
	}
	return s.CommitOffsets(offs)
}

// CommitOffsets commits offsets, a map from partition to the next offset to
// read (one past the last processed message).
func (s *Session) CommitOffsets(offsets map[int]int64) error {
	if len(offsets) == 0 {
		return nil
	}
	if err := s.commit(offsets); err != nil {
		return fmt.Errorf("cannot commit offsets of %s in generation %d: %w", s.topic, s.gen.ID, err)
	}
	return nil
}

// GroupConsumer consumes one topic in a consumer group through kafka-go's
// lower-level ConsumerGroup API, so that its handler learns when partitions
// are assigned and revoked and can flush and commit before they move (see
// DESIGN.md). Each partition is read by its own kafka-go Reader.
type GroupConsumer struct {
	cfg    Config
	topic  string
	group  string
	logger *slog.Logger
	dialer *kafkago.Dialer

	// revokeTimeout bounds Revoked when Run's context is already done.
	revokeTimeout time.Duration
	// heartbeat and session tune the group protocol; tests shorten them.
	heartbeat, session, rebalance time.Duration

	consumed     prometheus.Counter
	bytes        prometheus.Counter
	commits      prometheus.Counter
	commitErrors prometheus.Counter
	generations  prometheus.Counter
}

// NewGroupConsumer returns a GroupConsumer of the full topic name topic in
// group groupID. A nil logger discards.
func NewGroupConsumer(cfg Config, topic, groupID string, logger *slog.Logger, opts ...Option) (*GroupConsumer, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.checked("create group consumer"); err != nil {
		return nil, err
	}
	if topic == "" || groupID == "" {
		return nil, fmt.Errorf("cannot create group consumer: topic %q and group %q must both be set", topic, groupID)
	}
	d, err := cfg.Dialer()
	if err != nil {
		return nil, fmt.Errorf("cannot create group consumer for %s: %w", topic, err)
	}
	o := applyOptions(opts)
	return &GroupConsumer{
		cfg: cfg, topic: topic, group: groupID, logger: logger, dialer: d,
		revokeTimeout: 20 * time.Second,
		heartbeat:     cfg.heartbeat(),
		session:       cfg.SessionTimeout,
		rebalance:     30 * time.Second,
		consumed:      o.metrics.consumedMessages.WithLabelValues(topic),
		bytes:         o.metrics.consumedBytes.WithLabelValues(topic),
		commits:       o.metrics.commits.WithLabelValues(topic),
		commitErrors:  o.metrics.commitErrors.WithLabelValues(topic),
		generations:   o.metrics.rebalances.WithLabelValues(groupID),
	}, nil
}

// Run joins the group and drives h until ctx is done or h returns an
// error. Every generation ends with h.Revoked, including the last one, so
// Run flushes before it returns. It returns nil when ctx ends it.
func (g *GroupConsumer) Run(ctx context.Context, h GroupHandler) error {
	cg, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID:                g.group,
		Brokers:           g.cfg.Brokers,
		Dialer:            g.dialer,
		Topics:            []string{g.topic},
		HeartbeatInterval: g.heartbeat,
		SessionTimeout:    g.session,
		RebalanceTimeout:  g.rebalance,
		JoinGroupBackoff:  time.Second,
		// A partition added to the topic triggers a rebalance.
		WatchPartitionChanges: true,
		StartOffset:           kafkago.FirstOffset,
		ErrorLogger:           kafkago.LoggerFunc(func(msg string, args ...any) { g.logger.Debug("kafka group: " + fmt.Sprintf(msg, args...)) }),
	})
	if err != nil {
		return fmt.Errorf("cannot join group %s: %w", g.group, err)
	}
	defer cg.Close()
	for {
		gen, err := cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, kafkago.ErrGroupClosed) {
				return nil
			}
			// Join and sync errors are retried by kafka-go with
			// backoff; they are worth a warning, not an exit.
			g.logger.Warn("cannot join consumer group, retrying", "group", g.group, "topic", g.topic, "err", err)
			continue
		}
		g.generations.Inc()
		if err := g.runGeneration(ctx, gen, h); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// runGeneration drives one generation and returns once Revoked has run.
// All of its work happens inside gen.Start, because kafka-go keeps the
// generation's coordinator connection open (and so commits possible) only
// until every function started on the generation has returned.
func (g *GroupConsumer) runGeneration(ctx context.Context, gen *kafkago.Generation, h GroupHandler) error {
	s := &Session{gen: gen, topic: g.topic, start: map[int]int64{}}
	for _, pa := range gen.Assignments[g.topic] {
		s.parts = append(s.parts, pa.ID)
		s.start[pa.ID] = pa.Offset
	}
	slices.Sort(s.parts)
	s.commit = func(offs map[int]int64) error {
		err := gen.CommitOffsets(map[string]map[int]int64{g.topic: maps.Clone(offs)})
		if err != nil {
			g.commitErrors.Inc()
			return err
		}
		g.commits.Inc()
		return nil
	}
	g.logger.Info("consumer group generation started", "group", g.group, "topic", g.topic,
		"generation", gen.ID, "partitions", s.parts)

	done := make(chan error, 1)
	gen.Start(func(genCtx context.Context) {
		done <- g.generation(ctx, genCtx, s, h)
	})
	err := <-done
	g.logger.Info("consumer group generation ended", "group", g.group, "topic", g.topic, "generation", gen.ID)
	return err
}

func (g *GroupConsumer) generation(ctx, genCtx context.Context, s *Session, h GroupHandler) error {
	// work ends when the generation ends, Run's context ends, or a
	// handler fails.
	work, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(genCtx, func() { cancel(nil) })
	defer stop()

	var handleErr error
	if err := h.Assigned(work, s); err != nil {
		handleErr = fmt.Errorf("cannot start generation %d of %s: %w", s.gen.ID, g.topic, err)
		cancel(handleErr)
	}

	var wg sync.WaitGroup
	var once sync.Once
	fail := func(err error) {
		once.Do(func() { handleErr = err })
		cancel(err)
	}
	if handleErr == nil {
		for _, p := range s.parts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := g.readPartition(work, s, p, h); err != nil {
					fail(err)
				}
			}()
		}
	}
	wg.Wait()

	// The handler flushes with a context of its own: Run's may be done
	// already, and the flush is what makes shutdown lose nothing.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), g.revokeTimeout)
	defer rcancel()
	if err := h.Revoked(rctx, s); err != nil && handleErr == nil {
		handleErr = fmt.Errorf("cannot finish generation %d of %s: %w", s.gen.ID, g.topic, err)
	}
	return handleErr
}

func (g *GroupConsumer) readPartition(ctx context.Context, s *Session, p int, h GroupHandler) error {
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:     g.cfg.Brokers,
		Topic:       g.topic,
		Partition:   p,
		Dialer:      g.dialer,
		MinBytes:    1,
		MaxBytes:    fetchMaxBytes(g.cfg),
		MaxWait:     250 * time.Millisecond,
		ErrorLogger: kafkago.LoggerFunc(func(msg string, args ...any) { g.logger.Warn("kafka reader: " + fmt.Sprintf(msg, args...)) }),
	})
	defer r.Close()
	if err := r.SetOffset(s.start[p]); err != nil {
		return fmt.Errorf("cannot seek %s/%d to %d: %w", g.topic, p, s.start[p], err)
	}
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("cannot fetch from %s/%d: %w", g.topic, p, err)
		}
		g.consumed.Inc()
		g.bytes.Add(float64(len(m.Value)))
		if err := h.Handle(ctx, s, m); err != nil {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				return nil
			}
			return fmt.Errorf("cannot handle %s/%d@%d: %w", g.topic, p, m.Offset, err)
		}
	}
}
