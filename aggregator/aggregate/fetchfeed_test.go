package aggregate

import (
	"context"
	"errors"
	"maps"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas/codec"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

// feedCounter counts the fetch reports that reach the engine. The test
// moves the fake clock under mu, so every report is at one clock reading.
type feedCounter struct {
	engine[aggregator.PaneStat]
	mu sync.Mutex
	n  int
}

func (f *feedCounter) Fetched(partition int32, hwm int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.engine.Fetched(partition, hwm)
	f.n++
}

func (f *feedCounter) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

// TestFetchFeedHoldsTheWatermarkWhileFetchesFail runs the calls handler in
// a real consumer group on the embedded broker, with a fake clock for the
// engine. A caught-up partition with no traffic, whose fetches keep
// succeeding, becomes idle: the watermark follows the clock. Then the
// broker is stopped for longer than idle_timeout + grace (on the fake
// clock): the partition's fetches fail, so it is not idle and the watermark
// stays at its events. Calls dated during the outage, delivered once the
// broker is back, are on time: none is late, none dropped, and the panes
// published hold every call.
func TestFetchFeedHoldsTheWatermarkWhileFetchesFail(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bcfg := kafka.BrokerConfig{Listen: "127.0.0.1:0", DataDir: t.TempDir(), MaxMessageBytes: 8 << 20}
	b, err := kafka.StartBroker(ctx, bcfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { b.Close() }()
	bcfg.Listen = b.Addr()
	kcfg := kafka.DefaultConfig()
	kcfg.Brokers = []string{b.Addr()}
	kcfg.TopicPrefix = "feed."
	kcfg.Partitions = maps.Clone(kcfg.Partitions)
	kcfg.Partitions[kafka.TopicCalls] = 1
	if err := kafka.EnsureTopics(ctx, kcfg); err != nil {
		t.Fatal(err)
	}
	topic := kcfg.Topic(kafka.TopicCalls)

	j := &journal{}
	clk := &testClock{t: t0}
	stats, lateP := &fakeProducer{name: "stats", j: j}, &fakeProducer{name: "late", j: j}
	h := newTestHandler(t, clk, stats, lateP, j)
	eng := h.eng.(callsEngine).Engine
	feed := &feedCounter{engine: h.eng}
	h.eng = feed
	h.s, h.owned = nil, nil
	cfg := eng.Config()
	lateMs := cfg.AllowedLateness.Milliseconds()
	gc, err := kafka.NewGroupConsumer(kcfg, topic, "feed", nil)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- gc.Run(runCtx, h) }()
	defer func() {
		stop()
		if err := <-ran; err != nil && !errors.Is(err, context.Canceled) {
			t.Error(err)
		}
	}()

	prod, err := kafka.NewProducer(kcfg, topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { prod.Close() }()
	produce := func(ts ...time.Time) {
		t.Helper()
		if err := prod.Produce(ctx, callsMessage(t, 0, "m", ts...)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	ingested := func(off int64) func() bool {
		return func() bool {
			h.mu.Lock()
			defer h.mu.Unlock()
			last, ok := h.ingested[0]
			return ok && last >= off
		}
	}
	// step moves the fake clock to at and waits for a fetch report made at it.
	step := func(at time.Time) {
		t.Helper()
		feed.mu.Lock()
		clk.set(at)
		n := feed.n
		feed.mu.Unlock()
		waitFor("a fetch report", func() bool { return feed.count() > n })
	}
	// fetchFor lets fetches succeed from `from` for idle_timeout + 1s, in
	// steps shorter than idle_timeout, and returns the clock at the end.
	fetchFor := func(from time.Time) time.Time {
		t.Helper()
		end := from.Add(cfg.IdleTimeout + time.Second)
		for at := from; at.Before(end); at = at.Add(cfg.IdleTimeout / 2) {
			step(at)
		}
		step(end)
		return end
	}
	flush := func() int64 {
		t.Helper()
		// Commits may fail while the group recovers from the outage;
		// what is asserted is what the engine published.
		_ = h.tick(ctx)
		wm, _ := eng.Watermark()
		return wm
	}

	produce(t0)
	waitFor("the first message", ingested(0))
	// Caught up, fetching, silent: idle after idle_timeout of fetches.
	idleAt := fetchFor(t0)
	if wm := flush(); wm != idleAt.UnixMilli()-lateMs {
		t.Fatalf("caught-up, fetching, silent partition: watermark %d, want the clock − lateness %d", wm, idleAt.UnixMilli()-lateMs)
	}

	// The broker stops: no fetch succeeds for longer than idle_timeout +
	// grace of the engine's clock.
	b.Close()
	back := idleAt.Add(cfg.Grace + 2*cfg.IdleTimeout)
	feed.mu.Lock()
	clk.set(back)
	feed.mu.Unlock()
	b, err = kafka.StartBroker(ctx, bcfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if wm := flush(); wm != idleAt.UnixMilli()-lateMs {
		t.Fatalf("after %s of failed fetches: watermark %d, want it held at %d", back.Sub(idleAt), wm, idleAt.UnixMilli()-lateMs)
	}
	// The calls a producer held during the outage arrive.
	held := []time.Time{idleAt.Add(time.Second), idleAt.Add(15 * time.Second), idleAt.Add(cfg.Grace)}
	produce(held...)
	waitFor("the held calls", ingested(1))
	if wm, want := flush(), held[len(held)-1].UnixMilli()-lateMs; wm != want {
		t.Fatalf("with the held calls in: watermark %d, want their latest − lateness %d", wm, want)
	}
	// Fetching and silent again: idle, and the held calls' panes come out.
	done := fetchFor(back)
	if wm := flush(); wm != done.UnixMilli()-lateMs {
		t.Fatalf("fetching and silent after the outage: watermark %d, want %d", wm, done.UnixMilli()-lateMs)
	}

	if n := len(lateP.msgs); n != 0 {
		t.Errorf("%d late messages: calls delivered after the outage went past their grace", n)
	}
	counts := map[int64]uint64{} // pane start → highest count published
	var batch codec.Batch
	var pb tpflowpb.PaneStat
	stats.mu.Lock()
	for _, m := range stats.msgs {
		if err := codec.Decode(m.Value, &batch); err != nil {
			t.Fatal(err)
		}
		for _, raw := range batch.Panes {
			if err := proto.Unmarshal(raw, &pb); err != nil {
				t.Fatal(err)
			}
			counts[pb.PaneStartUnixMs] = max(counts[pb.PaneStartUnixMs], pb.Count)
		}
	}
	stats.mu.Unlock()
	var total uint64
	for _, n := range counts {
		total += n
	}
	if want := uint64(1 + len(held)); total != want || len(counts) != 1+len(held) {
		t.Errorf("published panes %v hold %d calls, want %d in %d panes", counts, total, want, 1+len(held))
	}
}
