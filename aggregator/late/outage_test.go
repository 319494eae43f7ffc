package late

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// paneRow is the row the sink stores for ps.
func paneRow(ps *aggregator.PaneStat) clickhouse.PaneRow {
	r := clickhouse.PaneRow{
		PaneStart: time.UnixMilli(ps.Start).UTC(), PaneSeconds: uint32(ps.PaneMs / 1000),
		System: ps.Key.System, App: ps.Key.App, Group: ps.Key.Group, IDC: ps.Key.IDC, Method: ps.Key.Method,
		Count: ps.Count, Errors: ps.Errors, SumUs: float64(ps.SumUs), MinUs: float64(ps.MinUs), MaxUs: float64(ps.MaxUs),
		P50Us: ps.P50, P90Us: ps.P90, P99Us: ps.P99, P999Us: ps.P999, Version: ps.Version,
	}
	for _, c := range ps.Centroids {
		r.CentroidMeans = append(r.CentroidMeans, float64(c.Mean))
		r.CentroidWeights = append(r.CentroidWeights, float64(c.Weight))
	}
	return r
}

// callBatch builds the decoded batch of calls, one per (key, time).
func callBatch(t *testing.T, keys []aggregator.Key, ts []int64) *codec.Batch {
	t.Helper()
	var bl codec.Builder
	for i, k := range keys {
		ls := bl.LabelSet([]schemas.Label{{Name: schemas.LabelSystem, Value: k.System}, {Name: schemas.LabelApp, Value: k.App},
			{Name: schemas.LabelGroup, Value: k.Group}, {Name: schemas.LabelIDC, Value: k.IDC}})
		bl.AddCall(codec.Call{TsUnixMs: ts[i], Series: bl.Series(ls, k.Method), LatencyUs: uint32(100 + i%50), OK: i%9 != 0})
	}
	b := new(codec.Batch)
	if err := codec.Decode(bl.AppendTo(nil), b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHourLongOutageEndsWithExactCounts runs an engine with the default
// configuration (5-minute grace, 30-s idle time-out, rollups) whose input
// stops for an hour while its wall clock runs on, as when a node is cut off
// from Kafka: the watermark follows the clock, so the hour of events that
// arrives afterwards is past the grace. The panes go to ClickHouse as the
// sink stores them and the late events through the late merger; in the
// end call_panes and call_rollups hold, for every key, exactly the events
// produced, and the engine dropped none.
func TestHourLongOutageEndsWithExactCounts(t *testing.T) {
	h, conn, ccfg, w := testMerger(t)
	ctx := context.Background()
	clk := &fakeClock{t: t0}
	eng, err := aggregator.New(aggregator.DefaultConfig(), aggregator.WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	keys := []aggregator.Key{keyA, keyB, {System: "s", App: "a", Group: "g2", IDC: "i2", Method: "mc"}}
	produced := map[aggregator.Key]uint64{}
	lateOffsets := map[int]int64{}
	var offsets [2]int64
	var lateEvents int
	flush := func() {
		t.Helper()
		panes, _, late := eng.FlushLate()
		var rows, rolls []clickhouse.PaneRow
		for i := range panes {
			if panes[i].Rollup {
				rolls = append(rolls, paneRow(&panes[i]))
			} else {
				rows = append(rows, paneRow(&panes[i]))
			}
		}
		if err := w.WritePanes(ctx, rows); err != nil {
			t.Fatal(err)
		}
		if err := w.WriteRollups(ctx, rolls); err != nil {
			t.Fatal(err)
		}
		lateEvents += len(late)
		for _, m := range Encode(late, 64<<10, 4) {
			m.Partition = kafka.PartitionOf(m.Key, 4)
			m.Offset = lateOffsets[m.Partition]
			lateOffsets[m.Partition]++
			if err := h.handle(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	// ingest feeds one message per partition with an event of every key
	// at each of the times.
	ingest := func(times ...time.Time) {
		for p := range offsets {
			var ks []aggregator.Key
			var ts []int64
			for _, x := range times {
				for i, k := range keys {
					if i%2 == p {
						ks = append(ks, k)
						ts = append(ts, x.UnixMilli())
						produced[k]++
					}
				}
			}
			eng.Ingest(int32(p), offsets[p], callBatch(t, ks, ts))
			offsets[p]++
		}
	}
	// Five minutes of live traffic, an event per key every 2 s.
	for s := 0; s < 300; s += 2 {
		clk.t = t0.Add(time.Duration(s) * time.Second)
		ingest(clk.t)
		flush()
	}
	cutAt := clk.t
	// Cut off for an hour: nothing arrives, the flushes go on.
	for clk.t.Before(cutAt.Add(time.Hour)) {
		clk.t = clk.t.Add(10 * time.Second)
		flush()
	}
	// Back: the hour's backlog arrives in order, 60 s per message, with
	// live traffic behind it.
	for x := cutAt.Add(2 * time.Second); x.Before(clk.t); x = x.Add(60 * time.Second) {
		var times []time.Time
		for y := x; y.Before(x.Add(60*time.Second)) && y.Before(clk.t); y = y.Add(2 * time.Second) {
			times = append(times, y)
		}
		ingest(times...)
		flush()
	}
	ingest(clk.t)
	clk.t = clk.t.Add(20 * time.Minute) // idle: everything final
	flush()
	clk.t = clk.t.Add(20 * time.Minute)
	flush()

	if lateEvents < 1000 {
		t.Fatalf("only %d events went to the late path; the outage did not make the backlog late", lateEvents)
	}
	for _, table := range []string{"call_panes", "call_rollups"} {
		for _, k := range keys {
			var got uint64
			q := fmt.Sprintf("SELECT sum(count) FROM %s.%s FINAL WHERE system = ? AND app = ? AND group_name = ? AND idc = ? AND method = ?", ccfg.Database, table)
			if err := conn.QueryRow(ctx, q, k.System, k.App, k.Group, k.IDC, k.Method).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != produced[k] {
				t.Errorf("%s: %v holds %d events, %d were produced", table, k, got, produced[k])
			}
		}
	}
}
