// Command report measures the query behind a one-day TP99 panel: the
// calls of one app's methods per step, with TP99 merged from the stored
// centroids of a day of 10-s panes (pipeline/clickhouse.QueryCallStats, as
// /api/v1/tp runs it), on a private clickhouse-server.
//
//	go run ./benchmarks/report [-apps 200] [-methods 50] [-centroids 32] [-other-span 1h] [-runs 7]
//
// The benchmarked app gets every pane of the day; the other apps get the
// first -other-span of it (a full day for 10 000 keys is 86 M rows, more
// than this machine inserts in reasonable time), so the table holds
// 10 000 keys and the panel reads its own 50 keys' 432 000 panes. A
// calls-only panel over the same rows (sum of count per minute, no
// centroids) is the baseline, measured in the same rounds.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

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
	)
	flag.IntVar(&d.apps, "apps", 200, "apps (keys = apps × methods)")
	flag.IntVar(&d.methods, "methods", 50, "methods per app")
	flag.IntVar(&d.centroids, "centroids", 32, "centroids per pane")
	flag.IntVar(&d.benchApp, "bench-app", 42, "index of the app whose full day is generated and queried")
	flag.DurationVar(&d.otherSpan, "other-span", time.Hour, "span of panes generated for every other app")
	flag.IntVar(&d.rollupCentroids, "rollup-centroids", 100, "centroids per pane of the 5-minute rollup variant; 0 skips it")
	flag.IntVar(&runs, "runs", 7, "rounds; each runs every query once")
	flag.StringVar(&repo, "repo", ".", "root of the tpflow repository (for scripts/clickhouse.sh)")
	flag.StringVar(&dsn, "clickhouse", "", "use this ClickHouse DSN instead of starting a private server")
	flag.StringVar(&workDir, "workdir", "", "`DIR` for the private server; default a new temporary directory")
	flag.Parse()
	if err := run(d, runs, repo, dsn, workDir); err != nil {
		logf("%v", err)
		os.Exit(1)
	}
}

func run(d dataset, runs int, repo, dsn, workDir string) (err error) {
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
	if err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+d.database+".call_panes"); err != nil {
		return err
	}
	if err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+d.database+".schema_migrations"); err != nil {
		return err
	}
	if _, err := clickhouse.Migrate(ctx, conn, cfg); err != nil {
		return err
	}
	var version string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		return err
	}
	total, err := d.generate(ctx, conn, logf)
	if err != nil {
		return err
	}
	var parts uint64
	_ = conn.QueryRow(ctx, "SELECT count() FROM system.parts WHERE active AND database = ? AND table = 'call_panes'", d.database).Scan(&parts)
	logf("call_panes: %d rows (%d keys), %d active parts", total, d.apps*d.methods, parts)

	type variant struct {
		name string
		run  func() (int, error)
	}
	stats := func(app int, step time.Duration, by ...string) func() (int, error) {
		q := d.panelQuery(app, step, by)
		return func() (int, error) {
			res, err := clickhouse.QueryCallStats(ctx, conn, q)
			return len(res), err
		}
	}
	variants := []variant{
		{"calls per 1m, no centroids (baseline)", func() (int, error) { return callsOnly(ctx, conn, d) }},
		{"TP99 per 1m, app", stats(d.benchApp, time.Minute)},
		{"TP99 per 5m, app", stats(d.benchApp, 5*time.Minute)},
		{"TP99 per 5m, by method", stats(d.benchApp, 5*time.Minute, "method")},
		{"TP99 per 1m, by method", stats(d.benchApp, time.Minute, "method")},
	}
	variants = append(variants, variant{"TP99 per 1m, app, ClickHouse's t-digest merge instead of exact", func() (int, error) {
		return tdigestPanel(ctx, conn, d.panelQuery(d.benchApp, time.Minute, nil))
	}})
	if d.rollupCentroids > 0 {
		variants = append(variants,
			variant{fmt.Sprintf("TP99 per 5m, app, over 5-min panes of %d centroids", d.rollupCentroids), stats(d.rollupApp(), 5*time.Minute)},
			variant{fmt.Sprintf("TP99 per 5m, by method, over 5-min panes of %d centroids", d.rollupCentroids), stats(d.rollupApp(), 5*time.Minute, "method")})
	}
	times := make([][]time.Duration, len(variants))
	points := make([]int, len(variants))
	for r := range runs + 1 {
		for i, v := range variants {
			start := time.Now()
			n, err := v.run()
			el := time.Since(start)
			if err != nil {
				return fmt.Errorf("%s: %w", v.name, err)
			}
			points[i] = n
			if r > 0 { // the first round warms the page cache
				times[i] = append(times[i], el)
			}
		}
	}
	fmt.Printf("clickhouse-server %s; %d keys (%d apps × %d methods), %d centroids per pane; app %s: %d panes over 24 h; other apps: %s each; %d rows in call_panes\n\n",
		version, d.apps*d.methods, d.apps, d.methods, d.centroids, d.app(d.benchApp), 8640*d.methods, d.otherSpan, total)
	fmt.Printf("| query (one day, app %s, %d methods) | points | median | min | max | ratio to baseline |\n|---|--:|--:|--:|--:|--:|\n", d.app(d.benchApp), d.methods)
	base := median(times[0])
	for i, v := range variants {
		m := median(times[i])
		fmt.Printf("| %s | %d | %s | %s | %s | %.1f× |\n", v.name, points[i], ms(m), ms(slices.Min(times[i])), ms(slices.Max(times[i])), float64(m)/float64(base))
	}
	fmt.Printf("\n%d rounds after one warm-up round; each round runs every query once, in this order.\n", runs)
	return nil
}

// callsOnly is the baseline: the traffic panel over the same panes.
func callsOnly(ctx context.Context, conn driver.Conn, d dataset) (int, error) {
	q := d.panelQuery(d.benchApp, time.Minute, nil)
	rows, err := conn.Query(ctx, fmt.Sprintf("SELECT intDiv(toUInt32(pane_start) - ?, 60) AS b, sum(count), sum(errors) FROM %s.call_panes FINAL"+
		" WHERE pane_start >= toDateTime(?) AND pane_start < toDateTime(?) AND system = ? AND app = ? GROUP BY b ORDER BY b", d.database),
		q.From.Unix(), q.From.Unix(), q.To.Unix(), q.Selector.System, q.Selector.App)
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

// tdigestPanel runs the panel query with quantilesTDigestWeighted in place
// of the exact merge, for comparison; it is not what the API runs.
func tdigestPanel(ctx context.Context, conn driver.Conn, q clickhouse.CallStatsQuery) (int, error) {
	query, args, err := q.SQL()
	if err != nil {
		return 0, err
	}
	query = strings.Replace(query, "quantilesExactWeightedArray", "quantilesTDigestWeightedArray", 1)
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

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
