package clickhouse

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Label columns of call_panes that CallStatsQuery.By accepts, by the name
// callers use for them.
var callLabelColumns = map[string]string{
	"system": "system", "app": "app", "group": "group_name", "idc": "idc", "method": "method",
}

// CallStatsQuery asks for calls, errors and latency quantiles of the
// selected keys' panes whose start lies in [From, To), per step and per
// value of the By labels.
type CallStatsQuery struct {
	// Database holds call_panes.
	Database string
	Selector Selector
	From, To time.Time
	// Step cuts [From, To) into buckets [From+i·Step, From+(i+1)·Step); a
	// pane belongs to the bucket its start falls in. 0 makes one bucket of
	// the whole range. It must be a whole number of seconds.
	Step time.Duration
	// By lists labels to group by: system, app, group, idc, method.
	By []string
	// Quantiles are levels in (0, 1], for example 0.99 for TP99.
	Quantiles []float64
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
}

// SQL returns the statement QueryCallStats runs and its arguments. As
// TPQuery, it reads call_panes FINAL and merges the stored centroids with
// quantilesExactWeighted; here through the -Array combinator (each pane's
// means and weights arrays are fed element by element), which needs no
// ARRAY JOIN and so lets count and errors be summed in the same pass.
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
		c, ok := callLabelColumns[l]
		if !ok {
			return "", nil, fmt.Errorf("cannot build call stats query: unknown label %q (want system, app, group, idc or method)", l)
		}
		cols = append(cols, c)
	}
	from := q.From.Unix()
	step := int64(q.Step / time.Second)
	if step == 0 {
		step = q.To.Unix() - from + 1
	}
	labelList := ""
	for _, c := range cols {
		labelList += ", " + c
	}
	var b strings.Builder
	args := []any{from, step, step, from}
	b.WriteString("SELECT toUInt32(intDiv(toUInt32(pane_start) - ?, ?) * ? + ?) AS bucket" + labelList)
	fmt.Fprintf(&b, ", sum(count), sum(errors), toUInt64(sum(arraySum(w))), quantilesExactWeightedArray(%s)(centroid_means, w)"+
		" FROM (SELECT pane_start%s, count, errors, centroid_means, arrayMap(x -> toUInt64(round(x)), centroid_weights) AS w"+
		" FROM %s.call_panes FINAL"+
		" WHERE pane_start >= toDateTime(?) AND pane_start < toDateTime(?)", levels, labelList, q.Database)
	args = append(args, from, q.To.Unix())
	q.Selector.where(&b, &args)
	b.WriteString(") GROUP BY bucket" + labelList)
	b.WriteString(" ORDER BY ")
	for _, c := range cols {
		fmt.Fprintf(&b, "%s, ", c)
	}
	b.WriteString("bucket")
	return b.String(), args, nil
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
			s      = CallStats{Labels: make([]string, len(q.By))}
		)
		dest := []any{&bucket}
		for i := range s.Labels {
			dest = append(dest, &s.Labels[i])
		}
		dest = append(dest, &s.Count, &s.Errors, &s.Weight, &s.Quantiles)
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("cannot scan call stats: %w", err)
		}
		s.Start = time.Unix(int64(bucket), 0).UTC()
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
