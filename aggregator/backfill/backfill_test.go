package backfill_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/aggregator/backfill"
	"github.com/tpflow/tpflow/aggregator/backfill/backfilltest"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest"
	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest/chdb"
)

func TestMain(m *testing.M) { os.Exit(chtest.RunMain(m)) }

var t0 = time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)

// setup opens a migrated database of the test's own on the shared server.
func setup(tb testing.TB) (driver.Conn, clickhouse.Config, *clickhouse.Writer) {
	tb.Helper()
	conn, cfg := chdb.Shared(tb)
	return conn, cfg, clickhouse.NewWriter(conn, cfg, nil)
}

// dataset is 40 minutes of four keys; the last begins 7 minutes late, so
// its first bucket merges fewer panes.
func dataset(tb testing.TB) backfilltest.Data {
	keys := []aggregator.Key{
		{System: "pay", App: "api", Group: "g1", IDC: "bj", Method: "Charge"},
		{System: "pay", App: "api", Group: "g1", IDC: "bj", Method: "Refund"},
		{System: "pay", App: "web", Group: "g2", IDC: "sh", Method: "GET /"},
		{System: "shop", App: "cart", Group: "g1", IDC: "sh", Method: "Cart.add"},
	}
	return backfilltest.Build(tb, backfilltest.Spec{
		Keys: keys, From: t0, To: t0.Add(40 * time.Minute), CallsPerPane: 400,
		Late: map[int]time.Duration{3: 7 * time.Minute}, Seed: 7,
	})
}

func options(cfg clickhouse.Config) backfill.Options {
	return backfill.Options{
		Database: cfg.Database, From: t0, To: t0.Add(40 * time.Minute),
		Compression: aggregator.DefaultConfig().RollupCompression,
	}
}

func TestBackfillRebuildsTheEnginesRollups(t *testing.T) {
	conn, cfg, w := setup(t)
	d := dataset(t)
	backfilltest.Store(t, w, d)
	want := backfilltest.EngineRollups(d, nil)
	// 3 keys × 8 buckets and the late key's 7, the first of them partial.
	if len(want) != 31 {
		t.Fatalf("the engine published %d rollups, want 31", len(want))
	}
	ctx := context.Background()
	var progress []backfill.Stats
	o := options(cfg)
	o.Progress = func(s backfill.Stats) { progress = append(progress, s) }
	o.Skipped = func(p backfill.BadPane) { t.Errorf("skipped %s", p) }
	st, err := backfill.Backfill(ctx, conn, w, cfg.BatchRows, o)
	if err != nil {
		t.Fatal(err)
	}
	wantSt := backfill.Stats{Buckets: 8, BucketsDone: 8, Keys: 4, Panes: uint64(len(d.Panes)), Rollups: 31, Written: 31}
	if st != wantSt {
		t.Fatalf("stats %+v, want %+v", st, wantSt)
	}
	if len(progress) < 8 || progress[len(progress)-1] != st {
		t.Errorf("progress %+v: want a call per bucket ending with the final stats", progress)
	}
	first := backfilltest.Stored(t, conn, cfg.Database, true)
	backfilltest.SameRollups(t, first, want)

	// A second run, reading three buckets per query, stores the very same
	// rows again; once merged they collapse to the first run's.
	o.Progress, o.BucketsPerRead = nil, 3
	st2, err := backfill.Backfill(ctx, conn, w, 7, o) // small batches too
	if err != nil {
		t.Fatal(err)
	}
	if st2 != wantSt {
		t.Fatalf("second run stats %+v, want %+v", st2, wantSt)
	}
	backfilltest.Optimize(t, conn, cfg.Database+".call_rollups")
	backfilltest.SameRollups(t, backfilltest.Stored(t, conn, cfg.Database, false), want)
}

func TestBackfillSelectorLimitsTheKeys(t *testing.T) {
	conn, cfg, w := setup(t)
	d := dataset(t)
	backfilltest.Store(t, w, d)
	for _, tc := range []struct {
		sel  clickhouse.Selector
		pick func(aggregator.Key) bool
		keys int
	}{
		{clickhouse.Selector{System: "pay", App: "api"}, func(k aggregator.Key) bool { return k.System == "pay" && k.App == "api" }, 2},
		{clickhouse.Selector{Method: "Cart.add"}, func(k aggregator.Key) bool { return k.Method == "Cart.add" }, 1},
		{clickhouse.Selector{System: "pay", IDC: "sh", Group: "g2"}, func(k aggregator.Key) bool { return k.App == "web" }, 1},
	} {
		if err := conn.Exec(context.Background(), "TRUNCATE TABLE "+cfg.Database+".call_rollups"); err != nil {
			t.Fatal(err)
		}
		o := options(cfg)
		o.Selector = tc.sel
		st, err := backfill.Backfill(context.Background(), conn, w, cfg.BatchRows, o)
		if err != nil {
			t.Fatal(err)
		}
		want := backfilltest.EngineRollups(d, tc.pick)
		if st.Keys != tc.keys || st.Written != uint64(len(want)) {
			t.Errorf("%+v: %d keys, %d rollups written; want %d and %d", tc.sel, st.Keys, st.Written, tc.keys, len(want))
		}
		backfilltest.SameRollups(t, backfilltest.Stored(t, conn, cfg.Database, true), want)
	}
}

func TestBackfillDryRunWritesNothing(t *testing.T) {
	conn, cfg, w := setup(t)
	d := dataset(t)
	backfilltest.Store(t, w, d)
	o := options(cfg)
	o.DryRun = true
	st, err := backfill.Backfill(context.Background(), conn, nil, 0, o)
	if err != nil {
		t.Fatal(err)
	}
	if st.Rollups != uint64(len(d.Rollups)) || st.Written != 0 || st.Panes != uint64(len(d.Panes)) {
		t.Errorf("dry run stats %+v: want %d rollups built, none written, %d panes", st, len(d.Rollups), len(d.Panes))
	}
	if got := backfilltest.Stored(t, conn, cfg.Database, false); len(got) != 0 {
		t.Errorf("dry run wrote %d rollups", len(got))
	}
}

func TestBackfillWithoutPanes(t *testing.T) {
	conn, cfg, w := setup(t)
	backfilltest.Store(t, w, dataset(t))
	for _, tc := range []struct {
		name string
		mod  func(*backfill.Options)
	}{
		{"before the data", func(o *backfill.Options) { o.From, o.To = t0.Add(-time.Hour), t0 }},
		{"after the data", func(o *backfill.Options) { o.From, o.To = t0.Add(40*time.Minute), t0.Add(2*time.Hour) }},
		{"unknown app", func(o *backfill.Options) { o.Selector.App = "nope' OR 1=1 --" }},
	} {
		o := options(cfg)
		tc.mod(&o)
		st, err := backfill.Backfill(context.Background(), conn, w, cfg.BatchRows, o)
		if !errors.Is(err, backfill.ErrNoPanes) || st.Written != 0 {
			t.Errorf("%s: stats %+v, err %v; want ErrNoPanes", tc.name, st, err)
		}
	}
	if got := backfilltest.Stored(t, conn, cfg.Database, false); len(got) != 0 {
		t.Errorf("%d rollups written", len(got))
	}
}

func TestBackfillSkipsABrokenPane(t *testing.T) {
	conn, cfg, w := setup(t)
	d := dataset(t)
	backfilltest.Store(t, w, d)
	// Replace one pane of a key, in the middle of its third bucket, with a
	// higher version whose centroid arrays differ in length. The Writer
	// refuses such a row, so it goes in through a batch of its own.
	var victim aggregator.PaneStat
	for _, p := range d.Panes {
		if p.Key.Method == "Refund" && p.Start == t0.Add(12*time.Minute+30*time.Second).UnixMilli() {
			victim = p
		}
	}
	if victim.Count == 0 {
		t.Fatal("no pane to break")
	}
	bad := backfill.RowOf(victim)
	bad.Version += 1000
	bad.CentroidWeights = bad.CentroidWeights[1:]
	ctx := context.Background()
	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+cfg.Database+".call_panes (pane_start, pane_seconds, system, app, group_name, idc, method,"+
		" count, errors, sum_us, min_us, max_us, p50_us, p90_us, p99_us, p999_us, centroid_means, centroid_weights, version)")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Append(bad.PaneStart, bad.PaneSeconds, bad.System, bad.App, bad.Group, bad.IDC, bad.Method, bad.Count, bad.Errors,
		bad.SumUs, bad.MinUs, bad.MaxUs, bad.P50Us, bad.P90Us, bad.P99Us, bad.P999Us, bad.CentroidMeans, bad.CentroidWeights, bad.Version); err != nil {
		t.Fatal(err)
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}

	var skipped []backfill.BadPane
	o := options(cfg)
	o.Skipped = func(p backfill.BadPane) { skipped = append(skipped, p) }
	st, err := backfill.Backfill(ctx, conn, w, cfg.BatchRows, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 1 || skipped[0].Key != victim.Key || !skipped[0].Start.Equal(time.UnixMilli(victim.Start)) ||
		!strings.Contains(skipped[0].String(), `method="Refund"`) || !strings.Contains(skipped[0].String(), "2026-11-02T08:12:30Z") ||
		!strings.Contains(skipped[0].String(), "centroid means but") {
		t.Fatalf("skipped %v; want the Refund pane at 08:12:30", skipped)
	}
	if st.Skipped != 1 || st.Written != uint64(len(d.Rollups)) {
		t.Errorf("stats %+v: want 1 pane skipped and %d rollups written", st, len(d.Rollups))
	}
	// Every other rollup is the engine's; the broken bucket's lacks
	// exactly the skipped pane's calls, so the engine's, which holds more,
	// would outrank it.
	want := backfilltest.EngineRollups(d, nil)
	id := backfilltest.RollupID{Key: victim.Key, Start: t0.Add(10 * time.Minute).Unix()}
	got := backfilltest.Stored(t, conn, cfg.Database, true)
	g, e := got[id], want[id]
	delete(got, id)
	delete(want, id)
	backfilltest.SameRollups(t, got, want)
	if g.Count != e.Count-victim.Count || g.Version >= e.Version || g.Errors != e.Errors-victim.Errors {
		t.Errorf("broken bucket: count %d, version %d, errors %d; want %d, less than %d, %d",
			g.Count, g.Version, g.Errors, e.Count-victim.Count, e.Version, e.Errors-victim.Errors)
	}
}

func TestBackfillRefusesBadOptions(t *testing.T) {
	base := backfill.Options{Database: "tpflow", From: t0, To: t0.Add(time.Hour), Compression: 50, DryRun: true}
	for _, tc := range []struct {
		mod  func(*backfill.Options)
		want string
	}{
		{func(o *backfill.Options) { o.From = t0.Add(time.Minute) }, "must be multiples of 5m0s"},
		{func(o *backfill.Options) { o.To = t0 }, "is not before"},
		{func(o *backfill.Options) { o.Compression = 0 }, "outside [20, 5000]"},
		{func(o *backfill.Options) { o.Database = "a-b" }, "not a plain identifier"},
	} {
		o := base
		tc.mod(&o)
		if _, err := backfill.Backfill(context.Background(), nil, nil, 0, o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want %q", o, err, tc.want)
		}
	}
}

func TestAlign(t *testing.T) {
	f := func(from, to, wantFrom, wantTo string) {
		t.Helper()
		p := func(s string) time.Time {
			v, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		gf, gt := backfill.Align(p(from), p(to))
		if !gf.Equal(p(wantFrom)) || !gt.Equal(p(wantTo)) {
			t.Errorf("Align(%s, %s) = %s, %s; want %s, %s", from, to, gf, gt, wantFrom, wantTo)
		}
	}
	f("2026-11-02T08:00:00Z", "2026-11-02T09:00:00Z", "2026-11-02T08:00:00Z", "2026-11-02T09:00:00Z")
	f("2026-11-02T08:04:59Z", "2026-11-02T08:05:01Z", "2026-11-02T08:00:00Z", "2026-11-02T08:10:00Z")
	f("2026-11-02T08:05:00Z", "2026-11-02T08:05:00.5Z", "2026-11-02T08:05:00Z", "2026-11-02T08:10:00Z")
	f("2026-11-02T10:07:00+02:00", "2026-11-02T10:13:00+02:00", "2026-11-02T08:05:00Z", "2026-11-02T08:15:00Z")
}

// BenchmarkBackfill measures a back-fill of panes stored by the engine:
// the test's dataset and 1000 keys over an hour, reading one bucket or an
// hour per query. It reports stored panes read and rollups written per
// second of the whole run (read, merge and insert).
func BenchmarkBackfill(b *testing.B) {
	for _, ds := range []struct {
		name  string
		keys  int
		span  time.Duration
		calls int
	}{
		{"4keys_40m", 4, 40 * time.Minute, 400},
		{"1000keys_1h", 1000, time.Hour, 100},
	} {
		b.Run(ds.name, func(b *testing.B) {
			conn, cfg, w := setup(b)
			d := backfilltest.Build(b, backfilltest.Spec{
				Keys: backfilltest.Keys(ds.keys), From: t0, To: t0.Add(ds.span), CallsPerPane: ds.calls, Seed: 1,
			})
			backfilltest.Store(b, w, d)
			var cents int
			for _, p := range d.Panes {
				cents += len(p.Centroids)
			}
			panes, rollups := len(d.Panes), len(d.Rollups)
			d = backfilltest.Data{}
			for _, per := range []int{1, 12} {
				b.Run(fmt.Sprintf("buckets_per_read=%d", per), func(b *testing.B) {
					o := backfill.Options{Database: cfg.Database, From: t0, To: t0.Add(ds.span),
						Compression: aggregator.DefaultConfig().RollupCompression, BucketsPerRead: per}
					var st backfill.Stats
					for b.Loop() {
						var err error
						if st, err = backfill.Backfill(context.Background(), conn, w, cfg.BatchRows, o); err != nil {
							b.Fatal(err)
						}
					}
					if st.Panes != uint64(panes) || st.Written != uint64(rollups) {
						b.Fatalf("stats %+v: want %d panes and %d rollups", st, panes, rollups)
					}
					sec := b.Elapsed().Seconds() / float64(b.N)
					b.ReportMetric(float64(panes)/sec, "panes/s")
					b.ReportMetric(float64(rollups)/sec, "rollups/s")
					b.ReportMetric(float64(cents)/float64(panes), "centroids/pane")
				})
			}
		})
	}
}
