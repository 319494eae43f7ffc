package aggregator

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tpflow/tpflow/schemas/codec"
)

// ev is one call in a test.
type ev struct {
	key Key
	ts  int64 // unix ms
	lat uint32
	ok  bool
}

// batchOf builds a decoded batch the way the codec would present it.
func batchOf(evs ...ev) *codec.Batch {
	b := &codec.Batch{Symbols: []string{""}, LabelOffsets: []uint32{0}}
	sym := map[string]uint32{"": 0}
	ref := func(s string) uint32 {
		if r, ok := sym[s]; ok {
			return r
		}
		sym[s] = uint32(len(b.Symbols))
		b.Symbols = append(b.Symbols, s)
		return sym[s]
	}
	series := map[Key]uint32{}
	for _, e := range evs {
		si, ok := series[e.key]
		if !ok {
			b.LabelRefs = append(b.LabelRefs,
				ref("app"), ref(e.key.App), ref("group"), ref(e.key.Group),
				ref("idc"), ref(e.key.IDC), ref("system"), ref(e.key.System))
			b.LabelOffsets = append(b.LabelOffsets, uint32(len(b.LabelRefs)))
			ls := uint32(len(b.LabelOffsets) - 2)
			si = uint32(len(b.Series))
			b.Series = append(b.Series, codec.Series{Labels: ls, Method: ref(e.key.Method)})
			series[e.key] = si
		}
		b.Calls = append(b.Calls, codec.Call{TsUnixMs: e.ts, Series: si, LatencyUs: e.lat, OK: e.ok})
	}
	return b
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// newTestEngine returns an engine of the default config with rollups off
// (the pane tests count panes; rollup_test.go turns them on), changed by mod.
func newTestEngine(t *testing.T, mod func(*Config)) (*Engine, *clock) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Rollup = 0
	if mod != nil {
		mod(&cfg)
	}
	c := &clock{t: t0}
	e, err := New(cfg, WithClock(c.now))
	if err != nil {
		t.Fatal(err)
	}
	return e, c
}

var kA = Key{System: "shop", App: "cart", Group: "g1", IDC: "bj", Method: "Cart.add"}
var kB = Key{System: "shop", App: "cart", Group: "g1", IDC: "bj", Method: "Cart.del"}

type paneID struct {
	key     Key
	start   int64
	version uint64
}

func TestOutOfOrderWithinLatenessLandsInItsPane(t *testing.T) {
	e, clk := newTestEngine(t, nil)
	base := t0.UnixMilli()
	// Pane 0 [0,10s), pane 1 [10s,20s), pane 2 [20s,30s), arriving shuffled
	// but never more than the 30 s lateness behind the newest event.
	evs := []ev{
		{kA, base + 25_000, 300, true}, {kA, base + 1_000, 100, true},
		{kA, base + 12_000, 200, false}, {kA, base + 9_999, 101, true},
		{kA, base + 10_000, 201, true}, {kA, base + 0, 99, true},
	}
	clk.t = t0.Add(26 * time.Second)
	for i, x := range evs {
		e.Ingest(0, int64(i), batchOf(x))
	}
	if panes, _ := e.Flush(); len(panes) != 0 {
		t.Fatalf("panes emitted before the watermark passed them: %+v", panes)
	}
	// An event at 65 s moves the watermark to 35 s: panes 0..2 become final.
	clk.t = t0.Add(66 * time.Second)
	e.Ingest(0, 6, batchOf(ev{kA, base + 65_000, 1, true}))
	panes, commit := e.Flush()
	if len(panes) != 3 {
		t.Fatalf("got %d panes, want 3: %+v", len(panes), panes)
	}
	want := []struct {
		start            int64
		count, errs, sum uint64
		min, max         uint32
	}{
		{base, 3, 0, 300, 99, 101},
		{base + 10_000, 2, 1, 401, 200, 201},
		{base + 20_000, 1, 0, 300, 300, 300},
	}
	for i, w := range want {
		p := panes[i]
		if p.Start != w.start || p.Count != w.count || p.Errors != w.errs || p.SumUs != w.sum || p.MinUs != w.min || p.MaxUs != w.max || p.Version != w.count {
			t.Errorf("pane %d = %+v, want %+v", i, p, w)
		}
	}
	if panes[0].P50 != 100 || panes[0].P99 != 101 {
		t.Errorf("pane 0 TP50/TP99 = %v/%v, want exact 100/101", panes[0].P50, panes[0].P99)
	}
	// The event at 65 s (offset 6) is in an open pane: offset 6 must not be
	// committed yet, everything before it may.
	if commit[0] != 6 {
		t.Errorf("commit offset = %d, want 6", commit[0])
	}
}

func TestLateEventsWithinGraceCorrectBeyondGraceAreCounted(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	cfg.Rollup = 0
	cfg.Grace = 20 * time.Second
	clk := &clock{t: t0}
	e, err := New(cfg, WithClock(clk.now), WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	base := t0.UnixMilli()
	e.Ingest(0, 0, batchOf(ev{kA, base + 1_000, 100, true}))
	clk.t = t0.Add(46 * time.Second)
	e.Ingest(0, 1, batchOf(ev{kA, base + 45_000, 5, true})) // watermark 15 s
	first, _ := e.Flush()
	if len(first) != 1 || first[0].Start != base || first[0].Version != 1 || first[0].Count != 1 {
		t.Fatalf("first flush = %+v, want pane 0 version 1 count 1", first)
	}
	// Late for pane 0 (final), watermark 15 s < pane end 10 s + grace 20 s.
	st := e.Ingest(0, 2, batchOf(ev{kA, base + 2_000, 300, false}))
	if st.Late != 1 || st.LateOut != 0 {
		t.Fatalf("ingest stats %+v, want one late event", st)
	}
	corr, commit := e.Flush()
	if len(corr) != 1 || !corr[0].Correction || corr[0].Version <= first[0].Version || corr[0].Count != 2 || corr[0].Errors != 1 || corr[0].MaxUs != 300 {
		t.Fatalf("correction = %+v, want pane 0 with a higher version, count 2 errors 1 max 300", corr)
	}
	if commit[0] != 1 {
		t.Errorf("commit = %d, want 1 (offset 1 still in an open pane)", commit[0])
	}
	if again, _ := e.Flush(); len(again) != 0 {
		t.Fatalf("correction emitted twice: %+v", again)
	}
	// Watermark to 95 s: pane 0's grace (ends 30 s) is long over.
	clk.t = t0.Add(126 * time.Second)
	e.Ingest(0, 3, batchOf(ev{kA, base + 125_000, 5, true}))
	e.Flush()
	st = e.Ingest(0, 4, batchOf(ev{kA, base + 3_000, 7, true}, ev{kA, base + 4_000, 7, true}))
	if st.LateOut != 2 || st.Late != 0 {
		t.Fatalf("ingest stats %+v, want two handed to the late output", st)
	}
	e.Flush() // without a late path: dropped and counted
	if got := testutil.ToFloat64(e.m.lateDropped); got != 2 {
		t.Errorf("late_dropped_events_total = %v, want 2", got)
	}
	if got := testutil.ToFloat64(e.m.late); got != 1 {
		t.Errorf("late_events_total = %v, want 1", got)
	}
	if n, err := testutil.GatherAndCount(reg, "tpflow_aggregate_late_dropped_events_total"); err != nil || n != 1 {
		t.Errorf("metric not registered: %d, %v", n, err)
	}
}

func TestIdlePartitionDoesNotStallOutput(t *testing.T) {
	e, clk := newTestEngine(t, func(c *Config) { c.IdleTimeout = 15 * time.Second })
	base := t0.UnixMilli()
	e.Ingest(1, 0, batchOf(ev{kB, base + 500, 10, true})) // partition 1 then goes quiet
	for s := int64(0); s <= 60; s++ {
		clk.t = t0.Add(time.Duration(s) * time.Second)
		e.Ingest(0, s, batchOf(ev{kA, base + s*1000, 10, true}))
	}
	panes, _ := e.Flush()
	// Partition 0's watermark is 30 s; partition 1 idle for 60 s must not
	// hold it at 0.5 s − 30 s.
	var startsA []int64
	for _, p := range panes {
		if p.Key == kA {
			startsA = append(startsA, p.Start-base)
		}
	}
	if !slices.Equal(startsA, []int64{0, 10_000, 20_000}) {
		t.Fatalf("panes of the active partition = %v, want [0 10000 20000]", startsA)
	}
}

func TestAllIdleWatermarkFollowsWallClock(t *testing.T) {
	e, clk := newTestEngine(t, nil)
	base := t0.UnixMilli()
	e.Ingest(0, 0, batchOf(ev{kA, base + 3_000, 10, true}))
	cfg := e.Config()
	// Traffic stops. Within pane + lateness + idle time-out the pane is out.
	deadline := t0.Add(cfg.Pane + cfg.AllowedLateness + cfg.IdleTimeout)
	var got []PaneStat
	for clk.t = t0; !clk.t.After(deadline) && len(got) == 0; clk.t = clk.t.Add(time.Second) {
		got, _ = e.Flush()
	}
	if len(got) != 1 || got[0].Count != 1 {
		t.Fatalf("last pane not published by %s: %+v", deadline.Sub(t0), got)
	}
}

// TestAgainstBruteForce feeds random out-of-order events over many keys and
// partitions and compares every emitted pane with an exact computation.
func TestAgainstBruteForce(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 7))
			e, clk := newTestEngine(t, func(c *Config) { c.RawBufferLimit = 64 })
			base := t0.UnixMilli()
			exact := map[paneID]*acc{}
			keys := make([]Key, 40)
			for i := range keys {
				keys[i] = Key{System: "s", App: fmt.Sprint("app", i%5), Group: "g", IDC: fmt.Sprint("idc", i%2), Method: fmt.Sprint("m", i)}
			}
			var off [3]int64
			now := base
			for step := 0; step < 400; step++ {
				now += int64(r.IntN(500))
				clk.t = time.UnixMilli(now)
				p := int32(r.IntN(3))
				var evs []ev
				for j := 0; j < 1+r.IntN(20); j++ {
					ts := now - int64(r.IntN(25_000)) // within lateness
					k := keys[r.IntN(len(keys))]
					lat := uint32(1 + r.IntN(5000))
					ok := r.IntN(10) > 0
					evs = append(evs, ev{k, ts, lat, ok})
					id := paneID{k, e.paneStart(ts), 0}
					if exact[id] == nil {
						exact[id] = &acc{}
					}
					exact[id].vals = append(exact[id].vals, lat)
					if !ok {
						exact[id].errors++
					}
				}
				st := e.Ingest(p, off[p], batchOf(evs...))
				if st.Accepted != len(evs) {
					t.Fatalf("step %d: %+v, want all %d accepted", step, st, len(evs))
				}
				off[p]++
				if step%10 == 0 {
					checkPanes(t, e, exact)
				}
			}
			clk.t = clk.t.Add(2 * time.Minute) // all idle: everything final
			checkPanes(t, e, exact)
			if len(exact) != 0 {
				t.Fatalf("%d panes never emitted", len(exact))
			}
		})
	}
}

type acc struct {
	vals   []uint32
	errors uint64
}

// checkStats sorts a's latencies and fails the test unless p's count,
// errors, sum, min and max are exactly theirs; what names p in the message.
func (a *acc) checkStats(t *testing.T, what string, p PaneStat) {
	t.Helper()
	slices.Sort(a.vals)
	var sum uint64
	for _, v := range a.vals {
		sum += uint64(v)
	}
	if p.Count != uint64(len(a.vals)) || p.Errors != a.errors || p.SumUs != sum || p.MinUs != a.vals[0] || p.MaxUs != a.vals[len(a.vals)-1] {
		t.Fatalf("%s %v@%d: count/errors/sum/min/max %d/%d/%d/%d/%d, want %d/%d/%d/%d/%d", what, p.Key, p.Start,
			p.Count, p.Errors, p.SumUs, p.MinUs, p.MaxUs, len(a.vals), a.errors, sum, a.vals[0], a.vals[len(a.vals)-1])
	}
}

func checkPanes(t *testing.T, e *Engine, exact map[paneID]*acc) {
	t.Helper()
	panes, _ := e.Flush()
	for _, p := range panes {
		id := paneID{p.Key, p.Start, 0}
		x := exact[id]
		if x == nil {
			t.Fatalf("pane %v %d emitted twice or unknown", p.Key, p.Start)
		}
		delete(exact, id)
		x.checkStats(t, "pane", p)
		// Small panes keep singleton centroids: quantiles are exact.
		for _, q := range []struct {
			q   float64
			got float64
		}{{0.5, p.P50}, {0.9, p.P90}, {0.99, p.P99}, {0.999, p.P999}} {
			if want := exactQuantile(x.vals, q.q); len(x.vals) < 50 && q.got != want {
				t.Fatalf("pane %v@%d (n=%d): q%.3f = %v, want %v", p.Key, p.Start, len(x.vals), q.q, q.got, want)
			} else if rel := relErr(q.got, want); rel > 0.05 {
				t.Fatalf("pane %v@%d (n=%d): q%.3f = %v, want %v (%.1f %%)", p.Key, p.Start, len(x.vals), q.q, q.got, want, 100*rel)
			}
		}
	}
}

func TestEachVersionEmittedOnce(t *testing.T) {
	e, clk := newTestEngine(t, nil)
	base := t0.UnixMilli()
	type vid struct{ start, version int64 }
	seen := map[vid]int{}
	countOf := map[vid]uint64{}
	counts := map[int64]uint64{}
	r := rand.New(rand.NewPCG(3, 3))
	var total uint64
	for s := 0; s < 300; s++ {
		clk.t = t0.Add(time.Duration(s) * time.Second)
		ts := base + int64(s)*1000 - int64(r.IntN(40_000)) // some beyond lateness
		st := e.Ingest(0, int64(s), batchOf(ev{kA, ts, 10, true}))
		total += uint64(st.Accepted + st.Late)
		panes, _ := e.Flush()
		for _, p := range panes {
			seen[vid{p.Start, int64(p.Version)}]++
			countOf[vid{p.Start, int64(p.Version)}] = p.Count
		}
	}
	clk.t = clk.t.Add(5 * time.Minute)
	panes, _ := e.Flush()
	for _, p := range panes {
		seen[vid{p.Start, int64(p.Version)}]++
		countOf[vid{p.Start, int64(p.Version)}] = p.Count
	}
	latest := map[int64]uint64{}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("pane %d version %d emitted %d times", id.start, id.version, n)
		}
		if v := latest[id.start]; uint64(id.version) > v {
			latest[id.start] = uint64(id.version)
			counts[id.start] = countOf[id]
		}
	}
	// The highest version of every pane together holds every accepted event,
	// as a store that keeps the highest version would.
	var got uint64
	for _, c := range counts {
		got += c
	}
	if got != total {
		t.Errorf("latest versions hold %d events, accepted %d", got, total)
	}
	if len(seen) == len(latest) {
		t.Errorf("no corrections happened: the test data must include late events")
	}
}

func TestKeyCapHoldsUnderAMillionKeys(t *testing.T) {
	e, clk := newTestEngine(t, func(c *Config) { c.MaxKeys = 1000 })
	base := t0.UnixMilli()
	clk.t = t0.Add(10 * time.Second)
	const n = 1_000_000
	evs := make([]ev, 0, 1000)
	var overflow int
	for i := 0; i < n; i++ {
		k := Key{System: "s", App: fmt.Sprint("app", i%50), Group: "g", IDC: "i", Method: fmt.Sprint("m", i)}
		evs = append(evs, ev{k, base + int64(i%10_000), uint32(i%1000 + 1), true})
		if len(evs) == cap(evs) {
			overflow += e.Ingest(0, int64(i), batchOf(evs...)).Overflow
			evs = evs[:0]
		}
	}
	if live := e.LiveKeys(); live > 1000+50 {
		t.Fatalf("live keys %d, cap 1000 (+50 fold keys)", live)
	}
	if overflow != n-1000 {
		t.Errorf("overflow events %d, want %d", overflow, n-1000)
	}
	clk.t = clk.t.Add(10 * time.Minute)
	panes, _ := e.Flush()
	var count uint64
	var other int
	for _, p := range panes {
		count += p.Count
		if IsOverflow(p.Key.Method) {
			other++
		}
	}
	if count != n {
		t.Errorf("panes hold %d events, want %d: folding must not lose any", count, n)
	}
	if other != 50 {
		t.Errorf("%d __other__ keys, want one per app (50)", other)
	}
}

func TestWindowAndMergeKeysMergeCentroids(t *testing.T) {
	e, clk := newTestEngine(t, nil)
	base := t0.UnixMilli()
	r := rand.New(rand.NewPCG(9, 9))
	var all, inA []uint32
	for s := int64(0); s < 120; s++ { // two minutes, 10 events a second per key
		var evs []ev
		for j := 0; j < 10; j++ {
			la := uint32(1000 + r.IntN(100_000))
			lb := uint32(50 + r.IntN(500))
			evs = append(evs, ev{kA, base + s*1000 + int64(j), la, true}, ev{kB, base + s*1000 + int64(j), lb, j != 0})
			if s >= 60 { // the last minute
				all = append(all, la, lb)
				inA = append(inA, la)
			}
		}
		clk.t = t0.Add(time.Duration(s) * time.Second)
		e.Ingest(0, s, batchOf(evs...))
	}
	clk.t = t0.Add(5 * time.Minute)
	e.Flush()
	_, end := e.Watermark()
	if end < base+120_000 {
		t.Fatalf("final edge %d, want ≥ %d", end-base, 120_000)
	}
	// Align the check to the last full minute of data.
	e.mu.Lock()
	e.finalEnd = base + 120_000
	e.mu.Unlock()
	ws, ok := e.Window(kA, time.Minute)
	if !ok || ws.Count != uint64(len(inA)) || ws.Panes != 6 {
		t.Fatalf("window = %+v, want %d events in 6 panes", ws, len(inA))
	}
	slices.Sort(inA)
	for _, q := range []struct{ q, got float64 }{{0.5, ws.P50}, {0.99, ws.P99}, {0.999, ws.P999}} {
		if err := relErr(q.got, exactQuantile(inA, q.q)); err > 0.01 {
			t.Errorf("window q%.3f = %v, exact %v", q.q, q.got, exactQuantile(inA, q.q))
		}
	}
	if ws.QPS != 10 {
		t.Errorf("window QPS = %v, want 10", ws.QPS)
	}
	app := e.MergeKeys(func(k Key) bool { return k.App == "cart" }, time.Minute)
	slices.Sort(all)
	if app.Count != uint64(len(all)) || app.Keys != 2 || app.Errors != 60 {
		t.Fatalf("MergeKeys = %+v, want %d events over 2 keys, 60 errors", app, len(all))
	}
	wantP99 := exactQuantile(all, 0.99)
	if err := relErr(app.P99, wantP99); err > 0.01 {
		t.Errorf("app TP99 %v, exact %v", app.P99, wantP99)
	}
	// Averaging the two methods' TP99 would be far off: the check above is
	// only meaningful if it differs.
	wb, _ := e.Window(kB, time.Minute)
	if avg := (ws.P99 + wb.P99) / 2; relErr(avg, wantP99) < 0.1 {
		t.Fatalf("test data too tame: averaged TP99 %v is close to exact %v", avg, wantP99)
	}
	if math.IsNaN(app.P50) {
		t.Fatal("NaN TP50")
	}
}

// TestReplayAfterRestartNeverOutranksPublished replays a partition from the
// committed offset into a fresh engine, as after a kill -9: a pane already
// published is rebuilt only in part, and its version must stay below the
// published one so that the store keeps the complete pane.
func TestReplayAfterRestartNeverOutranksPublished(t *testing.T) {
	base := t0.UnixMilli()
	msgs := []*codec.Batch{
		batchOf(ev{kA, base + 1_000, 10, true}, ev{kA, base + 2_000, 11, true}),  // offset 0: pane 0
		batchOf(ev{kA, base + 9_000, 12, true}, ev{kA, base + 41_000, 13, true}), // offset 1: panes 0 and 40 s
		batchOf(ev{kA, base + 42_000, 14, true}),                                 // offset 2
	}
	run := func(e *Engine, clk *clock, from int) ([]PaneStat, int64) {
		clk.t = t0.Add(42 * time.Second)
		for off := from; off < len(msgs); off++ {
			e.Ingest(0, int64(off), msgs[off])
		}
		panes, commit := e.Flush()
		return panes, commit[0]
	}
	a, clkA := newTestEngine(t, nil)
	published, commit := run(a, clkA, 0)
	if len(published) != 1 || published[0].Count != 3 {
		t.Fatalf("first run published %+v, want pane 0 with 3 events", published)
	}
	if commit != 1 {
		t.Fatalf("commit = %d, want 1: offset 1 holds an event of the open 40 s pane", commit)
	}
	b, clkB := newTestEngine(t, nil)
	replayed, _ := run(b, clkB, int(commit))
	if len(replayed) != 1 || replayed[0].Start != base || replayed[0].Count != 1 {
		t.Fatalf("replay published %+v, want the partial pane 0 with 1 event", replayed)
	}
	if replayed[0].Version >= published[0].Version {
		t.Fatalf("partial pane version %d outranks the published %d: the store would lose events",
			replayed[0].Version, published[0].Version)
	}
}

// TestAddFinalServesWindowsOfPublishedPanes feeds an engine with panes
// another engine published, as the alert role does, and checks that its
// windows equal the publishing engine's.
func TestAddFinalServesWindowsOfPublishedPanes(t *testing.T) {
	src, clk := newTestEngine(t, nil)
	base := t0.UnixMilli()
	r := rand.New(rand.NewPCG(4, 4))
	for s := int64(0); s < 90; s++ {
		clk.t = t0.Add(time.Duration(s) * time.Second)
		src.Ingest(0, s, batchOf(
			ev{kA, base + s*1000, uint32(100 + r.IntN(10_000)), s%7 != 0},
			ev{kB, base + s*1000, uint32(50 + r.IntN(500)), true}))
	}
	clk.t = t0.Add(5 * time.Minute)
	published, _ := src.Flush()

	dst, dclk := newTestEngine(t, nil)
	dclk.t = clk.t
	for _, p := range published {
		if err := dst.AddFinal(p); err != nil {
			t.Fatal(err)
		}
	}
	// A lower version of a pane is ignored, a higher one replaces it.
	stale := published[0]
	stale.Version, stale.Count = 1, 1
	if err := dst.AddFinal(stale); err != nil {
		t.Fatal(err)
	}
	_, srcEnd := src.Watermark()
	_, dstEnd := dst.Watermark()
	if srcEnd < dstEnd {
		t.Fatalf("window edge %d beyond the source's %d", dstEnd, srcEnd)
	}
	src.mu.Lock()
	src.finalEnd = dstEnd
	src.mu.Unlock()
	for _, k := range []Key{kA, kB} {
		want, _ := src.Window(k, 5*time.Minute) // covers every pane, the stale one's too
		got, ok := dst.Window(k, 5*time.Minute)
		if !ok || got.Count != want.Count || got.Errors != want.Errors || got.P99 != want.P99 || got.MaxUs != want.MaxUs {
			t.Errorf("%v: window from published panes %+v, want %+v", k.Method, got, want)
		}
	}
	bad := published[0]
	bad.PaneMs = 5000
	if err := dst.AddFinal(bad); !errors.Is(err, ErrPaneLength) {
		t.Errorf("pane of another length: %v, want ErrPaneLength", err)
	}
}
