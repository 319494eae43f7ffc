package clickhouse

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tpflow/tpflow/schemas"
)

// CallStatsQuery asks for calls, errors and latency quantiles of the
// selected keys' panes whose start lies in [From, To), per step and per
// value of the By labels.
//
// Where the bucket grid allows it, the answer is read from call_rollups
// (one merged 5-minute pane per key, RollupSeconds long) rather than from
// the 10-s panes of call_panes: see RollupsAllowed and SQL for the rule and
// for how a range that reaches past the newest rollup stays complete.
type CallStatsQuery struct {
	// Database holds call_panes and call_rollups.
	Database string
	Selector Selector
	From, To time.Time
	// Step cuts [From, To) into buckets [From+i·Step, From+(i+1)·Step); a
	// pane belongs to the bucket its start falls in. When Step is a
	// multiple of RollupSeconds the buckets are instead aligned to
	// multiples of Step since the Unix epoch (as Grafana's are), so that
	// the first one may start before From and hold only what lies from
	// From on. 0 makes one bucket of the whole range. It must be a whole
	// number of seconds.
	Step time.Duration
	// By lists labels to group by: system, app, group, idc, method.
	By []string
	// Quantiles are levels in (0, 1], for example 0.99 for TP99.
	Quantiles []float64
	// PanesOnly reads call_panes alone, as a query whose grid does not
	// allow rollups does: for comparisons and benchmarks.
	PanesOnly bool
}

// RollupSeconds is the length of a call_rollups pane; rollup pane starts
// are multiples of it since the Unix epoch (aggregator.RollupLength).
const RollupSeconds = 300

// Source is the set of tables a CallStats was read from.
type Source uint8

// The tables of a Source.
const (
	SourceRollups Source = 1 << iota // call_rollups
	SourcePanes                      // call_panes
)

// String returns the tables of s joined by "+": "call_rollups",
// "call_panes", "call_rollups+call_panes", or "" for none.
func (s Source) String() string {
	var ts []string
	if s&SourceRollups != 0 {
		ts = append(ts, "call_rollups")
	}
	if s&SourcePanes != 0 {
		ts = append(ts, "call_panes")
	}
	return strings.Join(ts, "+")
}

// SourceOf returns the union of the sources of stats.
func SourceOf(stats []CallStats) Source {
	var s Source
	for i := range stats {
		s |= stats[i].Source
	}
	return s
}

// CallStats is one bucket of one group of a CallStatsQuery.
type CallStats struct {
	// Labels are the values of the query's By labels, in that order.
	Labels []string
	// Start is the bucket's start.
	Start time.Time
	// Count and Errors are the sums of the panes' count and errors.
	Count, Errors uint64
	// Weight is the total centroid weight the quantiles cover (Count, for
	// digests of unit-weight events).
	Weight uint64
	// Quantiles are in µs, in the order asked; NaN when Weight is 0.
	Quantiles []float64
	// Source says which tables the bucket's rows came from.
	Source Source
}

// RollupsAllowed reports whether q may read call_rollups: PanesOnly is
// false and Step is a multiple of RollupSeconds (or 0: one bucket). Then
// the buckets are aligned to multiples of Step since the epoch, every
// rollup pane lies in one bucket, and merging its digest there gives that
// bucket what its 10-s panes would. Only rollups that lie wholly in
// [From, To) are read: at an unaligned From or To the partial 5 minutes
// come from the 10-s panes.
func (q CallStatsQuery) RollupsAllowed() bool {
	return !q.PanesOnly && int64(q.Step/time.Second)%RollupSeconds == 0
}

// origin returns the start of the bucket grid: From, or the multiple of
// Step at or before it when Step is a multiple of RollupSeconds.
func (q CallStatsQuery) origin(from, step int64) int64 {
	if q.Step > 0 && step%RollupSeconds == 0 {
		return from - ((from%step)+step)%step
	}
	return from
}

// SQL returns the statement QueryCallStats runs and its arguments. It
// reads panes FINAL and merges the stored centroids with
// quantilesExactWeighted; here through the -Array combinator (each pane's
// means and weights arrays are fed element by element), which needs no
// ARRAY JOIN and so lets count and errors be summed in the same pass.
//
// When RollupsAllowed, the rows come from CallRows: each key's 5-minute
// bucket from its rollup in call_rollups where there is one and from its
// 10-s panes where there is not yet (rollups lag the panes by the bucket
// plus the aggregator's lateness), not any more, or not at all (rollups
// off, or a back-fill that has not reached it); CallRows says why that
// keeps a range up to now complete and what it costs. Rollup centroid
// means are merged rounded to whole µs (a day of one app's rollups: 0.73 s
// instead of 1.13 s, see benchmarks/RESULTS.md).
// Each row carries its table as a bit (SourceRollups, SourcePanes) that the
// buckets OR together.
//
// Label values are bound as arguments, never spliced into the statement.
func (q CallStatsQuery) SQL() (string, []any, error) {
	if !identRe.MatchString(q.Database) {
		return "", nil, fmt.Errorf("cannot build call stats query: database name %q must match %s", q.Database, identRe)
	}
	if !q.From.Before(q.To) {
		return "", nil, fmt.Errorf("cannot build call stats query: from %s is not before to %s", q.From, q.To)
	}
	levels, err := quantileLevels(q.Quantiles)
	if err != nil {
		return "", nil, fmt.Errorf("cannot build call stats query: %w", err)
	}
	if q.Step < 0 || q.Step%time.Second != 0 {
		return "", nil, fmt.Errorf("cannot build call stats query: step %s is not a whole number of seconds", q.Step)
	}
	cols := make([]string, 0, len(q.By))
	for _, l := range q.By {
		c, ok := schemas.KeyColumn(l)
		if !ok {
			return "", nil, fmt.Errorf("cannot build call stats query: unknown label %q (want %s)", l, schemas.KeyLabelList())
		}
		cols = append(cols, c)
	}
	from, to := q.From.Unix(), q.To.Unix()
	step := int64(q.Step / time.Second)
	if step == 0 {
		step = to - from + 1
	}
	labelList := ""
	for _, c := range cols {
		labelList += ", " + c
	}
	s := SQL{Database: q.Database}
	origin := q.origin(from, step)
	s.Args = []any{origin, step, step, origin}
	s.WriteString("SELECT toUInt32(intDiv(toUInt32(pane_start) - ?, ?) * ? + ?) AS bucket" + labelList)
	fmt.Fprintf(&s, ", sum(count), sum(errors), toUInt64(sum(arraySum(w))), quantilesExactWeightedArray(%s)(centroid_means, w), groupBitOr(src) FROM ", levels)
	s.CallRows(CallRows{
		Columns: "pane_start" + labelList + ", count, errors, centroid_means, " + RoundedWeights + " AS w",
		Match:   q.Selector.Matches(), From: q.From, To: q.To, Rollups: q.RollupsAllowed(), Source: true,
	})
	s.WriteString(" GROUP BY bucket" + labelList)
	s.WriteString(" ORDER BY ")
	for _, c := range cols {
		fmt.Fprintf(&s, "%s, ", c)
	}
	s.WriteString("bucket")
	return s.String(), s.Args, nil
}

// QueryCallStats runs q. Groups are ordered by their labels, buckets by
// start; a bucket without panes is absent.
func QueryCallStats(ctx context.Context, conn driver.Conn, q CallStatsQuery) ([]CallStats, error) {
	query, args, err := q.SQL()
	if err != nil {
		return nil, err
	}
	rows, err := conn.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("cannot query call stats: %w", err)
	}
	defer rows.Close()
	var out []CallStats
	for rows.Next() {
		var (
			bucket uint32
			src    uint8
			s      = CallStats{Labels: make([]string, len(q.By))}
		)
		dest := []any{&bucket}
		for i := range s.Labels {
			dest = append(dest, &s.Labels[i])
		}
		dest = append(dest, &s.Count, &s.Errors, &s.Weight, &s.Quantiles, &src)
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("cannot scan call stats: %w", err)
		}
		s.Start = time.Unix(int64(bucket), 0).UTC()
		s.Source = Source(src)
		if s.Weight == 0 {
			for i := range s.Quantiles {
				s.Quantiles[i] = math.NaN()
			}
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot query call stats: %w", err)
	}
	return out, nil
}
