package clickhouse

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tpflow/tpflow/schemas"
)

// Selector picks call keys; an empty field matches every value. Its fields
// are the key labels of schemas.KeyLabels, in that order.
type Selector struct {
	System, App, Group, IDC, Method string
}

// fields returns pointers to s's fields in schemas.KeyLabels order.
func (s *Selector) fields() [5]*string {
	return [...]*string{&s.System, &s.App, &s.Group, &s.IDC, &s.Method}
}

// Values returns s's values in schemas.KeyLabels order.
func (s Selector) Values() []string {
	out := make([]string, 0, 5)
	for _, f := range s.fields() {
		out = append(out, *f)
	}
	return out
}

// Get returns the value for the key label called name.
func (s Selector) Get(name string) (string, bool) {
	if i := schemas.KeyLabelIndex(name); i >= 0 {
		return *s.fields()[i], true
	}
	return "", false
}

// Set sets the value for the key label called name; it reports false when
// name is not a key label.
func (s *Selector) Set(name, v string) bool {
	if i := schemas.KeyLabelIndex(name); i >= 0 {
		*s.fields()[i] = v
		return true
	}
	return false
}

// String names the labels s matches, system="pay" app="api", or "" when
// it matches every key.
func (s Selector) String() string {
	var parts []string
	for i, l := range schemas.KeyLabels() {
		if v := *s.fields()[i]; v != "" {
			parts = append(parts, fmt.Sprintf("%s=%q", l.Name, v))
		}
	}
	return strings.Join(parts, " ")
}

// TPQuery asks for latency quantiles over every pane of the selected keys
// whose start lies in [From, To).
type TPQuery struct {
	// Database holds call_panes.
	Database string
	Selector Selector
	From, To time.Time
	// Quantiles are levels in (0, 1], for example 0.99 for TP99.
	Quantiles []float64
}

// TPResult is the answer to a TPQuery.
type TPResult struct {
	// Count is the number of calls the quantiles cover (the total centroid
	// weight).
	Count uint64
	// Quantiles are in µs, in the order asked; NaN when Count is 0.
	Quantiles []float64
}

// SQL returns the statement QueryTP runs and its arguments, for callers that
// run it themselves (reports, dashboards). It reads call_panes FINAL, so a
// re-published pane counts once, and merges the stored centroids of every
// pane with quantilesExactWeighted over ARRAY JOIN: the quantile of the
// union of the panes' digests, never an average of per-pane percentiles.
// Centroid weights are rounded to whole calls, which they are for digests
// built from unit-weight events.
func (q TPQuery) SQL() (string, []any, error) {
	if !identRe.MatchString(q.Database) {
		return "", nil, fmt.Errorf("cannot build TP query: database name %q must match %s", q.Database, identRe)
	}
	if !q.From.Before(q.To) {
		return "", nil, fmt.Errorf("cannot build TP query: from %s is not before to %s", q.From, q.To)
	}
	levels, err := QuantilesExactWeighted(q.Quantiles, "mean, w")
	if err != nil {
		return "", nil, fmt.Errorf("cannot build TP query: %w", err)
	}
	s := SQL{Database: q.Database}
	fmt.Fprintf(&s, "SELECT toUInt64(sum(w)), %s FROM (SELECT centroid_means, centroid_weights FROM %s FINAL WHERE ",
		levels, s.Table("call_panes"))
	s.PaneRange(q.From, q.To)
	s.Match(q.Selector.Matches())
	s.WriteString(")" + CentroidJoin)
	return s.String(), s.Args, nil
}

// quantileLevels checks qs and returns them as the parameter list of a
// quantiles function: levels are spliced into SQL, so each is formatted
// from a float64 here, never taken from a caller's string.
func quantileLevels(qs []float64) (string, error) {
	if len(qs) == 0 {
		return "", fmt.Errorf("no quantiles asked")
	}
	levels := make([]string, len(qs))
	for i, l := range qs {
		if !(l > 0 && l <= 1) {
			return "", fmt.Errorf("quantile %g is outside (0, 1]", l)
		}
		levels[i] = strconv.FormatFloat(l, 'g', -1, 64)
	}
	return strings.Join(levels, ", "), nil
}

// QueryTP returns the quantiles of the call latencies of the panes q selects.
func QueryTP(ctx context.Context, conn driver.Conn, q TPQuery) (TPResult, error) {
	query, args, err := q.SQL()
	if err != nil {
		return TPResult{}, err
	}
	var res TPResult
	if err := conn.QueryRow(ctx, query, args...).Scan(&res.Count, &res.Quantiles); err != nil {
		return TPResult{}, fmt.Errorf("cannot query TP: %w", err)
	}
	if res.Count == 0 {
		for i := range res.Quantiles {
			res.Quantiles[i] = math.NaN()
		}
	}
	return res, nil
}

// PaneQuery selects the panes of the selected keys whose start lies in
// [From, To).
type PaneQuery struct {
	Database string
	Selector Selector
	From, To time.Time
}

// QueryPanes returns the current version of every selected pane (read with
// FINAL, so each identity appears once), ordered by key and start.
func QueryPanes(ctx context.Context, conn driver.Conn, q PaneQuery) ([]PaneRow, error) {
	if !identRe.MatchString(q.Database) {
		return nil, fmt.Errorf("cannot query panes: database name %q must match %s", q.Database, identRe)
	}
	s := SQL{Database: q.Database}
	fmt.Fprintf(&s, "SELECT %s FROM %s FINAL WHERE ", paneColumns, s.Table("call_panes"))
	s.PaneRange(q.From, q.To)
	s.Match(q.Selector.Matches())
	s.WriteString(" ORDER BY " + schemas.KeyColumns(-1) + ", pane_start")
	rows, err := conn.Query(ctx, s.String(), s.Args...)
	if err != nil {
		return nil, fmt.Errorf("cannot query panes: %w", err)
	}
	defer rows.Close()
	var out []PaneRow
	for rows.Next() {
		var r PaneRow
		if err := rows.Scan(&r.PaneStart, &r.PaneSeconds, &r.System, &r.App, &r.Group, &r.IDC, &r.Method,
			&r.Count, &r.Errors, &r.SumUs, &r.MinUs, &r.MaxUs, &r.P50Us, &r.P90Us, &r.P99Us, &r.P999Us,
			&r.CentroidMeans, &r.CentroidWeights, &r.Version); err != nil {
			return nil, fmt.Errorf("cannot scan pane: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot query panes: %w", err)
	}
	return out, nil
}
