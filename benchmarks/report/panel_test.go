package main

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest"
)

func TestMain(m *testing.M) { os.Exit(chtest.RunMain(m)) }

// TestPanelQuery is the benchmark's query on a small dataset (5 methods,
// 8 centroids per pane): the generator writes what it says, and the
// per-minute TP99 of QueryCallStats (the -Array combinator) equals that of
// QueryTP (ARRAY JOIN) over the same minute.
func TestPanelQuery(t *testing.T) {
	s := chtest.Shared(t)
	cfg := clickhouse.DefaultConfig()
	cfg.DSN = s.DSN()
	cfg.Database = s.Database()
	ctx := context.Background()
	conn, err := clickhouse.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := clickhouse.Migrate(ctx, conn, cfg); err != nil {
		t.Fatal(err)
	}
	d := dataset{database: cfg.Database, day: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), apps: 3, methods: 5, centroids: 8,
		benchApp: 1, otherSpan: 10 * time.Minute, rollupCentroids: 20}
	total, err := d.generate(ctx, conn, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	want := uint64(5*8640 + 2*5*60 + 5*288)
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
	by, err := clickhouse.QueryCallStats(ctx, conn, d.panelQuery(d.rollupApp(), 5*time.Minute, []string{"method"}))
	if err != nil || len(by) != 5*288 {
		t.Errorf("rollup app by method: %d points, %v", len(by), err)
	}
}
