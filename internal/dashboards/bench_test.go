package dashboards

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest/chdb"
)

// BenchmarkDedupe compares the two ways 18.16 can read the current version
// of each pane: FINAL (what the panels use) and argMax(col, version) over a
// GROUP BY of the pane identity, for the service overview's QPS and TP
// panels over 6 hours of 100 keys (216 000 panes, 10 % of them also stored
// in an older version, in 20 insert batches). Both forms must return the
// same rows.
func BenchmarkDedupe(b *testing.B) {
	conn, cfg := chdb.Shared(b)
	ctx := context.Background()
	const keys, hours = 100, 6
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	panes := hours * 3600 / paneSec
	rng := rand.New(rand.NewPCG(7, 7))
	w := clickhouse.NewWriter(conn, cfg, nil)
	var batch []clickhouse.PaneRow
	lat := make([]float64, 300)
	for p := range panes {
		for k := range keys {
			n := 50 + rng.IntN(250)
			for i := range n {
				lat[i] = float64(100 + rng.IntN(5000))
			}
			slices.Sort(lat[:n])
			means, weights := compress(lat[:n], 100)
			r := clickhouse.PaneRow{PaneStart: start.Add(time.Duration(p*paneSec) * time.Second), PaneSeconds: paneSec,
				System: "sys", App: fmt.Sprintf("app%d", k%10), Group: fmt.Sprintf("g%d", k/10%2), IDC: fmt.Sprintf("dc%d", k/20%2),
				Method: fmt.Sprintf("m%d", k/40), Count: uint64(n), CentroidMeans: means, CentroidWeights: weights, Version: 2}
			if rng.IntN(10) == 0 {
				old := r
				old.Version, old.Count = 1, r.Count/2
				batch = append(batch, old)
			}
			batch = append(batch, r)
		}
		if (p+1)%(panes/20) == 0 {
			if err := w.WritePanes(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := w.WritePanes(ctx, batch); err != nil {
		b.Fatal(err)
	}
	var sqls = map[string]string{}
	for _, d := range generated(b) {
		for _, p := range d.Panels {
			if d.UID == "tpflow-service-overview" && (p.Title == "Calls per second by app" || strings.HasPrefix(p.Title, "Latency")) {
				sqls[p.Title] = p.Targets[0].RawSQL
			}
		}
	}
	all := map[string]Var{}
	for name, vals := range map[string][]string{"system": {"sys"}, "app": nil, "group": {"g0", "g1"}, "idc": {"dc0", "dc1"}} {
		if vals == nil {
			for i := range 10 {
				vals = append(vals, fmt.Sprintf("app%d", i))
			}
		}
		all[name] = Var{Values: vals, Multi: true}
	}
	env := Env{From: start, To: start.Add(hours*time.Hour - time.Second), Interval: 5 * time.Minute, Vars: all}
	expand := func(sql string) string {
		out, err := Expand(sql, env)
		if err != nil {
			b.Fatal(err)
		}
		return out
	}
	where := " WHERE $__timeFilter(pane_start)" + in("system", "app", "group", "idc")
	ident := " GROUP BY system, app, group_name, idc, method, pane_start"
	cases := []struct{ name, final, argmax string }{
		{"qps", expand(sqls["Calls per second by app"]), expand(
			"SELECT time, series, sum(c) / $__interval_s AS qps FROM (SELECT " + bucket("pane_start") + " AS time, app AS series, argMax(count, version) AS c" +
				" FROM call_panes" + where + ident + ") GROUP BY time, series ORDER BY time, series")},
		{"tp", expand(sqls["Latency TP50 / TP90 / TP99 / TP999"]), expand(
			"SELECT time, q[1] AS tp50, q[2] AS tp90, q[3] AS tp99, q[4] AS tp999 FROM (SELECT time, " + tpLevels + " AS q FROM (" +
				"SELECT " + bucket("pane_start") + " AS time, argMax(centroid_means, version) AS cm, argMax(centroid_weights, version) AS cw" +
				" FROM call_panes" + where + ident + ") ARRAY JOIN cm AS mean, arrayMap(x -> toUInt64(round(x)), cw) AS w GROUP BY time) ORDER BY time")},
	}
	for _, c := range cases {
		if c.final == "" {
			b.Fatalf("%s: panel not found", c.name)
		}
		f, a := benchRows(b, conn, c.final), benchRows(b, conn, c.argmax)
		if f != a || len(f) < 100 {
			b.Fatalf("%s: FINAL and argMax disagree or return nothing:\n%.300s\n%.300s", c.name, f, a)
		}
		for _, form := range []struct{ name, sql string }{{"final", c.final}, {"argmax", c.argmax}} {
			b.Run(c.name+"/"+form.name, func(b *testing.B) {
				for b.Loop() {
					benchRows(b, conn, form.sql)
				}
			})
		}
	}
}

// benchRows runs sql and returns its rows as text.
func benchRows(b *testing.B, conn driver.Conn, sql string) string {
	rows, err := conn.Query(context.Background(), sql)
	if err != nil {
		b.Fatalf("%v\n%s", err, sql)
	}
	defer rows.Close()
	var sb strings.Builder
	cts := rows.ColumnTypes()
	vals := make([]any, len(cts))
	for rows.Next() {
		for i, c := range cts {
			vals[i] = newOf(c)
		}
		if err := rows.Scan(vals...); err != nil {
			b.Fatal(err)
		}
		for _, v := range vals {
			fmt.Fprintf(&sb, "%v ", deref(v))
		}
		sb.WriteByte('\n')
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return sb.String()
}

func newOf(c driver.ColumnType) any { return reflect.New(c.ScanType()).Interface() }

func deref(p any) any { return reflect.ValueOf(p).Elem().Interface() }

// BenchmarkRollupTP measures the service overview's TP panel (TP50…TP999
// per bucket of one app's calls, merged from centroids) expanded as
// Grafana sends it for a one-day range: 50 methods of one app, a day of
// 10-s panes (432 000 panes of 50–300 calls, digests at compression 100:
// ~157 centroids a pane, as the engine's own panes of ~170 calls carry
// ~146) and their 5-minute rollups (14 400, built by
// aggregator.MergeRollup at the default rollup compression: ~223 centroids
// each), in one run:
//
//   - panes: the panel's SQL before rollups (call_panes only) at the
//     dashboard's 5m interval: the baseline;
//   - rollups: the panel's SQL at 5m, which reads call_rollups;
//   - gate-off/panes and gate-off/panel: the old and the current SQL at a
//     2m interval, where the rollup gate is closed: the cost of the rollup
//     branch and horizon subqueries that read nothing.
//
// The table holds only the benchmarked app: the panel's primary-key filter
// reads the same granules among 10 000 keys (make bench-report generates
// 10 000 keys and times the query API's form of the same panel).
func BenchmarkRollupTP(b *testing.B) {
	conn, cfg := chdb.Shared(b)
	day := time.Date(2026, 1, 6, 0, 0, 0, 0, time.UTC)
	writeRollupBench(b, conn, cfg, day)

	var panel string
	for _, d := range generated(b) {
		for _, p := range d.Panels {
			if d.UID == "tpflow-service-overview" && strings.HasPrefix(p.Title, "Latency") {
				panel = p.Targets[0].RawSQL
				if p.MaxDataPoints == nil {
					b.Fatal("the TP panel has no maxDataPoints")
				}
				iv, err := grafanaInterval(day, day.Add(24*time.Hour), *p.MaxDataPoints, p.Interval)
				if err != nil || iv != 5*time.Minute {
					b.Fatalf("a one-day range gets %s (%v), want 5m", iv, err)
				}
			}
		}
	}
	sel := in("system", "app", "group", "idc")
	old := "SELECT time, q[1] AS tp50, q[2] AS tp90, q[3] AS tp99, q[4] AS tp999 FROM (" +
		"SELECT " + bucket("pane_start") + " AS time, " + tpLevels + " AS q FROM " +
		"(SELECT pane_start, centroid_means, centroid_weights FROM call_panes FINAL WHERE $__timeFilter(pane_start)" + sel + ")" +
		" ARRAY JOIN centroid_means AS mean, arrayMap(x -> toUInt64(round(x)), centroid_weights) AS w GROUP BY time) ORDER BY time"
	vars := map[string]Var{"system": {Values: []string{"sys"}, Multi: true}, "app": {Values: []string{"app0"}, Multi: true},
		"group": {Values: []string{"g0", "g1"}, Multi: true}, "idc": {Values: []string{"dc0", "dc1"}, Multi: true}}
	expand := func(sql string, iv time.Duration) string {
		out, err := Expand(sql, Env{From: day, To: day.Add(24*time.Hour - time.Second), Interval: iv, Vars: vars})
		if err != nil {
			b.Fatal(err)
		}
		return out
	}
	cases := []struct{ name, sql string }{
		{"panes", expand(old, 5*time.Minute)},
		{"rollups", expand(panel, 5*time.Minute)},
		{"gate-off/panes", expand(old, 2*time.Minute)},
		{"gate-off/panel", expand(panel, 2*time.Minute)},
	}
	// The rollups give the panes' buckets, TP99 within 1.5 % (a rollup
	// holds 1 500–9 000 calls of 50 keys per bucket here).
	pr, rr := runSQL(b, conn, cases[0].sql), runSQL(b, conn, cases[1].sql)
	if len(pr.rows) != 288 || len(rr.rows) != len(pr.rows) {
		b.Fatalf("%d buckets from panes, %d from rollups, want 288", len(pr.rows), len(rr.rows))
	}
	worst := 0.0
	for i := range pr.rows {
		if pr.rows[i][0] != rr.rows[i][0] {
			b.Fatalf("bucket %d: %v vs %v", i, pr.rows[i][0], rr.rows[i][0])
		}
		p, r := pr.rows[i][3].(float64), rr.rows[i][3].(float64)
		worst = max(worst, math.Abs(r-p)/p)
	}
	if worst > 0.015 {
		b.Fatalf("TP99 from rollups differs from the panes' by up to %.2f%%", 100*worst)
	}
	if g, o := runSQL(b, conn, cases[3].sql), runSQL(b, conn, cases[2].sql); fmt.Sprint(g.rows) != fmt.Sprint(o.rows) || len(o.rows) != 720 {
		b.Fatalf("gate off: the panel's SQL gives %d rows, the panes-only SQL %d, or they differ", len(g.rows), len(o.rows))
	}
	b.Logf("TP99 of the rollups within %.2f%% of the panes' over 288 buckets", 100*worst)
	// The same-run ratio: the two forms alternated, so that the load of a
	// shared machine weighs on both alike.
	var tp, tr []time.Duration
	for range 3 {
		for _, c := range []struct {
			sql string
			d   *[]time.Duration
		}{{cases[0].sql, &tp}, {cases[1].sql, &tr}} {
			start := time.Now()
			benchRows(b, conn, c.sql)
			*c.d = append(*c.d, time.Since(start))
		}
	}
	med := func(d []time.Duration) time.Duration { slices.Sort(d); return d[len(d)/2] }
	b.Logf("one-day TP panel, median of 3 alternated runs: panes %s, rollups %s, ratio %.2f",
		med(tp).Round(time.Millisecond), med(tr).Round(time.Millisecond), float64(med(tr))/float64(med(tp)))
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				benchRows(b, conn, c.sql)
			}
		})
	}
}

// writeRollupBench stores BenchmarkRollupTP's day of panes and rollups.
func writeRollupBench(b testing.TB, conn driver.Conn, cfg clickhouse.Config, day time.Time) {
	ctx := context.Background()
	const methods = 50
	rng := rand.New(rand.NewPCG(11, 50))
	// A pool of pane digests, reused round-robin: the query's cost depends
	// on the number of centroids, not on their values.
	pool := make([]aggregator.PaneStat, 997)
	lat := make([]float64, 300)
	for i := range pool {
		n := 50 + rng.IntN(250)
		for j := range n {
			lat[j] = math.Round(800 * math.Exp(rng.NormFloat64()*0.7))
		}
		slices.Sort(lat[:n])
		means, weights := compress(lat[:n], 100)
		p := aggregator.PaneStat{PaneMs: paneSec * 1000, Count: uint64(n), Version: uint64(n), MinUs: uint32(lat[0]), MaxUs: uint32(lat[n-1])}
		for k := range means {
			p.Centroids = append(p.Centroids, aggregator.Centroid{Mean: float32(means[k]), Weight: uint32(weights[k])})
		}
		pool[i] = p
	}
	w := clickhouse.NewWriter(conn, cfg, nil)
	rl := aggregator.RollupLength.Milliseconds()
	delta := aggregator.DefaultConfig().RollupCompression
	var rows, rollups []clickhouse.PaneRow
	next := 0
	for m := range methods {
		key := aggregator.Key{System: "sys", App: "app0", Group: fmt.Sprintf("g%d", m%2), IDC: fmt.Sprintf("dc%d", m/2%2), Method: fmt.Sprintf("m%02d", m)}
		var bucket []aggregator.PaneStat
		for p := range 24 * 3600 / paneSec {
			st := pool[next%len(pool)]
			next++
			st.Key, st.Start = key, day.Add(time.Duration(p*paneSec)*time.Second).UnixMilli()
			rows = append(rows, paneRow(st))
			bucket = append(bucket, st)
			if (st.Start+st.PaneMs)%rl == 0 {
				rollups = append(rollups, paneRow(aggregator.MergeRollup(bucket, st.Start/rl*rl, aggregator.RollupLength, delta)))
				bucket = bucket[:0]
			}
		}
		if len(rows) >= 40000 || m == methods-1 {
			if err := w.WritePanes(ctx, rows); err != nil {
				b.Fatal(err)
			}
			rows = rows[:0]
		}
	}
	if err := w.WriteRollups(ctx, rollups); err != nil {
		b.Fatal(err)
	}
	// Merge the parts now, as a day-old partition is, so that no
	// background merge competes with the timed queries.
	for _, tbl := range []string{"call_panes", "call_rollups"} {
		if err := conn.Exec(ctx, "OPTIMIZE TABLE "+cfg.Database+"."+tbl+" FINAL"); err != nil {
			b.Fatal(err)
		}
	}

}
