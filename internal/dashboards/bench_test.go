package dashboards

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest"
)

// BenchmarkDedupe compares the two ways 18.16 can read the current version
// of each pane: FINAL (what the panels use) and argMax(col, version) over a
// GROUP BY of the pane identity, for the service overview's QPS and TP
// panels over 6 hours of 100 keys (216 000 panes, 10 % of them also stored
// in an older version, in 20 insert batches). Both forms must return the
// same rows.
func BenchmarkDedupe(b *testing.B) {
	s := chtest.Shared(b)
	cfg := clickhouse.DefaultConfig()
	cfg.DSN = s.DSN()
	cfg.Database = s.Database()
	ctx := context.Background()
	conn, err := clickhouse.Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	if _, err := clickhouse.Migrate(ctx, conn, cfg); err != nil {
		b.Fatal(err)
	}
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
