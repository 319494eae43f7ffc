package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
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

// FetchReporter is implemented by a GroupHandler that must tell a caught-up
// partition from one whose fetches fail (the aggregator's idle rule).
// Fetched is called for every fetch response that succeeded for an assigned
// partition, with or without records, with the partition's high-water mark
// (the offset of the next record), and never while fetches fail: a broker
// that is down or unreachable reports nothing. It is called from the
// client's goroutines, in high-water-mark order per partition, and must
// return quickly.
type FetchReporter interface {
	Fetched(partition int32, hwm int64)
}

// Session is one consumer group generation as a GroupHandler sees it. Its
// methods are safe for concurrent use.
type Session struct {
	gen   int32
	topic string
	parts []int
	start map[int]int64

	// work is the context of the generation's Handle calls; cancel ends
	// it when a rebalance waits for this member or Run ends.
	work   context.Context
	cancel context.CancelFunc

	mu       sync.RWMutex
	done     bool // Revoked returned: commits are refused
	assigned bool // Assigned was called
	commit   func(map[int]int64) error
}

// GenerationID returns the coordinator's generation number.
func (s *Session) GenerationID() int32 { return s.gen }

// Topic returns the consumed topic.
func (s *Session) Topic() string { return s.topic }

// Partitions returns the partitions assigned in this generation, sorted.
// The caller must not modify the slice.
func (s *Session) Partitions() []int { return s.parts }

// StartOffset returns the offset this generation starts reading partition
// from: the committed offset, or kafka-go's FirstOffset (-2) when the
// group has never committed one.
func (s *Session) StartOffset(partition int) int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if off, ok := s.start[partition]; ok {
		return off
	}
	return kafkago.FirstOffset
}

// Commit commits, for each partition among msgs, one past the highest
// offset in msgs. It fails once the generation is over, which is how a
// late commit for a partition that has moved is kept out.
func (s *Session) Commit(msgs ...kafkago.Message) error {
	offs := make(map[int]int64)
	for _, m := range msgs {
		if next := m.Offset + 1; next > offs[m.Partition] {
			offs[m.Partition] = next
		}
	}
	return s.CommitOffsets(offs)
}

// errGenerationOver is returned by a commit after the session's Revoked
// returned.
var errGenerationOver = errors.New("the generation is over")

// CommitOffsets commits offsets, a map from partition to the next offset to
// read (one past the last processed message).
func (s *Session) CommitOffsets(offsets map[int]int64) error {
	if len(offsets) == 0 {
		return nil
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	err := errGenerationOver
	if !s.done {
		err = s.commit(offsets)
	}
	if err != nil {
		return fmt.Errorf("cannot commit offsets of %s in generation %d: %w", s.topic, s.gen, err)
	}
	return nil
}

// GroupConsumer consumes one topic in a consumer group with franz-go's
// kgo client, read_committed, so that its handler learns when partitions
// are assigned and revoked and can flush and commit before they move (see
// DESIGN.md).
type GroupConsumer struct {
	cfg    Config
	topic  string
	group  string
	logger *slog.Logger

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
	if _, err := cfg.kgoOptions(logger); err != nil {
		return nil, fmt.Errorf("cannot create group consumer for %s: %w", topic, err)
	}
	o := applyOptions(opts)
	return &GroupConsumer{
		cfg: cfg, topic: topic, group: groupID, logger: logger,
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

// groupRun is the state of one Run: the client, the current session and
// the first error that ends the run.
type groupRun struct {
	g    *GroupConsumer
	h    GroupHandler
	ctx  context.Context // Run's context, for the Revoked flush's values
	loop context.Context // ends when Run ends or fails
	cl   *kgo.Client

	// smu serialises the session's lifecycle (assign, revoke), which the
	// client's group goroutine and Run's own shutdown both drive.
	smu sync.Mutex
	s   *Session

	fail func(error) // records the first error and ends the poll loop

	// feed reports fetch responses to a FetchReporter handler (nil
	// otherwise).
	feed *fetchFeed
}

// fetchFeed reports fetch responses to a FetchReporter. The records of a
// fetch reach the poll loop with their partition's high-water mark; an
// empty fetch response never does (the client drops it), so a client hook
// learns of every fetch response read without error from a broker and
// reports, for each assigned partition that broker leads, the high-water
// mark last polled. A caught-up partition's mark does not change without
// records, except by transaction markers, which a read_committed consumer
// never reads: those the aggregator allows for (aggregator/DESIGN.md).
type fetchFeed struct {
	to    FetchReporter
	topic string
	// owned is the current generation's client and partitions; nil
	// between generations, when nothing is reported.
	owned atomic.Pointer[fetchOwned]

	mu  sync.Mutex // orders the reports of a partition; guards hwm
	hwm map[int32]int64
}

type fetchOwned struct {
	cl    *kgo.Client
	parts []int32
}

// polled records the high-water marks of a poll's partitions and reports
// them, before their records are handled.
func (f *fetchFeed) polled(fs kgo.Fetches) {
	if f.owned.Load() == nil {
		return
	}
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if p.Topic != f.topic || p.Err != nil {
			return
		}
		f.mu.Lock()
		if p.HighWatermark >= f.hwm[p.Partition] {
			f.hwm[p.Partition] = p.HighWatermark
		}
		f.to.Fetched(p.Partition, f.hwm[p.Partition])
		f.mu.Unlock()
	})
}

// OnBrokerRead implements kgo.HookBrokerRead: a fetch response read without
// error from a broker reports every assigned partition it leads.
func (f *fetchFeed) OnBrokerRead(meta kgo.BrokerMetadata, key int16, _ int, _, _ time.Duration, err error) {
	if err != nil || key != kmsg.Fetch.Int16() {
		return
	}
	o := f.owned.Load()
	if o == nil {
		return
	}
	for _, p := range o.parts {
		if leader, _, lerr := o.cl.PartitionLeader(f.topic, p); lerr != nil || leader != meta.NodeID {
			continue
		}
		f.mu.Lock()
		hwm, ok := f.hwm[p]
		if !ok {
			hwm = -1
		}
		f.to.Fetched(p, hwm)
		f.mu.Unlock()
	}
}

// Run joins the group and drives h until ctx is done or h returns an
// error. Every generation ends with h.Revoked, including the last one, so
// Run flushes before it returns. It returns nil when ctx ends it.
func (g *GroupConsumer) Run(ctx context.Context, h GroupHandler) error {
	loopCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		errMu    sync.Mutex
		firstErr error
	)
	r := &groupRun{g: g, h: h, ctx: ctx, loop: loopCtx}
	r.fail = func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
		cancel()
	}
	kopts, err := g.cfg.kgoOptions(g.logger)
	if err != nil {
		return fmt.Errorf("cannot join group %s: %w", g.group, err)
	}
	if fr, ok := h.(FetchReporter); ok {
		r.feed = &fetchFeed{to: fr, topic: g.topic, hwm: map[int32]int64{}}
		kopts = append(kopts, kgo.WithHooks(r.feed))
	}
	kopts = append(kopts,
		kgo.ConsumerGroup(g.group),
		kgo.ConsumeTopics(g.topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		groupBalancers(),
		kgo.SessionTimeout(g.session),
		kgo.HeartbeatInterval(g.heartbeat),
		kgo.RebalanceTimeout(g.rebalance),
		kgo.OnPartitionsAssigned(r.assigned),
		kgo.AdjustFetchOffsetsFn(r.started),
		kgo.OnPartitionsRevoked(r.revoked),
		kgo.OnPartitionsLost(r.revoked),
		kgo.OnPartitionsCallbackBlocked(r.blocked),
	)
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		return fmt.Errorf("cannot join group %s: %w", g.group, err)
	}
	r.cl = cl
	r.poll(loopCtx)

	// The last generation ends here: Revoked flushes and commits while
	// this member is still in the generation (a rebalance waiting for
	// this member's poll stays blocked until then), then Close leaves
	// the group; its own revocation finds no session left.
	r.end()
	cl.AllowRebalance()
	cl.Close()
	errMu.Lock()
	defer errMu.Unlock()
	return firstErr
}

// poll fetches and hands the records to the handler until ctx is done.
// Between a poll and AllowRebalance no rebalance can start
// (BlockRebalanceOnPoll), so every Handle of a poll returns before the
// generation's Revoked runs.
func (r *groupRun) poll(ctx context.Context) {
	g := r.g
	var warned time.Time
	for {
		fs := r.cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return
		}
		fs.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return
			}
			if time.Since(warned) > time.Minute {
				warned = time.Now()
				g.logger.Warn("cannot fetch, retrying", "topic", t, "partition", p, "group", g.group, "err", err)
			}
		})
		r.smu.Lock()
		s := r.s
		r.smu.Unlock()
		if s == nil || !s.assigned {
			r.cl.AllowRebalance()
			continue
		}
		if r.feed != nil {
			r.feed.polled(fs)
		}
		var wg sync.WaitGroup
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if p.Topic != g.topic || len(p.Records) == 0 {
				return
			}
			wg.Go(func() {
				if err := r.handle(s, p); err != nil {
					r.fail(err)
				}
			})
		})
		wg.Wait()
		r.cl.AllowRebalance()
	}
}

// handle hands one partition's records of a poll to the handler in order.
func (r *groupRun) handle(s *Session, p kgo.FetchTopicPartition) error {
	for _, rec := range p.Records {
		if s.work.Err() != nil {
			// A rebalance is waiting or Run is ending: the rest is
			// fetched again from the committed offset.
			return nil
		}
		m := toMessage(rec, p.HighWatermark)
		r.g.consumed.Inc()
		r.g.bytes.Add(float64(len(m.Value)))
		if err := r.h.Handle(s.work, s, m); err != nil {
			if s.work.Err() != nil && errors.Is(err, context.Canceled) {
				return nil
			}
			return fmt.Errorf("cannot handle %s/%d@%d: %w", r.g.topic, m.Partition, m.Offset, err)
		}
	}
	return nil
}

// assigned starts a session when the client has joined a generation. The
// handler's Assigned runs once the start offsets are known (started), or
// here when this member got no partitions.
func (r *groupRun) assigned(_ context.Context, cl *kgo.Client, assigned map[string][]int32) {
	g := r.g
	_, gen := cl.GroupMetadata()
	s := &Session{gen: gen, topic: g.topic, start: map[int]int64{}}
	for _, p := range assigned[g.topic] {
		s.parts = append(s.parts, int(p))
	}
	slices.Sort(s.parts)
	s.work, s.cancel = context.WithCancel(r.loop)
	s.commit = func(offs map[int]int64) error {
		eo := make(map[int32]kgo.EpochOffset, len(offs))
		for p, o := range offs {
			eo[int32(p)] = kgo.EpochOffset{Epoch: -1, Offset: o}
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), g.cfg.WriteTimeout)
		defer cancel()
		if err := commitSync(cctx, cl, g.topic, eo); err != nil {
			g.commitErrors.Inc()
			return err
		}
		g.commits.Inc()
		return nil
	}
	r.smu.Lock()
	defer r.smu.Unlock()
	r.s = s
	if r.feed != nil {
		o := &fetchOwned{cl: cl}
		for _, p := range s.parts {
			o.parts = append(o.parts, int32(p))
		}
		r.feed.owned.Store(o)
	}
	g.generations.Inc()
	g.logger.Info("consumer group generation started", "group", g.group, "topic", g.topic,
		"generation", gen, "partitions", s.parts)
	if len(s.parts) == 0 {
		r.callAssigned(s)
	}
}

// started learns the offsets the generation starts from and calls the
// handler's Assigned before any record is fetched.
func (r *groupRun) started(_ context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	r.smu.Lock()
	defer r.smu.Unlock()
	s := r.s
	if s == nil || s.assigned {
		return offsets, nil
	}
	s.mu.Lock()
	for p, o := range offsets[r.g.topic] {
		s.start[int(p)] = o.EpochOffset().Offset
	}
	s.mu.Unlock()
	r.callAssigned(s)
	return offsets, nil
}

// callAssigned runs the handler's Assigned; r.smu is held.
func (r *groupRun) callAssigned(s *Session) {
	s.assigned = true
	if err := r.h.Assigned(s.work, s); err != nil {
		r.fail(fmt.Errorf("cannot start generation %d of %s: %w", s.gen, r.g.topic, err))
	}
}

// blocked is called when a rebalance waits for this member's poll: the
// handlers are told to stop so the revocation can run.
func (r *groupRun) blocked(context.Context, *kgo.Client) {
	r.smu.Lock()
	s := r.s
	r.smu.Unlock()
	if s != nil {
		s.cancel()
	}
}

// revoked ends the current session when the client leaves its
// generation (rebalance, lost session, leaving the group).
func (r *groupRun) revoked(context.Context, *kgo.Client, map[string][]int32) { r.end() }

// end runs the handler's Revoked for the current session, if it has not
// run yet, and refuses the session's commits from then on.
func (r *groupRun) end() {
	r.smu.Lock()
	defer r.smu.Unlock()
	s := r.s
	if s == nil {
		return
	}
	r.s = nil
	if r.feed != nil {
		r.feed.owned.Store(nil)
	}
	s.cancel()
	if s.assigned {
		// The handler flushes with a context of its own: Run's may be
		// done already, and the flush is what makes shutdown lose
		// nothing.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), r.g.revokeTimeout)
		if err := r.h.Revoked(rctx, s); err != nil {
			r.fail(fmt.Errorf("cannot finish generation %d of %s: %w", s.gen, r.g.topic, err))
		}
		cancel()
	}
	s.mu.Lock()
	s.done = true
	s.mu.Unlock()
	r.g.logger.Info("consumer group generation ended", "group", r.g.group, "topic", r.g.topic, "generation", s.gen)
}
