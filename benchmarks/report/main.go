// Command report measures the query behind a one-day TP99 panel: the
// calls of one app's methods per step, with TP99 merged from stored
// centroids (pipeline/clickhouse.QueryCallStats, as /api/v1/tp runs it),
// on a private clickhouse-server: from the 5-minute rollups of
// call_rollups where the step allows, and from a day of 10-s panes.
//
//	go run ./benchmarks/report [-apps 200] [-methods 50] [-centroids 32] [-other-span 1h] [-runs 7]
//
// The benchmarked app gets every pane of the day; the other apps get the
// first -other-span of it (a full day for 10 000 keys is 86 M rows, more
// than this machine inserts in reasonable time), so the table holds
// 10 000 keys and the panel reads its own 50 keys' 432 000 panes. The
// rollups are built from those panes with aggregator.MergeRollup, as the
// aggregator emits them (see dataset.buildRollups). A calls-only panel over
// the 10-s panes (sum of count per minute, no centroids) is the baseline,
// measured in the same rounds, and so is the exact merge over the 10-s
// panes (PanesOnly).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/internal/dashboards"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
)

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench-report: "+format+"\n", args...)
}

func main() {
	var (
		d       = dataset{database: "bench", day: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)}
		runs    int
		repo    string
		dsn     string
		workDir string
		reuse   bool
	)
	flag.IntVar(&d.apps, "apps", 200, "apps (keys = apps × methods)")
	flag.IntVar(&d.methods, "methods", 50, "methods per app")
	flag.IntVar(&d.centroids, "centroids", 32, "centroids per pane")
	flag.IntVar(&d.benchApp, "bench-app", 42, "index of the app whose full day is generated and queried")
	flag.DurationVar(&d.otherSpan, "other-span", time.Hour, "span of panes generated for every other app")
	flag.BoolVar(&d.rollups, "rollups", true, "build the 5-minute rollups of the panes and measure the queries they serve")
	flag.IntVar(&runs, "runs", 7, "rounds; each runs every query once")
	flag.StringVar(&repo, "repo", ".", "root of the tpflow repository (for scripts/clickhouse.sh)")
	flag.StringVar(&dsn, "clickhouse", "", "use this ClickHouse DSN instead of starting a private server")
	flag.StringVar(&workDir, "workdir", "", "`DIR` for the private server; default a new temporary directory")
	flag.BoolVar(&reuse, "reuse", false, "with -clickhouse: measure the dataset an earlier run left there (same flags) instead of generating it")
	flag.Parse()
	if reuse && dsn == "" {
		logf("-reuse needs -clickhouse")
		os.Exit(2)
	}
	if err := run(d, runs, repo, dsn, workDir, reuse); err != nil {
		logf("%v", err)
		os.Exit(1)
	}
}

func run(d dataset, runs int, repo, dsn, workDir string, reuse bool) (err error) {
	ctx := context.Background()
	if dsn == "" {
		if workDir == "" {
			if workDir, err = os.MkdirTemp("", "tpflow-bench-report-"); err != nil {
				return err
			}
		}
		script := filepath.Join(repo, "scripts", "clickhouse.sh")
		chDir := filepath.Join(workDir, "clickhouse")
		out, err := exec.Command("bash", script, "start", chDir).Output()
		if err != nil {
			return fmt.Errorf("cannot start ClickHouse: %w", err)
		}
		defer func() {
			if err := exec.Command("bash", script, "stop", chDir).Run(); err != nil {
				logf("cannot stop ClickHouse: %v", err)
			}
			_ = os.RemoveAll(workDir)
		}()
		dsn = "clickhouse://127.0.0.1:" + strings.TrimSpace(string(out))
	}
	cfg := clickhouse.DefaultConfig()
	cfg.DSN = dsn
	cfg.Database = d.database
	conn, err := clickhouse.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close()
	if !reuse {
		for _, t := range []string{"call_panes", "call_rollups"} {
			if err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+d.database+"."+t); err != nil {
				return err
			}
		}
		if err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+d.database+".schema_migrations"); err != nil {
			return err
		}
		if _, err := clickhouse.Migrate(ctx, conn, cfg); err != nil {
			return err
		}
	}
	var version string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		return err
	}
	var total, rollups, rollupCents uint64
	if reuse {
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+d.database+".call_panes").Scan(&total); err != nil {
			return err
		}
		if err := conn.QueryRow(ctx, "SELECT count(), sum(length(centroid_means)) FROM "+d.database+".call_rollups").Scan(&rollups, &rollupCents); err != nil {
			return err
		}
		logf("reusing call_panes: %d rows, call_rollups: %d rows", total, rollups)
	} else if err := d.fill(ctx, conn, cfg, &total, &rollups, &rollupCents); err != nil {
		return err
	}

	type variant struct {
		name string
		run  func() (int, clickhouse.Source, error)
	}
	stats := func(q clickhouse.CallStatsQuery) func() (int, clickhouse.Source, error) {
		return func() (int, clickhouse.Source, error) {
			res, err := clickhouse.QueryCallStats(ctx, conn, q)
			return len(res), clickhouse.SourceOf(res), err
		}
	}
	panel := func(step time.Duration, panesOnly bool, by ...string) func() (int, clickhouse.Source, error) {
		q := d.panelQuery(d.benchApp, step, by)
		q.PanesOnly = panesOnly
		return stats(q)
	}
	variants := []variant{
		{"calls per 1m, no centroids (baseline)", func() (int, clickhouse.Source, error) {
			n, err := callsOnly(ctx, conn, d)
			return n, clickhouse.SourcePanes, err
		}},
		{"TP99 per 1m, app", panel(time.Minute, false)},
		{"TP99 per 5m, app, exact over 10-s panes", panel(5*time.Minute, true)},
		{"TP99 per 5m, by method, exact over 10-s panes", panel(5*time.Minute, true, "method")},
		{"TP99 per 1m, by method", panel(time.Minute, false, "method")},
		{"TP99 per 1m, app, ClickHouse's t-digest merge instead of exact", func() (int, clickhouse.Source, error) {
			n, err := tdigestPanel(ctx, conn, d.panelQuery(d.benchApp, time.Minute, nil))
			return n, clickhouse.SourcePanes, err
		}},
	}
	if d.rollups {
		variants = append(variants,
			variant{"TP99 per 5m, app", panel(5*time.Minute, false)},
			variant{"TP99 per 5m, by method", panel(5*time.Minute, false, "method")},
			variant{"TP99 of the whole day, app (no step)", panel(0, false)},
			variant{"Grafana's TP50/90/99/999 panel (service overview), its own SQL expanded for the day at 5m", func() (int, clickhouse.Source, error) {
				n, err := grafanaPanel(ctx, conn, d)
				return n, clickhouse.SourceRollups | clickhouse.SourcePanes, err
			}})
	}
	sources := make([]clickhouse.Source, len(variants))
	loadBefore := loadavg()
	times := make([][]time.Duration, len(variants))
	points := make([]int, len(variants))
	for r := range runs + 1 {
		for i, v := range variants {
			start := time.Now()
			n, src, err := v.run()
			el := time.Since(start)
			if err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			points[i], sources[i] = n, src
			if r > 0 { // the first round warms the page cache
				times[i] = append(times[i], el)
			}
		}
	}
	fmt.Printf("clickhouse-server %s; %d keys (%d apps × %d methods), %d centroids per pane; app %s: %d panes over 24 h; other apps: %s each; %d rows in call_panes\n",
		version, d.apps*d.methods, d.apps, d.methods, d.centroids, d.app(d.benchApp), 8640*d.methods, d.otherSpan, total)
	if d.rollups {
		var appRows, appCents float64
		if err := conn.QueryRow(ctx, "SELECT toFloat64(count()), toFloat64(sum(length(centroid_means))) FROM "+d.database+".call_rollups FINAL WHERE system = ? AND app = ?",
			d.system(d.benchApp), d.app(d.benchApp)).Scan(&appRows, &appCents); err != nil {
			return err
		}
		fmt.Printf("%d rows in call_rollups (rollup compression %g), %.1f centroids a row; app %s: %.0f rollups, %.1f centroids a row\n",
			rollups, aggregator.DefaultConfig().RollupCompression, float64(rollupCents)/float64(max(rollups, 1)), d.app(d.benchApp), appRows, appCents/max(appRows, 1))
	}
	fmt.Printf("\n| query (one day, app %s, %d methods) | source | points | median | min | max | ratio to baseline |\n|---|---|--:|--:|--:|--:|--:|\n", d.app(d.benchApp), d.methods)
	base := median(times[0])
	for i, v := range variants {
		m := median(times[i])
		fmt.Printf("| %s | %s | %d | %s | %s | %s | %.2f× |\n", v.name, sources[i], points[i], ms(m), ms(slices.Min(times[i])), ms(slices.Max(times[i])), float64(m)/float64(base))
	}
	fmt.Printf("\n%d rounds after one warm-up round; each round runs every query once, in this order. Load average (1, 5, 15 min) before: %s, after: %s.\n",
		runs, loadBefore, loadavg())
	return nil
}

// fill generates the dataset and, when d.rollups, its rollups.
func (d dataset) fill(ctx context.Context, conn driver.Conn, cfg clickhouse.Config, total, rollups, rollupCents *uint64) error {
	var err error
	if *total, err = d.generate(ctx, conn, logf); err != nil {
		return err
	}
	var parts uint64
	_ = conn.QueryRow(ctx, "SELECT count() FROM system.parts WHERE active AND database = ? AND table = 'call_panes'", d.database).Scan(&parts)
	logf("call_panes: %d rows (%d keys), %d active parts", *total, d.apps*d.methods, parts)
	if !d.rollups {
		return nil
	}
	start := time.Now()
	if *rollups, *rollupCents, err = d.buildRollups(ctx, conn, clickhouse.NewWriter(conn, cfg, nil)); err != nil {
		return err
	}
	logf("call_rollups: %d rows, %.1f centroids a row, built in %s", *rollups, float64(*rollupCents)/float64(max(*rollups, 1)),
		time.Since(start).Round(time.Millisecond))
	// Let the inserts' parts merge as they would over a day.
	if err := conn.Exec(ctx, "OPTIMIZE TABLE "+d.database+".call_rollups"); err != nil {
		logf("OPTIMIZE call_rollups: %v", err)
	}
	return nil
}

// callsOnly is the baseline: the traffic panel over the same panes.
func callsOnly(ctx context.Context, conn driver.Conn, d dataset) (int, error) {
	q := d.panelQuery(d.benchApp, time.Minute, nil)
	return countRows(ctx, conn, fmt.Sprintf("SELECT intDiv(toUInt32(pane_start) - ?, 60) AS b, sum(count), sum(errors) FROM %s.call_panes FINAL"+
		" WHERE pane_start >= toDateTime(?) AND pane_start < toDateTime(?) AND system = ? AND app = ? GROUP BY b ORDER BY b", d.database),
		q.From.Unix(), q.From.Unix(), q.To.Unix(), q.Selector.System, q.Selector.App)
}

// countRows runs query and returns the number of rows it answers.
func countRows(ctx context.Context, conn driver.Conn, query string, args ...any) (int, error) {
	rows, err := conn.Query(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
	}
	return n, rows.Err()
}

// grafanaPanel runs the service overview's latency panel as Grafana would
// for the benchmarked app over the day: the panel's SQL from the generated
// dashboard, expanded with a 5m interval (what Grafana picks for a day at
// the panel's max data points; internal/dashboards tests that) and every
// group and IDC selected. It returns the rows.
func grafanaPanel(ctx context.Context, conn driver.Conn, d dataset) (int, error) {
	sql, err := dashboards.PanelSQL("tpflow-service-overview", "Latency TP50 / TP90 / TP99 / TP999")
	if err != nil {
		return 0, err
	}
	all := func(vals ...string) dashboards.Var { return dashboards.Var{Values: vals, Multi: true} }
	sql, err = dashboards.Expand(sql, dashboards.Env{From: d.day, To: d.day.Add(24 * time.Hour), Interval: 5 * time.Minute,
		Vars: map[string]dashboards.Var{"system": all(d.system(d.benchApp)), "app": all(d.app(d.benchApp)),
			"group": all("g0", "g1", "g2"), "idc": all("idc0", "idc1")}})
	if err != nil {
		return 0, err
	}
	// Grafana's data source names the database; here the tables do.
	return countRows(ctx, conn, tableRe.ReplaceAllString(sql, d.database+".$1"))
}

var tableRe = regexp.MustCompile(`\b(call_panes|call_rollups)\b`)

// tdigestPanel runs the panel query with quantilesTDigestWeighted in place
// of the exact merge, for comparison; it is not what the API runs.
func tdigestPanel(ctx context.Context, conn driver.Conn, q clickhouse.CallStatsQuery) (int, error) {
	query, args, err := q.SQL()
	if err != nil {
		return 0, err
	}
	return countRows(ctx, conn, strings.Replace(query, "quantilesExactWeightedArray", "quantilesTDigestWeightedArray", 1), args...)
}

// loadavg returns the machine's load averages, which say how much other
// work shared the CPUs with the measurement.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
