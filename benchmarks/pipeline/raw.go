package main

import (
	"context"
	"fmt"
	"reflect"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/internal/devtools/loadgen"
)

// groupLag returns the end offset of topic summed over its partitions
// minus the offsets group committed there (a partition without a commit
// counts from 0): the messages the group has not yet committed.
func groupLag(ctx context.Context, broker, topic, group string, nparts int) (end, lag int64, err error) {
	c := &kafkago.Client{Addr: kafkago.TCP(broker), Timeout: 10 * time.Second}
	reqs := make([]kafkago.OffsetRequest, nparts)
	parts := make([]int, nparts)
	for i := range nparts {
		reqs[i] = kafkago.LastOffsetOf(i)
		parts[i] = i
	}
	lo, err := c.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{topic: reqs}})
	if err != nil {
		return 0, 0, fmt.Errorf("cannot list offsets of %s: %w", topic, err)
	}
	ends := map[int]int64{}
	for _, p := range lo.Topics[topic] {
		if p.Error != nil {
			return 0, 0, fmt.Errorf("cannot list offsets of %s/%d: %w", topic, p.Partition, p.Error)
		}
		ends[p.Partition] = p.LastOffset
		end += p.LastOffset
	}
	of, err := c.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err != nil {
		return 0, 0, fmt.Errorf("cannot fetch offsets of group %s: %w", group, err)
	}
	lag = end
	for _, p := range of.Topics[topic] {
		if p.Error == nil && p.CommittedOffset > 0 {
			lag -= min(p.CommittedOffset, ends[p.Partition])
		}
	}
	return end, lag, nil
}

// rawResult is the alternative: raw events inserted into ClickHouse and
// the per-minute TP table computed in SQL.
type rawResult struct {
	Rows        int64
	GenTime     time.Duration // drawing the events, not counted in the insert
	InsertTime  time.Duration
	QueryTimes  []time.Duration
	QueryRows   int
	StoredBytes uint64
}

// rawTPQuery is what a user of a raw-events table runs to get the
// per-minute TP table.
const rawTPQuery = `SELECT app, method, toStartOfMinute(ts) AS m,
	quantilesTDigest(0.5, 0.9, 0.99, 0.999)(latency_us) AS tp
FROM %s.raw_calls GROUP BY app, method, m`

// paneTPQuery is the same table computed from the pipeline's panes: the
// stored centroids of the panes of each minute merged with
// quantilesExactWeighted, as reports and dashboards do.
const paneTPQuery = `SELECT app, method, toStartOfMinute(pane_start) AS m,
	quantilesExactWeighted(0.5, 0.9, 0.99, 0.999)(mean, toUInt64(round(weight))) AS tp
FROM %s.call_panes FINAL
ARRAY JOIN centroid_means AS mean, centroid_weights AS weight
GROUP BY app, method, m`

// runRaw creates db.raw_calls, fills it with n calls drawn like loadgen's
// (keys, seed), with event times spread evenly over span from start, in
// batches of batchRows, and times the per-minute TP query queries times.
func runRaw(ctx context.Context, conn driver.Conn, db string, n int64, keys int, seed uint64, start time.Time, span time.Duration, batchRows, queries int) (rawResult, error) {
	res := rawResult{Rows: n}
	if err := conn.Exec(ctx, fmt.Sprintf("DROP TABLE IF EXISTS %s.raw_calls", db)); err != nil {
		return res, fmt.Errorf("cannot drop raw_calls: %w", err)
	}
	// The plain MergeTree a user would pick on 18.16: no LowCardinality,
	// no codecs; sorted for the query.
	ddl := fmt.Sprintf(`CREATE TABLE %s.raw_calls (
	ts DateTime, system String, app String, group_name String, idc String,
	method String, latency_us UInt32, ok UInt8
) ENGINE = MergeTree() PARTITION BY toYYYYMMDD(ts) ORDER BY (app, method, ts)`, db)
	if err := conn.Exec(ctx, ddl); err != nil {
		return res, fmt.Errorf("cannot create raw_calls: %w", err)
	}
	g := loadgen.NewGenerator(keys, seed, loadgen.Incident{}, start)
	ks := g.Keys()
	ts := make([]time.Time, 0, batchRows)
	sys := make([]string, 0, batchRows)
	app := make([]string, 0, batchRows)
	grp := make([]string, 0, batchRows)
	idc := make([]string, 0, batchRows)
	meth := make([]string, 0, batchRows)
	lat := make([]uint32, 0, batchRows)
	ok := make([]uint8, 0, batchRows)
	insert := fmt.Sprintf("INSERT INTO %s.raw_calls (ts, system, app, group_name, idc, method, latency_us, ok)", db)
	for done := int64(0); done < n; {
		t0 := time.Now()
		ts, sys, app, grp, idc, meth, lat, ok = ts[:0], sys[:0], app[:0], grp[:0], idc[:0], meth[:0], lat[:0], ok[:0]
		m := min(int64(batchRows), n-done)
		for i := range m {
			at := start.Add(time.Duration(float64(span) * float64(done+i) / float64(n)))
			k, l, good := g.Next(at)
			key := ks[k]
			ts = append(ts, at)
			sys, app, grp, idc, meth = append(sys, key.System), append(app, key.App), append(grp, key.Group), append(idc, key.IDC), append(meth, key.Method)
			lat = append(lat, l)
			var o uint8
			if good {
				o = 1
			}
			ok = append(ok, o)
		}
		t1 := time.Now()
		res.GenTime += t1.Sub(t0)
		b, err := conn.PrepareBatch(ctx, insert)
		if err != nil {
			return res, fmt.Errorf("cannot prepare raw batch: %w", err)
		}
		for i, col := range []any{ts, sys, app, grp, idc, meth, lat, ok} {
			if err := b.Column(i).Append(col); err != nil {
				_ = b.Abort()
				return res, fmt.Errorf("cannot append raw column %d: %w", i, err)
			}
		}
		if err := b.Send(); err != nil {
			return res, fmt.Errorf("cannot insert raw batch at row %d: %w", done, err)
		}
		res.InsertTime += time.Since(t1)
		done += m
	}
	for range queries {
		d, rows, err := timeQuery(ctx, conn, fmt.Sprintf(rawTPQuery, db))
		if err != nil {
			return res, err
		}
		res.QueryTimes = append(res.QueryTimes, d)
		res.QueryRows = rows
	}
	res.StoredBytes, _ = tableBytes(ctx, conn, db, "raw_calls")
	return res, nil
}

// timeQuery runs q, reads every row into values of the column types, and
// returns how long that took and the row count.
func timeQuery(ctx context.Context, conn driver.Conn, q string) (time.Duration, int, error) {
	t0 := time.Now()
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return 0, 0, fmt.Errorf("cannot run %q: %w", q, err)
	}
	defer rows.Close()
	cts := rows.ColumnTypes()
	dst := make([]any, len(cts))
	for i, ct := range cts {
		dst[i] = reflect.New(ct.ScanType()).Interface()
	}
	n := 0
	for rows.Next() {
		if err := rows.Scan(dst...); err != nil {
			return 0, 0, fmt.Errorf("cannot scan %q: %w", q, err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("cannot read %q: %w", q, err)
	}
	return time.Since(t0), n, nil
}

// tableBytes returns the compressed size of the active parts of db.table.
func tableBytes(ctx context.Context, conn driver.Conn, db, table string) (uint64, error) {
	var b uint64
	err := conn.QueryRow(ctx, "SELECT toUInt64(sum(bytes)) FROM system.parts WHERE active AND database = ? AND table = ?", db, table).Scan(&b)
	return b, err
}
