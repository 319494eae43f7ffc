package aggregate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/aggregator/late"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
)

// journal records produces and commits in the order they happen.
type journal struct {
	mu      sync.Mutex
	entries []string
	commits []map[int]int64
}

func (j *journal) add(e string) {
	j.mu.Lock()
	j.entries = append(j.entries, e)
	j.mu.Unlock()
}

func (j *journal) list() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.entries)
}

// fakeProducer records its produces in a journal; block, when set, holds a
// produce until it is closed, and fail makes the next produces fail.
type fakeProducer struct {
	name    string
	j       *journal
	entered chan struct{} // receives once per produce that starts
	block   chan struct{}
	mu      sync.Mutex
	fail    int
	msgs    []kafkago.Message
}

func (p *fakeProducer) Produce(ctx context.Context, msgs ...kafkago.Message) error {
	if p.entered != nil {
		p.entered <- struct{}{}
	}
	if p.block != nil {
		select {
		case <-p.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail > 0 {
		p.fail--
		return errors.New("broker unavailable")
	}
	p.msgs = append(p.msgs, msgs...)
	p.j.add(fmt.Sprintf("%s:%d", p.name, len(msgs)))
	return nil
}

type fakeSession struct{ j *journal }

func (s *fakeSession) CommitOffsets(offs map[int]int64) error {
	s.j.mu.Lock()
	s.j.commits = append(s.j.commits, offs)
	s.j.mu.Unlock()
	s.j.add(fmt.Sprintf("commit:%v", offs))
	return nil
}

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// callsMessage encodes calls of method m of one key at the given times.
func callsMessage(t *testing.T, offset int64, m string, ts ...time.Time) kafkago.Message {
	t.Helper()
	var b codec.Builder
	ls := b.LabelSet([]schemas.Label{{Name: schemas.LabelSystem, Value: "s"}, {Name: schemas.LabelApp, Value: "a"},
		{Name: schemas.LabelGroup, Value: "g"}, {Name: schemas.LabelIDC, Value: "i"}})
	s := b.Series(ls, m)
	for _, x := range ts {
		b.AddCall(codec.Call{TsUnixMs: x.UnixMilli(), Series: s, LatencyUs: 100, OK: true})
	}
	return kafkago.Message{Partition: 0, Offset: offset, Value: b.AppendTo(nil)}
}

func newTestHandler(t *testing.T, clk *testClock, stats, lateP *fakeProducer, j *journal) *groupHandler[aggregator.PaneStat] {
	t.Helper()
	cfg := aggregator.DefaultConfig()
	cfg.Rollup = 0
	eng, err := aggregator.New(cfg, aggregator.WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	h := &groupHandler[aggregator.PaneStat]{
		eng: callsEngine{eng}, log: slog.New(slog.DiscardHandler), m: m, tm: m.calls, prod: stats,
		encode:   func(panes []aggregator.PaneStat) ([]kafkago.Message, error) { return encode(panes, 1<<20, 1) },
		lateProd: lateP,
		encodeLate: func(events []aggregator.LateEvent) []kafkago.Message {
			return late.Encode(events, 1<<20, 1)
		},
		ownerKey: callOwnerKey, parts: 1, what: "panes",
		ingested: map[int32]int64{}, batches: map[int]*codec.Batch{0: new(codec.Batch)},
	}
	h.s = &fakeSession{j: j}
	h.owned = map[int32]bool{0: true}
	return h
}

// TestIngestProceedsWhileStatsProduceBlocks holds the produce to stats of
// a flush and feeds the handler a message meanwhile: Handle must return
// while the produce is blocked, nothing may be committed before the
// produce is acknowledged, and the commit that follows passes only what
// was published.
func TestIngestProceedsWhileStatsProduceBlocks(t *testing.T) {
	j := &journal{}
	clk := &testClock{t: t0}
	stats := &fakeProducer{name: "stats", j: j, entered: make(chan struct{}, 1), block: make(chan struct{})}
	h := newTestHandler(t, clk, stats, &fakeProducer{name: "late", j: j}, j)
	ctx := context.Background()
	if err := h.Handle(ctx, nil, callsMessage(t, 0, "m", t0, t0.Add(time.Second))); err != nil {
		t.Fatal(err)
	}
	clk.set(t0.Add(2 * time.Minute)) // idle: the pane of t0 is final
	flushed := make(chan error, 1)
	go func() { flushed <- h.tick(ctx) }()
	select {
	case <-stats.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the flush never produced")
	}
	handled := make(chan error, 1)
	go func() { handled <- h.Handle(ctx, nil, callsMessage(t, 1, "m", t0.Add(2*time.Minute))) }()
	select {
	case err := <-handled:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Handle waited for the produce to stats")
	}
	if got := j.list(); len(got) != 0 {
		t.Fatalf("before the produce was acknowledged: %v", got)
	}
	close(stats.block)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	// Offset 0 is published; offset 1 sits in an open pane.
	if got, want := j.list(), []string{"stats:1", "commit:map[0:1]"}; !slices.Equal(got, want) {
		t.Fatalf("journal %v, want %v", got, want)
	}
}

// TestLateEventsPublishedBeforeCommit sends a call dated far beyond its
// pane's grace: it must go to the late topic, the commit that passes its
// message must come only after the late produce is acknowledged, and a
// failed late produce must hold the commit back and be retried with the
// same events by the next flush.
func TestLateEventsPublishedBeforeCommit(t *testing.T) {
	j := &journal{}
	clk := &testClock{t: t0}
	lateP := &fakeProducer{name: "late", j: j}
	h := newTestHandler(t, clk, &fakeProducer{name: "stats", j: j}, lateP, j)
	ctx := context.Background()
	if err := h.Handle(ctx, nil, callsMessage(t, 0, "m", t0)); err != nil {
		t.Fatal(err)
	}
	clk.set(t0.Add(20 * time.Minute)) // idle for long: the watermark is far past t0 + grace
	if err := h.tick(ctx); err != nil {
		t.Fatal(err)
	}
	lateP.fail = 1
	if err := h.Handle(ctx, nil, callsMessage(t, 1, "m", t0.Add(time.Second), t0.Add(2*time.Second))); err != nil {
		t.Fatal(err)
	}
	if err := h.tick(ctx); err == nil {
		t.Fatal("a failed late produce was not reported")
	}
	if err := h.tick(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"stats:1", "commit:map[0:1]", "late:1", "commit:map[0:2]"}
	if got := j.list(); !slices.Equal(got, want) {
		t.Fatalf("journal %v, want %v", got, want)
	}
	var b codec.Batch
	if err := codec.Decode(lateP.msgs[0].Value, &b); err != nil {
		t.Fatal(err)
	}
	if len(b.Calls) != 2 || b.Calls[0].TsUnixMs != t0.Add(time.Second).UnixMilli() || b.Symbol(b.Series[b.Calls[0].Series].Method) != "m" {
		t.Fatalf("late message holds %+v, want the two calls of m", b.Calls)
	}
}
