package aggregator

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

// The regression tests of the hostile-time and identity defects: each uses
// only Ingest, Flush and AddFinal under the shipped defaults.

// replacing is a model of the store's replacing merge: per (key, start,
// rollup) the highest version wins.
type replacing map[paneID]PaneStat

func (r replacing) add(ps ...PaneStat) {
	for _, p := range ps {
		id := paneID{p.Key, p.Start, 0}
		if p.Rollup {
			continue
		}
		if cur, ok := r[id]; !ok || p.Version > cur.Version {
			r[id] = p
		}
	}
}

func (r replacing) count(keep func(Key) bool) uint64 {
	var n uint64
	for id, p := range r {
		if keep == nil || keep(id.key) {
			n += p.Count
		}
	}
	return n
}

// TestMinInt64EventDoesNotStallTheWatermark: one event dated math.MinInt64
// must not make every later event of every key late (issue 12, item 1).
func TestMinInt64EventDoesNotStallTheWatermark(t *testing.T) {
	e, clk := newTestEngine(t, nil)
	base := t0.UnixMilli()
	store := replacing{}
	clk.t = t0.Add(time.Second)
	e.Ingest(0, 0, batchOf(ev{kA, base, 10, true}, ev{kB, math.MinInt64, 10, true}, ev{kA, base + 500, 10, true}))
	ps, _ := e.Flush()
	store.add(ps...)
	for s := int64(1); s <= 120; s++ {
		clk.t = t0.Add(time.Duration(s) * time.Second)
		e.Ingest(0, s, batchOf(ev{kA, base + s*1000, 10, true}))
		ps, _ := e.Flush()
		store.add(ps...)
	}
	clk.t = t0.Add(10 * time.Minute)
	ps, _ = e.Flush()
	store.add(ps...)
	if got := store.count(func(k Key) bool { return k == kA }); got != 122 {
		t.Fatalf("published %d events of %v, want all 122: one MinInt64 event made the rest late", got, kA.Method)
	}
	for id := range store {
		if id.key == kB {
			t.Errorf("a pane of the MinInt64 event was published: start %d", id.start)
		}
	}
}

// TestVeryNegativeTimesDoNotWrapPaneStarts: an event a few ms above
// math.MinInt64 must not produce a pane whose start wrapped into the far
// future (issue 12, item 2).
func TestVeryNegativeTimesDoNotWrapPaneStarts(t *testing.T) {
	e, clk := newTestEngine(t, nil)
	base := t0.UnixMilli()
	clk.t = t0.Add(time.Second)
	e.Ingest(0, 0, batchOf(ev{kB, math.MinInt64 + 3, 10, true}, ev{kB, -1, 10, true}, ev{kA, base, 10, true}))
	clk.t = t0.Add(10 * time.Minute)
	ps, _ := e.Flush()
	var a uint64
	for _, p := range ps {
		if p.Start < 0 || p.Start > clk.t.UnixMilli() {
			t.Errorf("pane of %v published with start %d (%s): outside 1970..now", p.Key.Method, p.Start, time.UnixMilli(p.Start).UTC())
		}
		if p.Key == kA && !p.Rollup {
			a += p.Count
		}
	}
	if a != 1 {
		t.Errorf("%v: %d events published, want 1", kA.Method, a)
	}
}

// TestParkedPaneIsEmittedOnce: a pane parked in the per-key map because
// its slot was taken must stay one pane when the slot frees, and come out
// of one Flush once, whole (issue 12, item 3).
func TestParkedPaneIsEmittedOnce(t *testing.T) {
	e, clk := newTestEngine(t, nil)
	base := t0.UnixMilli()
	clk.t = t0.Add(130 * time.Second)
	// Partition 1 holds the watermark back while partition 0 opens pane 0
	// and pane 8 of kA, which share a slot (8 slots).
	e.Ingest(1, 0, batchOf(ev{kB, base + 5_000, 1, true}))
	e.Ingest(0, 0, batchOf(ev{kA, base + 1_000, 1, true}))
	e.Ingest(0, 1, batchOf(ev{kA, base + 81_000, 2, true})) // parked
	// Partition 1 moves on: watermark 15 s, pane 0 is final, its slot free.
	e.Ingest(1, 1, batchOf(ev{kB, base + 45_000, 1, true}))
	store := replacing{}
	ps, _ := e.Flush()
	store.add(ps...)
	// Another event of pane 8 arrives once the slot is free.
	e.Ingest(0, 2, batchOf(ev{kA, base + 82_000, 3, true}))
	e.Ingest(0, 3, batchOf(ev{kB, base + 125_000, 1, true}))
	e.Ingest(1, 2, batchOf(ev{kB, base + 125_000, 1, true}))
	ps, _ = e.Flush() // watermark 95 s: pane 8 is final
	n := 0
	for _, p := range ps {
		if p.Key == kA && p.Start == base+80_000 && !p.Rollup {
			n++
			if p.Count != 2 || p.MinUs != 2 || p.MaxUs != 3 {
				t.Errorf("pane 8 = count %d min %d max %d, want the whole pane: 2 events, 2..3", p.Count, p.MinUs, p.MaxUs)
			}
		}
	}
	if n != 1 {
		t.Fatalf("pane 8 of kA emitted %d times by one Flush, want once", n)
	}
}

// TestClientAheadCannotMakeOthersLate: one client 9 minutes ahead of the
// wall clock, on the partition every honest source shares, must not make
// the honest events late (issue 12, item 4: 209 of 240 were dropped).
func TestClientAheadCannotMakeOthersLate(t *testing.T) {
	e, clk := newTestEngine(t, nil)
	base := t0.UnixMilli()
	store := replacing{}
	clk.t = t0
	bad := Key{System: "shop", App: "skewed", Group: "g1", IDC: "bj", Method: "Skew.call"}
	e.Ingest(0, 0, batchOf(ev{bad, base + 9*60_000, 1, true}))
	for s := int64(0); s < 240; s++ {
		clk.t = t0.Add(time.Duration(s)*time.Second + 500*time.Millisecond)
		// Honest events arrive a little after they happened.
		e.Ingest(0, s+1, batchOf(ev{kA, base + s*1000, 10, true}))
		ps, _ := e.Flush()
		store.add(ps...)
	}
	clk.t = t0.Add(20 * time.Minute)
	ps, _ := e.Flush()
	store.add(ps...)
	if got := store.count(func(k Key) bool { return k == kA }); got != 240 {
		t.Fatalf("published %d of 240 honest events: a client 9 min ahead made them late", got)
	}
}

// TestBacklogIsNotIdle: a partition that stops delivering while it has a
// backlog (a stalled consumer, a broker outage) must not let the watermark
// follow the wall clock: the backlog delivered afterwards lands in its panes
// (issue 12, item 5).
func TestBacklogIsNotIdle(t *testing.T) {
	e, clk := newTestEngine(t, nil)
	base := t0.UnixMilli()
	store := replacing{}
	// 40 messages were produced, one a second; the consumer read 10, then
	// stalled for 2 × idle_timeout + grace, with a backlog well over the
	// commit markers a read_committed consumer cannot see (markerSlack).
	for s := int64(0); s < 10; s++ {
		clk.t = t0.Add(time.Duration(s) * time.Second)
		reportHighWaterMark(e, 0, 40)
		e.Ingest(0, s, batchOf(ev{kA, base + s*1000, 10, true}))
	}
	for s := int64(10); s < 400; s++ {
		clk.t = t0.Add(time.Duration(s) * time.Second)
		ps, _ := e.Flush()
		store.add(ps...)
	}
	for s := int64(10); s < 40; s++ {
		reportHighWaterMark(e, 0, 40)
		e.Ingest(0, s, batchOf(ev{kA, base + s*1000, 10, true}))
	}
	clk.t = clk.t.Add(10 * time.Minute)
	ps, _ := e.Flush()
	store.add(ps...)
	if got := store.count(func(k Key) bool { return k == kA }); got != 40 {
		t.Fatalf("published %d of 40 events: the stalled partition counted as idle and its backlog came late", got)
	}
}

// TestOverflowPanesOfThreeMembersAddUp: three aggregators, each reading its
// own partitions, hit the key cap at once; their overflow panes must not
// replace each other in the store (issue 12, item 6).
func TestOverflowPanesOfThreeMembersAddUp(t *testing.T) {
	base := t0.UnixMilli()
	store := replacing{}
	var want uint64
	for m := range 3 {
		e, clk := newTestEngine(t, func(c *Config) { c.MaxKeys = 10 })
		clk.t = t0.Add(10 * time.Second)
		var evs []ev
		for i := range 50 + 7*m {
			evs = append(evs, ev{Key{System: "s", App: "a", Group: "g", IDC: "i", Method: fmt.Sprint("m", m, "-", i)}, base + int64(i), 10, true})
		}
		e.Ingest(int32(m), 0, batchOf(evs...))
		want += uint64(len(evs))
		clk.t = t0.Add(10 * time.Minute)
		ps, _ := e.Flush()
		store.add(ps...)
	}
	if got := store.count(nil); got != want {
		t.Fatalf("store holds %d events, want %d: overflow panes of different members replaced each other", got, want)
	}
	other := 0
	for id := range store {
		if strings.HasPrefix(id.key.Method, OtherMethod) {
			other++
		}
	}
	if other != 3 {
		t.Errorf("%d overflow panes in the store, want one per member (3)", other)
	}
}

// TestAddFinalCountsRedeliveredFoldedPanesOnce: the alert role's intake
// folds keys beyond its cap; a redelivered pane must replace its earlier
// copy, not add to it (issue 12, item 6).
func TestAddFinalCountsRedeliveredFoldedPanesOnce(t *testing.T) {
	dst, clk := newTestEngine(t, func(c *Config) { c.MaxKeys = 1 })
	base := t0.UnixMilli()
	clk.t = t0.Add(time.Minute)
	var want uint64
	for i := range 4 {
		k := Key{System: "s", App: "a", Group: "g", IDC: "i", Method: fmt.Sprint("m", i)}
		ps := PaneStat{Key: k, Start: base, PaneMs: 10_000, Version: uint64(i + 1), Count: uint64(i + 1),
			SumUs: 10 * uint64(i+1), MinUs: 10, MaxUs: 10, Centroids: []Centroid{{Mean: 10, Weight: uint32(i + 1)}}}
		want += ps.Count
		for range 3 { // delivered three times
			if err := dst.AddFinal(ps); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := dst.MergeKeys(func(Key) bool { return true }, time.Minute)
	if r.Count != want {
		t.Fatalf("windows hold %d events, want %d: redelivered panes were added again", r.Count, want)
	}
}

// TestAddFinalIgnoresFarFuturePane: one pane with a far-future start must
// not move the alert role's window edge past every real pane (issue 12,
// item 7).
func TestAddFinalIgnoresFarFuturePane(t *testing.T) {
	dst, clk := newTestEngine(t, nil)
	base := t0.UnixMilli()
	clk.t = t0.Add(time.Minute)
	pane := func(k Key, start int64) PaneStat {
		return PaneStat{Key: k, Start: start, PaneMs: 10_000, Version: 1, Count: 1, SumUs: 7, MinUs: 7, MaxUs: 7,
			Centroids: []Centroid{{Mean: 7, Weight: 1}}}
	}
	_ = dst.AddFinal(pane(kB, base+365*24*3600*1000)) // rejected or not, it must not count
	for s := int64(0); s < 5; s++ {
		if err := dst.AddFinal(pane(kA, base+s*10_000)); err != nil {
			t.Fatal(err)
		}
	}
	ws, ok := dst.Window(kA, time.Minute)
	if !ok || ws.Count != 5 {
		t.Fatalf("window of the real panes = %+v (ok %v), want 5 events: a far-future pane moved the window edge", ws, ok)
	}
}
