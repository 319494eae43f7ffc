// Package backfilltest builds datasets of panes and rollups with the real
// aggregator engine, for the tests of rollup back-fills.
package backfilltest

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/aggregator/backfill"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/schemas/codec"
)

// Spec describes a dataset: keys with calls over a time range.
type Spec struct {
	// Keys are the call keys.
	Keys []aggregator.Key
	// From and To bound the calls' times; To is exclusive.
	From, To time.Time
	// CallsPerPane is the mean number of calls of a key per 10-s pane; each
	// key and pane gets between half and one and a half times as many.
	CallsPerPane int
	// Late lists, per key index, when its calls begin, as an offset from
	// From; keys without an entry begin at From. It makes buckets whose
	// rollups merge fewer panes.
	Late map[int]time.Duration
	// Seed makes the latencies.
	Seed uint64
}

// Data is what the engine made of a Spec: its final panes and rollups.
type Data struct {
	Panes, Rollups []aggregator.PaneStat
	// Calls is the number of calls ingested.
	Calls uint64
}

// Build feeds the calls of s, pane by pane in time order, through an
// aggregator engine with the default configuration (rollups on) and
// returns what it publishes. It fails tb when the engine drops a call or
// publishes a correction.
func Build(tb testing.TB, s Spec) Data {
	tb.Helper()
	cfg := aggregator.DefaultConfig()
	cfg.Rollup = aggregator.RollupLength
	now := s.From
	eng, err := aggregator.New(cfg, aggregator.WithClock(func() time.Time { return now }))
	if err != nil {
		tb.Fatal(err)
	}
	paneMs := cfg.Pane.Milliseconds()
	r := rand.New(rand.NewPCG(s.Seed, s.Seed^0x9E3779B97F4A7C15))
	var d Data
	var offset int64
	for t := s.From; t.Before(s.To); t = t.Add(cfg.Pane) {
		now = t.Add(cfg.Pane)
		b := NewCallBatch()
		for i, k := range s.Keys {
			if t.Sub(s.From) < s.Late[i] {
				continue
			}
			n := s.CallsPerPane/2 + r.IntN(s.CallsPerPane+1)
			// Slow for a while now and then, differently per key.
			slow := 1 + float64((t.Unix()/120+int64(i))%3)
			for j := range n {
				ts := t.UnixMilli() + int64(j)*paneMs/int64(n)
				lat := uint32(math.Round(80 * slow * math.Exp(1.2*r.NormFloat64())))
				b.Add(k, ts, max(lat, 1), r.IntN(40) > 0)
			}
		}
		if st := eng.Ingest(0, offset, b.Batch); st.Accepted != len(b.Batch.Calls) {
			tb.Fatalf("engine accepted %+v of %d calls", st, len(b.Batch.Calls))
		}
		offset++
		d.Calls += uint64(len(b.Batch.Calls))
		ps, _ := eng.Flush()
		d.add(tb, ps)
	}
	now = now.Add(time.Hour)
	ps, _ := eng.Flush()
	d.add(tb, ps)
	var inPanes, inRollups uint64
	for _, p := range d.Panes {
		inPanes += p.Count
	}
	for _, p := range d.Rollups {
		inRollups += p.Count
	}
	if inPanes != d.Calls || inRollups != d.Calls {
		tb.Fatalf("%d calls ingested; panes hold %d, rollups %d", d.Calls, inPanes, inRollups)
	}
	return d
}

func (d *Data) add(tb testing.TB, ps []aggregator.PaneStat) {
	for _, p := range ps {
		if p.Correction {
			tb.Fatalf("unexpected correction of %+v at %d", p.Key, p.Start)
		}
		if p.Rollup {
			d.Rollups = append(d.Rollups, p)
		} else {
			d.Panes = append(d.Panes, p)
		}
	}
}

// PaneRows returns ps as the sink stores them.
func PaneRows(ps []aggregator.PaneStat) []clickhouse.PaneRow {
	out := make([]clickhouse.PaneRow, len(ps))
	for i, p := range ps {
		out[i] = backfill.RowOf(p)
	}
	return out
}

// Store writes the panes of d to call_panes through w.
func Store(tb testing.TB, w *clickhouse.Writer, d Data) {
	tb.Helper()
	for ps := d.Panes; len(ps) > 0; {
		n := min(len(ps), 50_000)
		if err := w.WritePanes(context.Background(), PaneRows(ps[:n])); err != nil {
			tb.Fatal(err)
		}
		ps = ps[n:]
	}
}

// Keys returns n keys spread over a few systems, apps, groups and IDCs.
func Keys(n int) []aggregator.Key {
	out := make([]aggregator.Key, 0, n)
	systems := []string{"pay", "shop", "ads"}
	idcs := []string{"bj", "sh"}
	for i := range n {
		out = append(out, aggregator.Key{
			System: systems[i%len(systems)],
			App:    "app" + strconv.Itoa(i/7%13),
			Group:  "g" + strconv.Itoa(i%2),
			IDC:    idcs[i/2%len(idcs)],
			Method: "M" + strconv.Itoa(i),
		})
	}
	return out
}

// CallBatch builds a codec.Batch of calls as a collector sends one.
type CallBatch struct {
	Batch  *codec.Batch
	sym    map[string]uint32
	series map[aggregator.Key]uint32
}

// NewCallBatch returns an empty CallBatch.
func NewCallBatch() *CallBatch {
	return &CallBatch{
		Batch:  &codec.Batch{Symbols: []string{""}, LabelOffsets: []uint32{0}},
		sym:    map[string]uint32{"": 0},
		series: map[aggregator.Key]uint32{},
	}
}

func (b *CallBatch) ref(s string) uint32 {
	if r, ok := b.sym[s]; ok {
		return r
	}
	b.sym[s] = uint32(len(b.Batch.Symbols))
	b.Batch.Symbols = append(b.Batch.Symbols, s)
	return b.sym[s]
}

// Add appends a call of k at tsMs with its latency and outcome.
func (b *CallBatch) Add(k aggregator.Key, tsMs int64, latUs uint32, ok bool) {
	si, found := b.series[k]
	if !found {
		// Label names sorted, as the codec writes them.
		b.Batch.LabelRefs = append(b.Batch.LabelRefs, b.ref("app"), b.ref(k.App), b.ref("group"), b.ref(k.Group),
			b.ref("idc"), b.ref(k.IDC), b.ref("system"), b.ref(k.System))
		b.Batch.LabelOffsets = append(b.Batch.LabelOffsets, uint32(len(b.Batch.LabelRefs)))
		si = uint32(len(b.Batch.Series))
		b.Batch.Series = append(b.Batch.Series, codec.Series{Labels: uint32(len(b.Batch.LabelOffsets) - 2), Method: b.ref(k.Method)})
		b.series[k] = si
	}
	b.Batch.Calls = append(b.Batch.Calls, codec.Call{TsUnixMs: tsMs, Series: si, LatencyUs: latUs, OK: ok})
}

// Optimize merges every part of table (database.name) into one per
// partition, so that rows of the same identity collapse without FINAL.
// 18.16 skips OPTIMIZE silently while a background merge runs, so it asks
// the server to say so and tries again.
func Optimize(tb testing.TB, conn driver.Conn, table string) {
	tb.Helper()
	ctx := ch.Context(context.Background(), ch.WithSettings(ch.Settings{"optimize_throw_if_noop": 1}))
	var err error
	for range 50 {
		if err = conn.Exec(ctx, "OPTIMIZE TABLE "+table+" FINAL"); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.Fatalf("cannot optimize %s: %v", table, err)
}

// RollupID is a rollup's identity: its key and start (Unix seconds).
type RollupID struct {
	Key   aggregator.Key
	Start int64
}

// Stored reads call_rollups, FINAL or not, by identity; a second
// row of an identity fails the test.
func Stored(t testing.TB, conn driver.Conn, db string, final bool) map[RollupID]clickhouse.PaneRow {
	t.Helper()
	q := "SELECT pane_start, pane_seconds, system, app, group_name, idc, method, count, errors, sum_us, min_us, max_us," +
		" p50_us, p90_us, p99_us, p999_us, centroid_means, centroid_weights, version FROM " + db + ".call_rollups"
	if final {
		q += " FINAL"
	}
	rows, err := conn.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[RollupID]clickhouse.PaneRow{}
	for rows.Next() {
		var r clickhouse.PaneRow
		if err := rows.Scan(&r.PaneStart, &r.PaneSeconds, &r.System, &r.App, &r.Group, &r.IDC, &r.Method,
			&r.Count, &r.Errors, &r.SumUs, &r.MinUs, &r.MaxUs, &r.P50Us, &r.P90Us, &r.P99Us, &r.P999Us,
			&r.CentroidMeans, &r.CentroidWeights, &r.Version); err != nil {
			t.Fatal(err)
		}
		id := RollupID{aggregator.Key{System: r.System, App: r.App, Group: r.Group, IDC: r.IDC, Method: r.Method}, r.PaneStart.Unix()}
		if _, dup := out[id]; dup {
			t.Fatalf("two rows of rollup %+v", id)
		}
		out[id] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// DiffRow says how two rollup rows differ, or "" when they are equal.
func DiffRow(got, want clickhouse.PaneRow) string {
	var d []string
	f := func(name string, g, w any) {
		if fmt.Sprint(g) != fmt.Sprint(w) {
			d = append(d, fmt.Sprintf("%s %v, want %v", name, g, w))
		}
	}
	f("pane_start", got.PaneStart.Unix(), want.PaneStart.Unix())
	f("pane_seconds", got.PaneSeconds, want.PaneSeconds)
	f("count", got.Count, want.Count)
	f("errors", got.Errors, want.Errors)
	f("sum", got.SumUs, want.SumUs)
	f("min", got.MinUs, want.MinUs)
	f("max", got.MaxUs, want.MaxUs)
	f("p50", got.P50Us, want.P50Us)
	f("p90", got.P90Us, want.P90Us)
	f("p99", got.P99Us, want.P99Us)
	f("p999", got.P999Us, want.P999Us)
	f("version", got.Version, want.Version)
	if !slices.Equal(got.CentroidMeans, want.CentroidMeans) || !slices.Equal(got.CentroidWeights, want.CentroidWeights) {
		d = append(d, fmt.Sprintf("%d centroids differ from the %d wanted", len(got.CentroidMeans), len(want.CentroidMeans)))
	}
	return strings.Join(d, "; ")
}

// EngineRollups returns the engine's rollups of d whose key pick picks (nil: all).
func EngineRollups(d Data, pick func(aggregator.Key) bool) map[RollupID]clickhouse.PaneRow {
	out := map[RollupID]clickhouse.PaneRow{}
	for _, p := range d.Rollups {
		if pick == nil || pick(p.Key) {
			out[RollupID{p.Key, p.Start / 1000}] = backfill.RowOf(p)
		}
	}
	return out
}

// SameRollups fails t unless got holds exactly want.
func SameRollups(t testing.TB, got, want map[RollupID]clickhouse.PaneRow) {
	t.Helper()
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			t.Errorf("rollup %+v at %s missing", id.Key, time.Unix(id.Start, 0).UTC())
			continue
		}
		if d := DiffRow(g, w); d != "" {
			t.Errorf("rollup %+v at %s: %s", id.Key, time.Unix(id.Start, 0).UTC(), d)
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("unexpected rollup %+v at %s", id.Key, time.Unix(id.Start, 0).UTC())
		}
	}
}
