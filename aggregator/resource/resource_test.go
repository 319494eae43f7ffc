package resource

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

// sample is one metric sample in a test.
type sample struct {
	key  Key
	ts   int64
	v    float64
	kind tpflowpb.MetricKind
}

// batchOf encodes samples with the codec and decodes them, as a consumer
// sees them.
func batchOf(t testing.TB, ss ...sample) *codec.Batch {
	t.Helper()
	var b codec.Builder
	for _, s := range ss {
		k := s.key
		ls := b.LabelSet([]schemas.Label{
			{Name: schemas.LabelSystem, Value: k.System}, {Name: schemas.LabelApp, Value: k.App},
			{Name: schemas.LabelGroup, Value: k.Group}, {Name: schemas.LabelIDC, Value: k.IDC},
			{Name: schemas.LabelHost, Value: k.Host}, {Name: schemas.LabelContainer, Value: k.Container},
			{Name: schemas.LabelEnv, Value: "prod"},
		})
		kind := s.kind
		if kind == 0 {
			kind = tpflowpb.MetricKind_METRIC_KIND_GAUGE
		}
		b.AddMetric(codec.Metric{TsUnixMs: s.ts, Labels: ls, Name: b.Symbol(k.Name), Value: s.v, Kind: uint8(kind)})
	}
	d := new(codec.Batch)
	if err := codec.Decode(b.AppendTo(nil), d); err != nil {
		t.Fatal(err)
	}
	return d
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func newTestEngine(t *testing.T, mod func(*aggregator.Config)) (*Engine, *clock) {
	t.Helper()
	cfg := aggregator.DefaultConfig()
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

type paneID struct {
	key   Key
	start int64
}

// bruteForce computes the expected panes from every sample: count, sum in
// ascending order, max and the nearest-rank p95 by its definition.
func bruteForce(ss []sample, paneMs int64) map[paneID]Pane {
	vals := map[paneID][]float64{}
	for _, s := range ss {
		start := s.ts - ((s.ts%paneMs)+paneMs)%paneMs
		id := paneID{s.key, start}
		vals[id] = append(vals[id], s.v)
	}
	out := map[paneID]Pane{}
	for id, vs := range vals {
		slices.Sort(vs)
		p := Pane{Key: id.key, Start: id.start, PaneMs: paneMs, Count: uint64(len(vs)), Version: uint64(len(vs)), Max: math.Inf(-1)}
		for _, v := range vs {
			p.Sum += v
			p.Max = math.Max(p.Max, v)
		}
		// Smallest sample with at least 95 % of the samples at or below it.
		for _, v := range vs {
			below := 0
			for _, w := range vs {
				if w <= v {
					below++
				}
			}
			if float64(below) >= 0.95*float64(len(vs))-1e-9 {
				p.P95 = v
				break
			}
		}
		out[id] = p
	}
	return out
}

// latest keeps the highest version of every pane identity.
func latest(dst map[paneID]Pane, panes []Pane) {
	for _, p := range panes {
		id := paneID{p.Key, p.Start}
		if old, ok := dst[id]; !ok || p.Version > old.Version {
			dst[id] = p
		}
	}
}

func comparePanes(t *testing.T, got, want map[paneID]Pane) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d panes, want %d", len(got), len(want))
	}
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			t.Errorf("pane %v@%d missing", id.key, id.start)
			continue
		}
		g.Correction = false
		if g != w {
			t.Errorf("pane %v@%d:\n got %+v\nwant %+v", id.key, id.start, g, w)
		}
		if avg := w.Sum / float64(w.Count); g.Avg() != avg {
			t.Errorf("pane %v@%d: avg %v, want %v", id.key, id.start, g.Avg(), avg)
		}
	}
}

// TestAgainstBruteForce feeds random samples of many keys over several
// partitions, out of order within the allowed lateness, flushing as it goes,
// and compares every final pane with an exact computation.
func TestAgainstBruteForce(t *testing.T) {
	for seed := range uint64(5) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 99))
			e, c := newTestEngine(t, nil)
			var keys []Key
			for i := range 12 {
				for _, name := range []string{"cpu_cores", "memory_bytes"} {
					keys = append(keys, Key{System: "shop", App: fmt.Sprintf("app%d", i%3), Group: "g", IDC: []string{"bj", "sh"}[i%2],
						Host: fmt.Sprintf("10.0.0.%d", i), Container: fmt.Sprintf("c%d", i), Name: name})
				}
			}
			var all []sample
			got := map[paneID]Pane{}
			base := t0.UnixMilli()
			offsets := map[int32]int64{}
			for step := range 200 {
				// Event time advances 1 s per step; samples jitter up to
				// 20 s back, inside the 30 s lateness.
				now := base + int64(step)*1000
				c.t = time.UnixMilli(now)
				part := int32(r.IntN(3))
				var batch []sample
				for range 1 + r.IntN(8) {
					s := sample{key: keys[r.IntN(len(keys))], ts: now - int64(r.IntN(20000))}
					switch r.IntN(4) {
					case 0:
						s.v = float64(r.IntN(5)) // many ties
					case 1:
						s.v = r.Float64() * 4
					default:
						s.v = math.Round(r.ExpFloat64()*1e9) + 0.25
					}
					batch = append(batch, s)
				}
				all = append(all, batch...)
				st := e.Ingest(part, offsets[part], batchOf(t, batch...))
				offsets[part]++
				if st.Accepted != len(batch) {
					t.Fatalf("step %d: %+v, want all %d accepted", step, st, len(batch))
				}
				if step%7 == 0 {
					panes, _ := e.Flush()
					latest(got, panes)
				}
			}
			// Traffic stops: after the idle time-out the watermark follows
			// the wall clock and every pane comes out.
			c.t = c.t.Add(2 * time.Minute)
			panes, commit := e.Flush()
			latest(got, panes)
			comparePanes(t, got, bruteForce(all, 10000))
			for p, off := range commit {
				if off != offsets[p] {
					t.Errorf("partition %d: commit %d, want %d (everything published)", p, off, offsets[p])
				}
			}
			if n := e.LiveKeys(); n == 0 {
				t.Errorf("LiveKeys() = 0 while final panes are within the grace")
			}
		})
	}
}

func TestNearestRank(t *testing.T) {
	f := func(n, want int) {
		t.Helper()
		if got := nearestRank(n, 95); got != want {
			t.Errorf("nearestRank(%d, 95) = %d, want %d", n, got, want)
		}
	}
	f(1, 0)
	f(2, 1)
	f(19, 18)
	f(20, 18) // 19th of 20: exactly 95 %
	f(21, 19)
	f(100, 94)
	f(101, 95)
}

// TestLateAndCommit checks late samples within the grace (a correction that
// outranks the pane), past it (dropped), future and counter samples, and
// that the commit never passes a sample of an unpublished pane.
func TestLateAndCommit(t *testing.T) {
	e, c := newTestEngine(t, func(cfg *aggregator.Config) { cfg.Grace = time.Minute })
	k := Key{System: "s", App: "a", Group: "g", IDC: "bj", Host: "h", Container: "c", Name: "cpu_cores"}
	base := t0.UnixMilli() // pane-aligned
	st := e.Ingest(0, 10, batchOf(t, sample{key: k, ts: base + 1000, v: 1}, sample{key: k, ts: base + 2000, v: 3}))
	if st.Accepted != 2 {
		t.Fatalf("%+v", st)
	}
	c.t = time.UnixMilli(base + 15000)
	e.Ingest(0, 11, batchOf(t, sample{key: k, ts: base + 15000, v: 7}))
	panes, commit := e.Flush()
	if len(panes) != 0 || commit[0] != 10 {
		t.Fatalf("before the watermark: %d panes, commit %d, want 0 and 10", len(panes), commit[0])
	}
	// Event time 41 s: watermark 11 s passes the first pane only.
	c.t = time.UnixMilli(base + 41000)
	e.Ingest(0, 12, batchOf(t, sample{key: k, ts: base + 41000, v: 2}))
	panes, commit = e.Flush()
	if len(panes) != 1 || panes[0].Count != 2 || panes[0].Sum != 4 || panes[0].Max != 3 || panes[0].P95 != 3 {
		t.Fatalf("first pane: %+v", panes)
	}
	if commit[0] != 11 {
		t.Errorf("commit %d, want 11 (offset 11 feeds the open pane at 10 s)", commit[0])
	}
	// A late sample within the grace, and one from the future.
	c.t = time.UnixMilli(base + 41000)
	st = e.Ingest(0, 13, batchOf(t,
		sample{key: k, ts: base + 500, v: 10},
		sample{key: k, ts: base + 41000 + int64(time.Hour/time.Millisecond), v: 1},
		sample{key: k, ts: base + 500, v: 1, kind: tpflowpb.MetricKind_METRIC_KIND_COUNTER},
	))
	if st.Late != 1 || st.Rejected[aggregator.ReasonTooFarFuture] != 1 || st.Counters != 1 || st.Accepted != 0 {
		t.Fatalf("late batch: %+v", st)
	}
	panes, _ = e.Flush()
	if len(panes) != 1 || !panes[0].Correction || panes[0].Count != 3 || panes[0].Version != 3 || panes[0].Max != 10 || panes[0].Sum != 14 {
		t.Fatalf("correction: %+v", panes)
	}
	// Far past the grace: resources have no late path, the sample is
	// rejected as too_old and counted under that reason, and its pane is
	// not published again.
	c.t = time.UnixMilli(base + 10*60000)
	e.Flush()
	before := testutil.ToFloat64(e.m.rejected.WithLabelValues("too_old"))
	if st := e.Ingest(0, 14, batchOf(t, sample{key: k, ts: base + 500, v: 10})); st.Rejected[aggregator.ReasonTooOld] != 1 || st.Late != 0 || st.Accepted != 0 {
		t.Errorf("sample past the grace: %+v, want rejected as too_old", st)
	}
	if got := testutil.ToFloat64(e.m.rejected.WithLabelValues("too_old")) - before; got != 1 {
		t.Errorf("rejected_samples_total{reason=\"too_old\"} grew by %v, want 1", got)
	}
	if panes, _ := e.Flush(); len(panes) != 0 {
		t.Errorf("a sample past the grace re-published %+v", panes)
	}
}

// TestKeyCap folds keys beyond MaxKeys into the __other__ container of
// their app and metric.
func TestKeyCap(t *testing.T) {
	e, c := newTestEngine(t, func(cfg *aggregator.Config) { cfg.MaxKeys = 2 })
	base := t0.UnixMilli()
	var ss []sample
	for i := range 5 {
		ss = append(ss, sample{key: Key{App: "a", Host: "h", Container: fmt.Sprint(i), Name: "cpu_cores"}, ts: base, v: float64(i)})
	}
	st := e.Ingest(0, 0, batchOf(t, ss...))
	if st.Overflow != 3 || st.Accepted != 5 {
		t.Fatalf("%+v, want 3 of 5 folded", st)
	}
	c.t = c.t.Add(2 * time.Minute)
	panes, _ := e.Flush()
	var other *Pane
	for i := range panes {
		if aggregator.IsOverflow(panes[i].Key.Container) {
			other = &panes[i]
		}
	}
	if len(panes) != 3 || other == nil || other.Count != 3 || other.Max != 4 || other.Key.Host != "" {
		t.Errorf("panes %+v", panes)
	}
}

func BenchmarkIngestFlush(b *testing.B) {
	e, err := New(aggregator.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	var ss []sample
	for i := range 500 {
		ss = append(ss, sample{key: Key{System: "s", App: "a", Host: fmt.Sprint(i % 50), Container: fmt.Sprint(i % 50), Name: []string{"cpu_cores", "memory_bytes"}[i%2]}, ts: t0.UnixMilli() + int64(i), v: float64(i)})
	}
	batch := batchOf(b, ss...)
	b.ReportAllocs()
	var off int64
	for b.Loop() {
		for i := range batch.Metrics {
			batch.Metrics[i].TsUnixMs += 10000
		}
		e.Ingest(0, off, batch)
		off++
		e.Flush()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(ss)), "ns/sample")
}
