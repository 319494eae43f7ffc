package aggregator

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/tpflow/tpflow/schemas/codec"
)

// rollID is one rollup bucket of one key.
type rollID struct {
	key   Key
	start int64
}

// splitRollups separates the rollups of ps from its panes.
func splitRollups(ps []PaneStat) (panes, rolls []PaneStat) {
	for _, p := range ps {
		if p.Rollup {
			rolls = append(rolls, p)
		} else {
			panes = append(panes, p)
		}
	}
	return panes, rolls
}

// TestRollupsAgainstBruteForce feeds random events over many keys and three
// partitions for 17 minutes: out of order within the lateness, late within
// the grace (corrections) and beyond it (to the late path, and to the
// bucket while the bucket is within its grace). The latest version of
// every rollup must hold exactly the events the engine accepted for its key
// and 5-minute bucket, the late path exactly the others, each rollup version must outrank the one before, and
// its percentiles must be the exact ones while the bucket is small enough
// to stay all singletons, and within 2 % in rank otherwise.
func TestRollupsAgainstBruteForce(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 11))
			e, clk := newTestEngine(t, func(c *Config) {
				c.Rollup = RollupLength
				c.RawBufferLimit = 64
				c.Grace = 2 * time.Minute
			})
			cfg := e.Config()
			paneMs, rollMs := cfg.Pane.Milliseconds(), cfg.Rollup.Milliseconds()
			graceMs := cfg.Grace.Milliseconds()
			base := t0.UnixMilli()
			exact := map[rollID]*acc{}
			latest := map[rollID]PaneStat{}
			paneCounts := map[rollID]map[int64]uint64{} // latest count of each pane of a bucket
			rollOnly := map[rollID]uint64{}             // late-path events the engine's bucket holds
			wantLate, gotLate := map[bool]int{}, map[bool]int{}
			keys := make([]Key, 12)
			for i := range keys {
				keys[i] = Key{System: "s", App: fmt.Sprint("app", i%3), Group: "g", IDC: "idc", Method: fmt.Sprint("m", i)}
			}
			collect := func() {
				ps, _, late := e.FlushLate()
				for _, l := range late {
					gotLate[l.Rollup]++
				}
				panes, rolls := splitRollups(ps)
				for _, p := range panes {
					id := rollID{p.Key, p.Start - p.Start%rollMs}
					if paneCounts[id] == nil {
						paneCounts[id] = map[int64]uint64{}
					}
					paneCounts[id][p.Start] = p.Count
				}
				for _, p := range rolls {
					id := rollID{p.Key, p.Start}
					if p.PaneMs != rollMs || p.Start%rollMs != 0 {
						t.Fatalf("rollup %v@%d has length %d ms", p.Key, p.Start, p.PaneMs)
					}
					if prev, ok := latest[id]; ok && p.Version <= prev.Version {
						t.Fatalf("rollup %v@%d re-emitted with version %d after %d", p.Key, p.Start, p.Version, prev.Version)
					} else if ok != p.Correction {
						t.Fatalf("rollup %v@%d: correction flag %v on emission %d", p.Key, p.Start, p.Correction, len(latest))
					}
					latest[id] = p
				}
			}
			var off [3]int64
			now := base
			for step := 0; step < 2000; step++ {
				now += int64(r.IntN(1000))
				clk.t = time.UnixMilli(now)
				wm, finalEnd := e.Watermark()
				p := int32(r.IntN(3))
				var evs []ev
				for j := 0; j < 1+r.IntN(8); j++ {
					back := int64(r.IntN(25_000)) // within the lateness
					if r.IntN(20) == 0 {
						back = int64(r.IntN(200_000)) // late, some beyond the grace
					}
					if r.IntN(60) == 0 {
						back = int64(r.IntN(700_000)) // some beyond the bucket's grace
					}
					ts := now - back
					k := keys[r.IntN(len(keys))]
					lat := uint32(1 + r.IntN(20_000))
					ok := r.IntN(10) > 0
					evs = append(evs, ev{k, ts, lat, ok})
					start := e.paneStart(ts)
					id := rollID{k, start - start%rollMs}
					if start+paneMs <= finalEnd && start+paneMs+graceMs <= wm {
						// Beyond the grace: the late path's, and the
						// bucket's while that is within its grace.
						if id.start+rollMs+graceMs <= wm {
							wantLate[true]++
							continue
						}
						wantLate[false]++
						rollOnly[id]++
					}
					if exact[id] == nil {
						exact[id] = &acc{}
					}
					exact[id].vals = append(exact[id].vals, lat)
					if !ok {
						exact[id].errors++
					}
				}
				e.Ingest(p, off[p], batchOf(evs...))
				off[p]++
				if step%7 == 0 {
					collect()
				}
			}
			clk.t = clk.t.Add(10 * time.Minute) // all idle: everything final
			collect()
			clk.t = clk.t.Add(10 * time.Minute)
			collect()
			if gotLate[true] != wantLate[true] || gotLate[false] != wantLate[false] {
				t.Fatalf("late path got %d events with rollup and %d without, want %d and %d",
					gotLate[true], gotLate[false], wantLate[true], wantLate[false])
			}
			if wantLate[true] == 0 || wantLate[false] == 0 {
				t.Fatalf("the stream sent %d events to the late path with rollup and %d without; want some of each", wantLate[true], wantLate[false])
			}
			if len(latest) != len(exact) {
				t.Fatalf("%d rollups emitted, want %d", len(latest), len(exact))
			}
			var corrected, big int
			for id, x := range exact {
				p, ok := latest[id]
				if !ok {
					t.Fatalf("rollup %v@%d never emitted", id.key, id.start)
				}
				if p.Correction {
					corrected++
				}
				x.checkStats(t, "rollup", p)
				var panes uint64
				for _, c := range paneCounts[id] {
					panes += c
				}
				if panes+rollOnly[id] != p.Count {
					t.Fatalf("rollup %v@%d holds %d events, its panes %d and late-path events %d", id.key, id.start, p.Count, panes, rollOnly[id])
				}
				var w uint64
				for _, c := range p.Centroids {
					w += uint64(c.Weight)
				}
				if w != p.Count {
					t.Fatalf("rollup %v@%d: centroid weight %d, count %d", id.key, id.start, w, p.Count)
				}
				if len(x.vals) >= 50 {
					big++
				}
				for _, q := range []struct {
					q   float64
					got float64
				}{{0.5, p.P50}, {0.9, p.P90}, {0.99, p.P99}} {
					want := exactQuantile(x.vals, q.q)
					if len(x.vals) < 50 && q.got != want {
						t.Fatalf("rollup %v@%d (n=%d): q%.2f = %v, want exactly %v", id.key, id.start, len(x.vals), q.q, q.got, want)
					}
					// A larger bucket's digest is judged by rank: the
					// value must lie between the exact q−2 % and q+2 %
					// quantiles (TestRollupAccuracy bounds the relative
					// error on realistic latencies).
					lo, hi := exactQuantile(x.vals, q.q-0.02), exactQuantile(x.vals, min(1, q.q+0.02))
					if q.got < lo || q.got > hi {
						t.Fatalf("rollup %v@%d (n=%d): q%.2f = %v, want within [%v, %v]", id.key, id.start, len(x.vals), q.q, q.got, lo, hi)
					}
				}
			}
			if corrected == 0 || big == 0 {
				t.Fatalf("%d corrected and %d large rollups: the test must exercise both", corrected, big)
			}
		})
	}
}

// TestRollupHoldsCommitUntilPublished checks the offsets: a message whose
// pane is published but whose rollup bucket is not must not be committed,
// because a restart would then rebuild the bucket without it.
func TestRollupHoldsCommitUntilPublished(t *testing.T) {
	e, clk := newTestEngine(t, func(c *Config) { c.Rollup = RollupLength })
	base := t0.UnixMilli()
	clk.t = t0.Add(320 * time.Second)
	e.Ingest(0, 0, batchOf(ev{kA, base + 1_000, 10, true}))    // bucket 0
	e.Ingest(0, 1, batchOf(ev{kA, base + 200_000, 20, true}))  // bucket 0, later pane
	e.Ingest(0, 2, batchOf(ev{kA, base + 301_000, 30, true}))  // bucket 1
	e.Ingest(0, 3, batchOf(ev{kB, base + 320_000, 40, false})) // bucket 1
	clk.t = t0.Add(320 * time.Second)
	ps, commit := e.Flush() // watermark 290 s: both panes of bucket 0 final, the bucket not
	panes, rolls := splitRollups(ps)
	if len(panes) != 2 || len(rolls) != 0 {
		t.Fatalf("got %d panes and %d rollups, want the 2 panes of bucket 0 and no rollup yet", len(panes), len(rolls))
	}
	if commit[0] != 0 {
		t.Fatalf("commit = %d, want 0: offsets 0 and 1 are in the unpublished rollup of bucket 0", commit[0])
	}
	clk.t = t0.Add(340 * time.Second)
	e.Ingest(0, 4, batchOf(ev{kA, base + 340_000, 50, true}))
	ps, commit = e.Flush() // watermark 310 s: bucket 0 is final
	_, rolls = splitRollups(ps)
	if len(rolls) != 1 || rolls[0].Start != base || rolls[0].Count != 2 || rolls[0].Key != kA || rolls[0].MaxUs != 20 {
		t.Fatalf("rollups %+v, want bucket 0 of kA with 2 events", rolls)
	}
	if commit[0] != 2 {
		t.Fatalf("commit = %d, want 2: offset 2 holds an event of the open 300 s pane", commit[0])
	}
	// A late event for bucket 0, within the grace: the next Flush re-emits
	// the rollup with a higher version, and commits past the event.
	e.Ingest(0, 5, batchOf(ev{kA, base + 100_000, 70, false}))
	ps, commit = e.Flush()
	panes, rolls = splitRollups(ps)
	if len(rolls) != 1 || !rolls[0].Correction || rolls[0].Count != 3 || rolls[0].Errors != 1 || rolls[0].Version <= 2 || rolls[0].MaxUs != 70 {
		t.Fatalf("rollups %+v, want the corrected bucket 0 with 3 events", rolls)
	}
	if len(panes) != 1 || !panes[0].Correction || panes[0].Start != base+100_000 {
		t.Fatalf("panes %+v, want the new pane at 100 s", panes)
	}
	if commit[0] != 2 {
		t.Fatalf("commit = %d, want still 2 (the open 300 s pane)", commit[0])
	}
	// Bucket 1 closes: its rollups come out (kA before kB: the order their
	// panes became final) and everything is committed.
	clk.t = t0.Add(20 * time.Minute)
	ps, commit = e.Flush()
	_, rolls = splitRollups(ps)
	if len(rolls) != 2 || rolls[0].Key != kA || rolls[1].Key != kB || rolls[0].Start != base+300_000 || rolls[1].Errors != 1 {
		t.Fatalf("rollups %+v, want bucket 1 of kA and kB", rolls)
	}
	if commit[0] != 6 {
		t.Fatalf("commit = %d, want 6", commit[0])
	}
}

// TestRollupAfterRestartIsComplete kills an engine in the middle of a
// bucket, after some of its panes were published and the offsets it
// returned were committed, and replays from there into a fresh engine: the
// rollup the fresh engine publishes holds every event of the bucket.
func TestRollupAfterRestartIsComplete(t *testing.T) {
	base := t0.UnixMilli()
	var msgs []*codec.Batch
	for s := int64(0); s < 400; s++ {
		msgs = append(msgs, batchOf(ev{kA, base + s*1000, uint32(100 + s), true}))
	}
	run := func(e *Engine, clk *clock, from, to int) ([]PaneStat, int64) {
		var out []PaneStat
		commit := int64(from)
		for off := from; off < to; off++ {
			clk.t = time.UnixMilli(base + int64(off)*1000)
			e.Ingest(0, int64(off), msgs[off])
			if off%5 == 0 {
				ps, c := e.Flush()
				out = append(out, ps...)
				commit = c[0]
			}
		}
		return out, commit
	}
	a, clkA := newTestEngine(t, func(c *Config) { c.Rollup = RollupLength })
	published, commit := run(a, clkA, 0, 200) // killed at 200 s
	panes, rolls := splitRollups(published)
	if len(panes) == 0 || len(rolls) != 0 {
		t.Fatalf("before the kill: %d panes, %d rollups; want panes and no rollup", len(panes), len(rolls))
	}
	if commit != 0 {
		t.Fatalf("commit before the kill = %d, want 0: every event so far is in the open bucket", commit)
	}
	b, clkB := newTestEngine(t, func(c *Config) { c.Rollup = RollupLength })
	replayed, _ := run(b, clkB, int(commit), len(msgs))
	_, rolls = splitRollups(replayed)
	if len(rolls) != 1 || rolls[0].Start != base || rolls[0].Count != 300 || rolls[0].MinUs != 100 || rolls[0].MaxUs != 399 {
		t.Fatalf("rollups after the restart %+v, want bucket 0 with its 300 events", rolls)
	}
}

// TestMergeRollupIsTheEngines checks that MergeRollup over a bucket's
// published panes builds the very rollup the engine published, so that
// tools building rollups of stored panes agree with the aggregator.
func TestMergeRollupIsTheEngines(t *testing.T) {
	e, clk := newTestEngine(t, func(c *Config) { c.Rollup = RollupLength })
	base := t0.UnixMilli()
	r := rand.New(rand.NewPCG(9, 9))
	for s := int64(0); s < 300; s++ {
		var evs []ev
		for range 200 {
			evs = append(evs, ev{kA, base + s*1000 + int64(r.IntN(1000)), uint32(50 + r.ExpFloat64()*2000), r.IntN(50) > 0})
		}
		clk.t = t0.Add(time.Duration(s+1) * time.Second)
		e.Ingest(0, s, batchOf(evs...))
	}
	clk.t = t0.Add(20 * time.Minute)
	ps, _ := e.Flush()
	panes, rolls := splitRollups(ps)
	if len(panes) != 30 || len(rolls) != 1 {
		t.Fatalf("%d panes and %d rollups, want 30 and 1", len(panes), len(rolls))
	}
	got := MergeRollup(panes, base, RollupLength, e.Config().RollupCompression)
	if got.Count != 60_000 || !slices.Equal(got.Centroids, rolls[0].Centroids) || got.P99 != rolls[0].P99 ||
		got.Version != rolls[0].Version || got.SumUs != rolls[0].SumUs || got.Errors != rolls[0].Errors || !got.Rollup {
		t.Fatalf("MergeRollup %d centroids, P99 %v, count %d; engine %d centroids, P99 %v, count %d",
			len(got.Centroids), got.P99, got.Count, len(rolls[0].Centroids), rolls[0].P99, rolls[0].Count)
	}
}

// TestRollupAccuracy measures a rollup of 30 panes of 2 000 latencies each
// (lognormal, heavy tail) against the exact nearest-rank quantiles of the
// 60 000 raw values, at the default rollup compression, and reports the
// centroids a rollup keeps (what a day-long query reads per key and 5
// minutes).
func TestRollupAccuracy(t *testing.T) {
	for _, shape := range []string{"lognormal", "bimodal"} {
		t.Run(shape, func(t *testing.T) {
			e, clk := newTestEngine(t, func(c *Config) { c.Rollup = RollupLength })
			base := t0.UnixMilli()
			r := rand.New(rand.NewPCG(5, 5))
			var all []uint32
			for s := int64(0); s < 300; s++ {
				var evs []ev
				for range 200 {
					v := math.Exp(6 + 1.2*r.NormFloat64())
					if shape == "bimodal" && r.IntN(20) == 0 {
						v = 20_000 + 5_000*r.NormFloat64()
					}
					lat := uint32(max(1, v))
					all = append(all, lat)
					evs = append(evs, ev{kA, base + s*1000, lat, true})
				}
				clk.t = t0.Add(time.Duration(s+1) * time.Second)
				e.Ingest(0, s, batchOf(evs...))
			}
			clk.t = t0.Add(20 * time.Minute)
			ps, _ := e.Flush()
			_, rolls := splitRollups(ps)
			if len(rolls) != 1 {
				t.Fatalf("%d rollups, want 1", len(rolls))
			}
			slices.Sort(all)
			ro := rolls[0]
			for _, q := range []struct {
				q     float64
				got   float64
				bound float64
			}{{0.5, ro.P50, 0.01}, {0.9, ro.P90, 0.01}, {0.99, ro.P99, 0.01}, {0.999, ro.P999, 0.02}} {
				want := exactQuantile(all, q.q)
				rel := (q.got - want) / want
				t.Logf("%s TP%g: rollup %.1f µs, exact %.0f µs, %+.3f %%", shape, q.q*100, q.got, want, 100*rel)
				if math.Abs(rel) > q.bound {
					t.Errorf("TP%g off by %.3f %%, bound %.1f %%", q.q*100, 100*rel, 100*q.bound)
				}
			}
			t.Logf("%s: %d centroids for %d calls", shape, len(ro.Centroids), ro.Count)
		})
	}
}

// stepQuantile is ClickHouse's quantileExactWeighted over a digest: the
// mean of the first centroid whose cumulative weight reaches q·W. It is how
// dashboards and the query API read stored centroids.
func stepQuantile(cs []Centroid, q float64) float64 {
	var total float64
	for _, c := range cs {
		total += float64(c.Weight)
	}
	cum := 0.0
	for _, c := range cs {
		cum += float64(c.Weight)
		if cum >= q*total {
			return float64(c.Mean)
		}
	}
	return float64(cs[len(cs)-1].Mean)
}

// TestRollupAnchorsReadInSQL builds rollups of 200 buckets of lognormal
// latencies for three traffic levels, from pane digests as the aggregator
// publishes them, and reads each rollup's emitted centroids the way
// ClickHouse's quantileExactWeighted does. Around the anchor quantiles the
// emitted digest keeps the finer centroids, so the worst bucket must stay
// within 1 % (TP99) and 2 % (TP50, TP90, TP999) of the exact nearest-rank
// value, with no more centroids than the size bound allows.
func TestRollupAnchorsReadInSQL(t *testing.T) {
	delta := DefaultConfig().RollupCompression
	for _, perPane := range []int{30, 170, 2000} {
		r := rand.New(rand.NewPCG(1, uint64(perPane)))
		var worst [len(rollupAnchors)]float64
		var cents int
		const buckets = 200
		for range buckets {
			var ps []PaneStat
			var all []uint32
			for p := range 30 {
				vals := make([]uint32, perPane)
				for i := range vals {
					vals[i] = uint32(max(1, math.Exp(6+r.NormFloat64())))
				}
				all = append(all, vals...)
				slices.Sort(vals)
				var sum uint64
				for _, v := range vals {
					sum += uint64(v)
				}
				ps = append(ps, PaneStat{Key: kA, Start: int64(p) * 10_000, Count: uint64(len(vals)), SumUs: sum,
					MinUs: vals[0], MaxUs: vals[len(vals)-1], Centroids: compressSorted(nil, vals, DefaultConfig().Compression)})
			}
			ro := MergeRollup(ps, 0, RollupLength, delta)
			slices.Sort(all)
			cents += len(ro.Centroids)
			for i, q := range rollupAnchors {
				worst[i] = max(worst[i], math.Abs(stepQuantile(ro.Centroids, q)/exactQuantile(all, q)-1))
			}
		}
		t.Logf("%6d calls a bucket: %3d centroids a rollup; worst TP50 %.3f %%, TP90 %.3f %%, TP99 %.3f %%, TP999 %.3f %%",
			30*perPane, cents/buckets, 100*worst[0], 100*worst[1], 100*worst[2], 100*worst[3])
		for i, q := range rollupAnchors {
			bound := 0.02
			if q == 0.99 {
				bound = 0.01
			}
			if worst[i] > bound {
				t.Errorf("%d calls a bucket: TP%g off by %.3f %% in the worst bucket, bound %.0f %%", 30*perPane, 100*q, 100*worst[i], 100*bound)
			}
		}
	}
}

// TestHeldRingPaneHandsItsValuesToTheBucket: a small final pane's values
// stay in its raw ring copy, which holds them for the rollup bucket; late
// events within the grace that grow that pane past the raw bound turn it
// into a digest, and it must hand its values to the bucket first. The
// bucket's rollup then holds every event, exactly (all raw: its
// percentiles are the exact nearest-rank values), and so does a bucket
// whose held pane is untouched.
func TestHeldRingPaneHandsItsValuesToTheBucket(t *testing.T) {
	e, clk := newTestEngine(t, func(c *Config) { c.Rollup = RollupLength })
	base := t0.UnixMilli()
	var all, allB []uint32
	var evs []ev
	for i := range 10 {
		lat := uint32(1000 + 37*i)
		evs = append(evs, ev{kA, base + 1_000, lat, true}, ev{kB, base + 1_000, lat + 5, true})
		all, allB = append(all, lat), append(allB, lat+5)
	}
	clk.t = t0.Add(2 * time.Second)
	e.Ingest(0, 0, batchOf(evs...))
	clk.t = t0.Add(60 * time.Second)
	e.Ingest(0, 1, batchOf(ev{kA, base + 60_000, 1, true}))
	all = append(all, 1)
	if ps, _ := e.Flush(); len(ps) != 2 {
		t.Fatalf("first flush: %d panes, want the two of pane 0", len(ps))
	}
	// 250 late events into kA's final pane 0: past 4 × window_compression
	// values its ring copy becomes a digest.
	evs = evs[:0]
	for i := range 250 {
		lat := uint32(500 + 91*i)
		evs = append(evs, ev{kA, base + 2_000, lat, i%50 != 0})
		all = append(all, lat)
	}
	e.Ingest(0, 2, batchOf(evs...))
	clk.t = t0.Add(20 * time.Minute)
	ps, _ := e.Flush()
	_, rolls := splitRollups(ps)
	got := map[Key]PaneStat{}
	for _, r := range rolls {
		if r.Start == base {
			got[r.Key] = r
		}
	}
	for _, c := range []struct {
		k    Key
		vals []uint32
	}{{kA, all}, {kB, allB}} {
		r, ok := got[c.k]
		if !ok {
			t.Fatalf("no rollup of %v for bucket 0 in %+v", c.k, rolls)
		}
		var w, sum uint64
		for _, x := range r.Centroids {
			w += uint64(x.Weight)
		}
		for _, v := range c.vals {
			sum += uint64(v)
		}
		if r.Count != uint64(len(c.vals)) || w != r.Count || r.SumUs != sum {
			t.Fatalf("%v rollup: count %d, centroid weight %d, sum %d; want %d events of sum %d", c.k, r.Count, w, r.SumUs, len(c.vals), sum)
		}
		sorted := slices.Sorted(slices.Values(c.vals))
		for _, q := range []struct {
			q   float64
			got float64
		}{{0.5, r.P50}, {0.9, r.P90}, {0.99, r.P99}, {0.999, r.P999}} {
			if want := exactQuantile(sorted, q.q); q.got != want {
				t.Errorf("%v rollup TP%g = %v, want exactly %v", c.k, 100*q.q, q.got, want)
			}
		}
	}
}
