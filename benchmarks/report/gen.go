package main

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/aggregator/backfill"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
)

// dataset describes the generated call panes: keys = apps × methods
// (methods per app), 10-s panes. The benchmarked app gets every pane of
// [day, day+24h); every other app gets the first otherSpan of the day.
type dataset struct {
	database  string
	day       time.Time
	apps      int
	methods   int
	centroids int
	benchApp  int
	otherSpan time.Duration
	// rollups, when true, adds the 5-minute rollups of every generated
	// pane to call_rollups (see buildRollups).
	rollups bool
}

func (d dataset) system(app int) string { return fmt.Sprintf("sys%02d", app/20) }
func (d dataset) app(app int) string    { return fmt.Sprintf("app%04d", app) }

// insertApp generates the panes of apps [first, last) over [day, day+span)
// inside ClickHouse: INSERT ... SELECT from numbers(), so no row crosses
// the network. Centroid means follow a lognormal-like law per method and
// pane (200 µs × e^(4u²), u uniform), weights 1 to 8; count is the sum of
// the weights and errors one in a hundred.
func (d dataset) insertApp(ctx context.Context, conn driver.Conn, first, last int, span, pane time.Duration, centroids int) (uint64, error) {
	paneSec := int64(pane / time.Second)
	panes := int64(span / pane)
	keys := int64((last - first) * d.methods)
	rows := panes * keys
	const chunk = 500_000
	for off := int64(0); off < rows; off += chunk {
		n := min(chunk, rows-off)
		// Row r: key r % keys, pane r / keys. App a = first + key / methods.
		q := fmt.Sprintf(`INSERT INTO %[1]s.call_panes (pane_start, pane_seconds, system, app, group_name, idc, method, count, errors,
  sum_us, min_us, max_us, p50_us, p90_us, p99_us, p999_us, centroid_means, centroid_weights, version)
SELECT toDateTime(%[2]d + intDiv(r, %[3]d) * %[9]d), %[9]d,
  concat('sys', substring(toString(100 + intDiv(a, 20)), 2)), concat('app', substring(toString(10000 + a), 2)), concat('g', toString(k %% 3)), concat('idc', toString(k %% 2)),
  concat('method', toString(k %% %[4]d)), toUInt64(arraySum(w)), toUInt64(intDiv(arraySum(w), 100)),
  round(arraySum(arrayMap((m, x) -> m * x, means, w))), floor(means[1]), ceil(means[-1]), 0, 0, 0, 0, means, w, 1
FROM (SELECT %[5]d + number AS r, r %% %[3]d AS k, %[6]d + intDiv(k, %[4]d) AS a,
  arraySort(arrayMap(i -> 200 * exp(4 * pow((cityHash64(r, i) %% 1000000) / 1000000, 2)) * (1 + (k %% %[4]d) / 50), range(%[7]d))) AS means,
  arrayMap(i -> toFloat64(1 + cityHash64(r, i, 7) %% 8), range(%[7]d)) AS w
  FROM numbers(%[8]d))`, d.database, d.day.Unix(), keys, d.methods, off, first, centroids, n, paneSec)
		if err := conn.Exec(ctx, q); err != nil {
			return 0, fmt.Errorf("cannot generate panes: %w", err)
		}
	}
	return uint64(rows), nil
}

// generate fills the dataset and returns the rows written.
func (d dataset) generate(ctx context.Context, conn driver.Conn, logf func(string, ...any)) (uint64, error) {
	start := time.Now()
	n, err := d.insertApp(ctx, conn, d.benchApp, d.benchApp+1, 24*time.Hour, 10*time.Second, d.centroids)
	if err != nil {
		return 0, err
	}
	logf("benchmarked app %s: %d panes of %d methods in %s", d.app(d.benchApp), n, d.methods, time.Since(start).Round(time.Millisecond))
	total := n
	if d.otherSpan > 0 {
		for _, r := range [][2]int{{0, d.benchApp}, {d.benchApp + 1, d.apps}} {
			if r[0] >= r[1] {
				continue
			}
			start := time.Now()
			n, err := d.insertApp(ctx, conn, r[0], r[1], d.otherSpan, 10*time.Second, d.centroids)
			if err != nil {
				return 0, err
			}
			logf("apps %d..%d: %d panes over %s in %s", r[0], r[1]-1, n, d.otherSpan, time.Since(start).Round(time.Millisecond))
			total += n
		}
	}
	return total, nil
}

// buildRollups writes the 5-minute rollups of the generated panes, as the
// aggregator would have emitted them: each app's panes are read back from
// call_panes ordered by key and start, merged per key and bucket with
// aggregator.MergeRollup at the default rollup compression, and inserted
// into call_rollups in batches. It returns the rollups written and their
// centroids.
func (d dataset) buildRollups(ctx context.Context, conn driver.Conn, w *clickhouse.Writer) (rows, centroids uint64, err error) {
	delta := aggregator.DefaultConfig().RollupCompression
	bucketMs := aggregator.RollupLength.Milliseconds()
	var (
		out  []clickhouse.PaneRow
		cur  []aggregator.PaneStat
		meta clickhouse.PaneRow // labels of cur
	)
	flush := func() {
		if len(cur) == 0 {
			return
		}
		start := cur[0].Start - cur[0].Start%bucketMs
		r := aggregator.MergeRollup(cur, start, aggregator.RollupLength, delta)
		r.Key = cur[0].Key
		out = append(out, backfill.RowOf(r))
		centroids += uint64(len(r.Centroids))
		cur = cur[:0]
	}
	for app := range d.apps {
		q, err := conn.Query(ctx, "SELECT pane_start, system, app, group_name, idc, method, count, errors, sum_us, min_us, max_us, centroid_means, centroid_weights"+
			" FROM "+d.database+".call_panes FINAL WHERE system = ? AND app = ? ORDER BY system, app, group_name, idc, method, pane_start",
			d.system(app), d.app(app))
		if err != nil {
			return 0, 0, fmt.Errorf("cannot read panes of %s: %w", d.app(app), err)
		}
		for q.Next() {
			var r clickhouse.PaneRow
			if err := q.Scan(&r.PaneStart, &r.System, &r.App, &r.Group, &r.IDC, &r.Method, &r.Count, &r.Errors,
				&r.SumUs, &r.MinUs, &r.MaxUs, &r.CentroidMeans, &r.CentroidWeights); err != nil {
				q.Close()
				return 0, 0, fmt.Errorf("cannot read panes of %s: %w", d.app(app), err)
			}
			p, err := backfill.PaneOf(aggregator.Key{System: r.System, App: r.App, Group: r.Group, IDC: r.IDC, Method: r.Method}, &r)
			if err != nil {
				q.Close()
				return 0, 0, fmt.Errorf("cannot read panes of %s: %w", d.app(app), err)
			}
			if len(cur) > 0 && (r.Method != meta.Method || r.Group != meta.Group || r.IDC != meta.IDC ||
				p.Start-p.Start%bucketMs != cur[0].Start-cur[0].Start%bucketMs) {
				flush()
			}
			if len(cur) == 0 {
				meta = r
			}
			cur = append(cur, p)
		}
		err = q.Err()
		q.Close()
		if err != nil {
			return 0, 0, fmt.Errorf("cannot read panes of %s: %w", d.app(app), err)
		}
		flush()
		if len(out) >= 20_000 || app == d.apps-1 {
			if err := w.WriteRollups(ctx, out); err != nil {
				return 0, 0, err
			}
			rows += uint64(len(out))
			out = out[:0]
		}
	}
	return rows, centroids, nil
}

// panelQuery is the query behind a one-day TP99 panel of the benchmarked
// app: what /api/v1/tp runs for system, app, step and optional by.
func (d dataset) panelQuery(app int, step time.Duration, by []string) clickhouse.CallStatsQuery {
	return clickhouse.CallStatsQuery{
		Database:  d.database,
		Selector:  clickhouse.Selector{System: d.system(app), App: d.app(app)},
		From:      d.day,
		To:        d.day.Add(24 * time.Hour),
		Step:      step,
		By:        by,
		Quantiles: []float64{0.99},
	}
}
