package main

import (
	"context"
	"math"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest"
	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest/chdb"
)

func TestMain(m *testing.M) { os.Exit(chtest.RunMain(m)) }

// TestPanelQuery is the benchmark's query on a small dataset (5 methods,
// 8 centroids per pane): the generator writes what it says, the per-minute
// TP99 of QueryCallStats (the -Array combinator) equals that of QueryTP
// (ARRAY JOIN) over the same minute, and the 5-minute panel is served by
// the rollups with the counts of the 10-s panes and their TP99 within 1 %.
func TestPanelQuery(t *testing.T) {
	conn, cfg := chdb.Shared(t)
	ctx := context.Background()
	d := dataset{database: cfg.Database, day: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), apps: 3, methods: 5, centroids: 8,
		benchApp: 1, otherSpan: 10 * time.Minute, rollups: true}
	total, err := d.generate(ctx, conn, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	want := uint64(5*8640 + 2*5*60)
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+cfg.Database+".call_panes").Scan(&n); err != nil || n != total || total != want {
		t.Fatalf("call_panes has %d rows (%v), generate said %d, want %d", n, err, total, want)
	}
	q := d.panelQuery(d.benchApp, time.Minute, nil)
	res, err := clickhouse.QueryCallStats(ctx, conn, q)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1440 {
		t.Fatalf("%d points, want 1440", len(res))
	}
	var calls uint64
	for _, p := range res {
		calls += p.Count
	}
	var sum uint64
	if err := conn.QueryRow(ctx, "SELECT sum(count) FROM "+cfg.Database+".call_panes WHERE app = ?", d.app(d.benchApp)).Scan(&sum); err != nil || calls != sum {
		t.Errorf("points hold %d calls, the table %d (%v)", calls, sum, err)
	}
	for _, i := range []int{0, 700, 1439} {
		p := res[i]
		tp, err := clickhouse.QueryTP(ctx, conn, clickhouse.TPQuery{Database: cfg.Database, Selector: q.Selector,
			From: p.Start, To: p.Start.Add(time.Minute), Quantiles: []float64{0.99}})
		if err != nil {
			t.Fatal(err)
		}
		if tp.Count != p.Weight || tp.Quantiles[0] != p.Quantiles[0] {
			t.Errorf("minute %d: QueryCallStats %d calls TP99 %g, QueryTP %d calls TP99 %g", i, p.Weight, p.Quantiles[0], tp.Count, tp.Quantiles[0])
		}
	}

	w := clickhouse.NewWriter(conn, cfg, nil)
	rollups, cents, err := d.buildRollups(ctx, conn, w)
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(5*288 + 2*5*2); rollups != want {
		t.Fatalf("%d rollups, want %d", rollups, want)
	}
	if n := chtest.Scalar[uint64](t, conn, "SELECT count() FROM "+cfg.Database+".call_rollups"); n != rollups {
		t.Fatalf("call_rollups has %d rows, buildRollups said %d", n, rollups)
	}
	// 30 panes of 8 centroids, merged at compression 50.
	if per := float64(cents) / float64(rollups); per >= 30*8 || per < 8 {
		t.Errorf("%.1f centroids a rollup", per)
	}
	for _, by := range [][]string{nil, {"method"}} {
		q := d.panelQuery(d.benchApp, 5*time.Minute, by)
		roll, err := clickhouse.QueryCallStats(ctx, conn, q)
		if err != nil {
			t.Fatal(err)
		}
		q.PanesOnly = true
		panes, err := clickhouse.QueryCallStats(ctx, conn, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(roll) != 288*max(1, 5*len(by)) || len(panes) != len(roll) {
			t.Fatalf("by %v: %d points from rollups, %d from panes", by, len(roll), len(panes))
		}
		if s := clickhouse.SourceOf(roll); s != clickhouse.SourceRollups {
			t.Errorf("by %v: served by %s, want call_rollups", by, s)
		}
		if s := clickhouse.SourceOf(panes); s != clickhouse.SourcePanes {
			t.Errorf("by %v, panes only: served by %s", by, s)
		}
		var worst float64
		for i, r := range roll {
			p := panes[i]
			if !slices.Equal(r.Labels, p.Labels) || !r.Start.Equal(p.Start) || r.Count != p.Count || r.Errors != p.Errors || r.Weight != p.Weight {
				t.Fatalf("by %v point %d: rollups %+v, panes %+v", by, i, r, p)
			}
			e := math.Abs(r.Quantiles[0]-p.Quantiles[0]) / p.Quantiles[0]
			worst = max(worst, e)
			if e > 0.01 {
				t.Errorf("by %v %v %s: TP99 %g from rollups, %g from panes", by, r.Labels, r.Start, r.Quantiles[0], p.Quantiles[0])
			}
		}
		t.Logf("by %v: %d points, TP99 from rollups at most %.3f%% off the exact merge of the panes", by, len(roll), 100*worst)
	}
}
