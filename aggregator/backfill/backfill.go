package backfill

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
)

// Bucket is the length of a rollup bucket; bucket starts are multiples of
// it since the Unix epoch.
const Bucket = aggregator.RollupLength

// ErrNoPanes is returned by Backfill when the range holds no selected pane.
var ErrNoPanes = errors.New("no panes in call_panes")

// Options says what Backfill rebuilds and how.
type Options struct {
	// Database holds call_panes and call_rollups.
	Database string
	// Selector limits the keys; an empty field matches every value.
	Selector clickhouse.Selector
	// From and To bound the pane starts read, [From, To). Both must be
	// multiples of Bucket (see Align).
	From, To time.Time
	// Compression is the t-digest compression of the rollups, the
	// aggregator's rollup_compression.
	Compression float64
	// DryRun reads and counts without writing.
	DryRun bool
	// BucketsPerRead is how many buckets one query reads (default 1).
	// Memory does not grow with it: rows are merged as they stream in.
	BucketsPerRead int
	// Progress, when set, is called after every written batch and every
	// read, from the calling goroutine.
	Progress func(Stats)
	// Skipped, when set, is called for every pane left out of its rollup
	// because it cannot be merged.
	Skipped func(BadPane)
}

// Stats counts what a Backfill did so far.
type Stats struct {
	// Buckets is the number of buckets in [From, To); BucketsDone of them
	// have been read (their rollups are written or queued for the next
	// batch).
	Buckets, BucketsDone int
	// Keys is the number of distinct keys seen.
	Keys int
	// Panes counts the pane rows read, Skipped those left out.
	Panes, Skipped uint64
	// Rollups counts the rollups built; Written those stored (0 on a dry
	// run).
	Rollups, Written uint64
}

// BadPane is a stored pane that cannot be merged into a rollup.
type BadPane struct {
	Key   aggregator.Key
	Start time.Time
	Err   error
}

// String describes p for an operator.
func (p BadPane) String() string {
	return fmt.Sprintf("system=%q app=%q group=%q idc=%q method=%q pane_start=%s: %v",
		p.Key.System, p.Key.App, p.Key.Group, p.Key.IDC, p.Key.Method, p.Start.UTC().Format(time.RFC3339), p.Err)
}

// Align rounds from down and to up to bucket boundaries, so that every
// bucket that [from, to) touches is rebuilt whole.
func Align(from, to time.Time) (time.Time, time.Time) {
	s := int64(Bucket / time.Second)
	f := from.Unix()
	f -= mod(f, s)
	t := to.Unix()
	if to.Nanosecond() > 0 {
		t++
	}
	if r := mod(t, s); r != 0 {
		t += s - r
	}
	return time.Unix(f, 0).UTC(), time.Unix(t, 0).UTC()
}

func mod(a, b int64) int64 {
	r := a % b
	if r < 0 {
		r += b
	}
	return r
}

func (o *Options) check() error {
	s := int64(Bucket / time.Second)
	switch {
	case !identDB(o.Database):
		return fmt.Errorf("database name %q is not a plain identifier", o.Database)
	case !o.From.Before(o.To):
		return fmt.Errorf("from %s is not before to %s", o.From.Format(time.RFC3339), o.To.Format(time.RFC3339))
	case o.From.Nanosecond() != 0 || mod(o.From.Unix(), s) != 0 || o.To.Nanosecond() != 0 || mod(o.To.Unix(), s) != 0:
		return fmt.Errorf("from %s and to %s must be multiples of %s", o.From.Format(time.RFC3339), o.To.Format(time.RFC3339), Bucket)
	case !(o.Compression >= 20 && o.Compression <= 5000):
		return fmt.Errorf("rollup compression %g is outside [20, 5000]", o.Compression)
	case o.BucketsPerRead < 0:
		return fmt.Errorf("buckets per read %d is negative", o.BucketsPerRead)
	}
	return nil
}

func identDB(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Backfill rebuilds the rollups of every selected key and bucket in
// [o.From, o.To) from the key's panes in call_panes (read with FINAL, so a
// corrected pane counts once), merged with aggregator.MergeRollup exactly
// as the aggregator merges them, and stores them in call_rollups through w
// in batches of batchRows. It reads o.BucketsPerRead buckets
// per query and holds one key's panes of one bucket at a time, so memory
// does not grow with the range or the number of keys.
//
// A rollup has version = its event count, like the aggregator's: storing
// it again changes nothing, and it never replaces a rollup of the
// aggregator that holds more events. A pane that cannot be merged
// (centroid arrays of different lengths, impossible values) is reported to
// o.Skipped and left out; the others are merged. Backfill returns
// ErrNoPanes when the range holds no selected pane, and the stats so far
// with any error. w may be nil on a dry run.
func Backfill(ctx context.Context, conn driver.Conn, w *clickhouse.Writer, batchRows int, o Options) (Stats, error) {
	if err := o.check(); err != nil {
		return Stats{}, fmt.Errorf("cannot back-fill rollups: %w", err)
	}
	if !o.DryRun && (w == nil || batchRows < 1) {
		panic("BUG: rollup.Backfill writes without a Writer or a batch size")
	}
	per := o.BucketsPerRead
	if per == 0 {
		per = 1
	}
	b := &backfill{conn: conn, w: w, o: o, batchRows: batchRows, keys: map[aggregator.Key]struct{}{}}
	b.st.Buckets = int(o.To.Sub(o.From) / Bucket)
	b.progress()
	// Buckets before the first pane and after the last are skipped
	// without a query each: a range may reach far past the data.
	first, last, err := b.span(ctx)
	if err != nil {
		return b.st, err
	}
	if first.IsZero() {
		b.st.BucketsDone = b.st.Buckets
		b.progress()
		return b.st, ErrNoPanes
	}
	end, from := last.Truncate(Bucket).Add(Bucket), first.Truncate(Bucket)
	if end.After(o.To) {
		end = o.To
	}
	if from.Before(o.From) {
		from = o.From
	}
	b.st.BucketsDone = int(from.Sub(o.From) / Bucket)
	for from.Before(end) {
		to := from.Add(time.Duration(per) * Bucket)
		if to.After(end) {
			to = end
		}
		if err := b.read(ctx, from, to); err != nil {
			return b.st, err
		}
		b.st.BucketsDone += int(to.Sub(from) / Bucket)
		b.progress()
		from = to
	}
	b.st.BucketsDone = b.st.Buckets
	if err := b.flush(ctx); err != nil {
		return b.st, err
	}
	if b.st.Panes == 0 {
		return b.st, ErrNoPanes
	}
	return b.st, nil
}

// backfill is the state of one Backfill.
type backfill struct {
	conn      driver.Conn
	w         *clickhouse.Writer
	o         Options
	batchRows int
	st        Stats
	keys      map[aggregator.Key]struct{}

	// The key and bucket being merged, and its panes so far.
	key    aggregator.Key
	bucket int64 // unix ms
	panes  []aggregator.PaneStat
	// out holds rollups not written yet.
	out []clickhouse.PaneRow
}

// where returns the conditions on the pane start and the selector, and
// their arguments: the range is a PREWHERE, because with FINAL 18.16
// otherwise reads the whole day's columns to keep a few minutes.
func (b *backfill) where(from, to time.Time) (string, []any) {
	s := clickhouse.SQL{}
	s.WriteString(" PREWHERE ")
	s.PaneRange(from, to)
	s.WriteString(" WHERE 1")
	s.Match(b.o.Selector.Matches())
	return s.String(), s.Args
}

// span returns the first and last pane start of the selected panes in
// range, or zero times when there are none. It reads without FINAL: every
// version of a pane has the same start.
func (b *backfill) span(ctx context.Context) (first, last time.Time, err error) {
	cond, args := b.where(b.o.From, b.o.To)
	var n uint64
	q := "SELECT count(), min(pane_start), max(pane_start) FROM " + b.o.Database + ".call_panes" + cond
	if err := b.conn.QueryRow(ctx, q, args...).Scan(&n, &first, &last); err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("cannot find the panes from %s to %s: %w",
			b.o.From.Format(time.RFC3339), b.o.To.Format(time.RFC3339), err)
	}
	if n == 0 {
		return time.Time{}, time.Time{}, nil
	}
	return first.UTC(), last.UTC(), nil
}

// read streams the panes of [from, to) ordered by key and start, merging
// each key's bucket once the next row belongs to another.
func (b *backfill) read(ctx context.Context, from, to time.Time) error {
	cond, args := b.where(from, to)
	q := "SELECT pane_start, " + schemas.KeyColumns(-1) + ", count, errors, sum_us, min_us, max_us," +
		" toString(centroid_means), toString(centroid_weights) FROM " + b.o.Database + ".call_panes FINAL" + cond +
		" ORDER BY " + schemas.KeyColumns(-1) + ", pane_start"
	rows, err := b.conn.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("cannot read panes from %s to %s: %w", from.Format(time.RFC3339), to.Format(time.RFC3339), err)
	}
	defer rows.Close()
	bucketMs := Bucket.Milliseconds()
	var (
		means, ws       []float64
		meansTxt, wsTxt string
	)
	for rows.Next() {
		var (
			r clickhouse.PaneRow
			k aggregator.Key
		)
		if err := rows.Scan(&r.PaneStart, &k.System, &k.App, &k.Group, &k.IDC, &k.Method, &r.Count, &r.Errors,
			&r.SumUs, &r.MinUs, &r.MaxUs, &meansTxt, &wsTxt); err != nil {
			return fmt.Errorf("cannot read a pane from %s to %s: %w", from.Format(time.RFC3339), to.Format(time.RFC3339), err)
		}
		if b.st.Panes++; b.st.Panes%4096 == 0 {
			b.progress()
		}
		var err error
		means, err = parseFloats(means[:0], meansTxt)
		if err == nil {
			ws, err = parseFloats(ws[:0], wsTxt)
		}
		r.CentroidMeans, r.CentroidWeights = means, ws
		start := r.PaneStart.UnixMilli()
		bucket := start - mod(start, bucketMs)
		if len(b.panes) > 0 && (k != b.key || bucket != b.bucket) {
			if err := b.merge(ctx); err != nil {
				return err
			}
		}
		if _, ok := b.keys[k]; !ok {
			b.keys[k] = struct{}{}
			b.st.Keys = len(b.keys)
		}
		var p aggregator.PaneStat
		if err == nil {
			p, err = PaneOf(k, &r)
		}
		if err != nil {
			b.st.Skipped++
			if b.o.Skipped != nil {
				b.o.Skipped(BadPane{Key: k, Start: r.PaneStart, Err: err})
			}
			continue
		}
		b.key, b.bucket = k, bucket
		b.panes = append(b.panes, p)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot read panes from %s to %s: %w", from.Format(time.RFC3339), to.Format(time.RFC3339), err)
	}
	if len(b.panes) > 0 {
		return b.merge(ctx)
	}
	return nil
}

// merge builds the rollup of the panes held and queues it, writing a batch
// when the queue is full.
func (b *backfill) merge(ctx context.Context) error {
	r := aggregator.MergeRollup(b.panes, b.bucket, Bucket, b.o.Compression)
	r.Key = b.key
	clear(b.panes)
	b.panes = b.panes[:0]
	b.st.Rollups++
	if b.o.DryRun {
		return nil
	}
	b.out = append(b.out, RowOf(r))
	if len(b.out) >= b.batchRows {
		return b.flush(ctx)
	}
	return nil
}

// flush writes the queued rollups.
func (b *backfill) flush(ctx context.Context) error {
	if len(b.out) == 0 {
		return nil
	}
	if err := b.w.WriteRollups(ctx, b.out); err != nil {
		return fmt.Errorf("cannot write %d rollups: %w", len(b.out), err)
	}
	b.st.Written += uint64(len(b.out))
	clear(b.out)
	b.out = b.out[:0]
	b.progress()
	return nil
}

func (b *backfill) progress() {
	if b.o.Progress != nil {
		b.o.Progress(b.st)
	}
}

// PaneOf converts a stored pane of key k to the aggregator's form: the
// one conversion of a row to a pane, and RowOf its inverse. The row must
// pass codec.CheckPane, and its sum, min, max and weights must be whole
// numbers the pane's integer fields hold.
func PaneOf(k aggregator.Key, r *clickhouse.PaneRow) (aggregator.PaneStat, error) {
	v := r.Values()
	if err := codec.CheckPane(&v); err != nil {
		return aggregator.PaneStat{}, err
	}
	if !whole(r.SumUs, math.MaxUint64) || !whole(r.MinUs, math.MaxUint32) || !whole(r.MaxUs, math.MaxUint32) {
		return aggregator.PaneStat{}, fmt.Errorf("sum %g, min %g or max %g is not a whole number of µs in range", r.SumUs, r.MinUs, r.MaxUs)
	}
	p := aggregator.PaneStat{
		Key: k, Start: r.PaneStart.UnixMilli(), PaneMs: int64(r.PaneSeconds) * 1000, Version: r.Version,
		Count: r.Count, Errors: r.Errors, SumUs: uint64(r.SumUs), MinUs: uint32(r.MinUs), MaxUs: uint32(r.MaxUs),
		P50: r.P50Us, P90: r.P90Us, P99: r.P99Us, P999: r.P999Us,
		Centroids: make([]aggregator.Centroid, len(r.CentroidMeans)),
	}
	for i, m := range r.CentroidMeans {
		w := r.CentroidWeights[i]
		if !whole(w, math.MaxUint32) {
			return aggregator.PaneStat{}, fmt.Errorf("centroid %d has weight %g; want a whole number", i, w)
		}
		p.Centroids[i] = aggregator.Centroid{Mean: float32(m), Weight: uint32(w)}
	}
	return p, nil
}

// parseFloats appends the numbers of an array as ClickHouse prints it,
// "[1.5,2,inf]", to dst. The arrays are read as text because the driver
// decodes Array(Float64) one reflected element at a time, which made the
// read twice as slow; Float64 text round-trips exactly.
func parseFloats(dst []float64, s string) ([]float64, error) {
	if len(s) < 2 || s[0] != '[' || s[len(s)-1] != ']' {
		return dst, fmt.Errorf("cannot parse centroid array %.40q", s)
	}
	s = s[1 : len(s)-1]
	for len(s) > 0 {
		num := s
		if i := strings.IndexByte(s, ','); i >= 0 {
			num, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil {
			return dst, fmt.Errorf("cannot parse centroid array: %w", err)
		}
		dst = append(dst, f)
	}
	return dst, nil
}

// whole reports whether f is an integer in [0, hi].
func whole(f, hi float64) bool {
	return f >= 0 && f <= hi && f == math.Trunc(f)
}

// RowOf returns p as the sink stores it in call_panes, or in call_rollups
// for a rollup.
func RowOf(p aggregator.PaneStat) clickhouse.PaneRow {
	r := clickhouse.PaneRow{
		PaneStart: time.UnixMilli(p.Start).UTC(), PaneSeconds: uint32(p.PaneMs / 1000),
		System: p.Key.System, App: p.Key.App, Group: p.Key.Group, IDC: p.Key.IDC, Method: p.Key.Method,
		Count: p.Count, Errors: p.Errors, SumUs: float64(p.SumUs), MinUs: float64(p.MinUs), MaxUs: float64(p.MaxUs),
		P50Us: p.P50, P90Us: p.P90, P99Us: p.P99, P999Us: p.P999, Version: p.Version,
		CentroidMeans: make([]float64, len(p.Centroids)), CentroidWeights: make([]float64, len(p.Centroids)),
	}
	for i, c := range p.Centroids {
		r.CentroidMeans[i], r.CentroidWeights[i] = float64(c.Mean), float64(c.Weight)
	}
	return r
}
