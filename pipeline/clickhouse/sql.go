package clickhouse

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tpflow/tpflow/schemas"
)

// Render says how a statement of the SQL builder takes its values.
type Render uint8

const (
	// Bound renders each value as a ? placeholder and appends it to the
	// builder's Args: for statements run through the driver. Label values
	// are never spliced into the statement.
	Bound Render = iota
	// Macros renders the time range with the macros of Grafana's
	// ClickHouse data source ($__timeFilter, $__fromTime, $__toTime) and
	// each label condition as the multi-value template variable named
	// after the label, col IN (${name:singlequote}): for the dashboards.
	// singlequote leaves a backslash as it is, which is safe only because
	// no stored key label value holds one (schemas.CheckKeyLabelValue).
	Macros
)

// Match is one label condition of a selection. Bound renders it as
// col = ? with Value as the argument; Macros as col IN (${Label:singlequote})
// and ignores Value.
type Match struct {
	Label, Value string
}

// Matches returns s's conditions, one per non-empty field, in
// schemas.KeyLabels order.
func (s Selector) Matches() []Match {
	var out []Match
	for i, l := range schemas.KeyLabels() {
		if v := *s.fields()[i]; v != "" {
			out = append(out, Match{Label: l.Name, Value: v})
		}
	}
	return out
}

// Vars returns one condition per named key label, in the order given: the
// selection of dashboard variables (Macros).
func Vars(labels ...string) []Match {
	out := make([]Match, len(labels))
	for i, l := range labels {
		out[i] = Match{Label: l}
	}
	return out
}

// SQL builds one statement over the pane tables: the text, and with Bound
// the arguments of its placeholders. The zero value renders Bound and
// leaves table names unqualified.
type SQL struct {
	strings.Builder
	Render Render
	// Database qualifies the tables the builder names; "" leaves them to
	// the connection's (or the data source's) default database.
	Database string
	// Args are the values of the placeholders written so far (Bound).
	Args []any
}

// Table returns name qualified by the builder's database.
func (s *SQL) Table(name string) string {
	if s.Database == "" {
		return name
	}
	return s.Database + "." + name
}

// Match writes " AND cond" for each of ms. A label that is not a key label
// is a bug of the caller's.
func (s *SQL) Match(ms []Match) {
	for _, m := range ms {
		col, ok := schemas.KeyColumn(m.Label)
		if !ok {
			panic("BUG: " + m.Label + " is not a key label")
		}
		if s.Render == Macros {
			fmt.Fprintf(s, " AND %s IN (${%s:singlequote})", col, m.Label)
			continue
		}
		fmt.Fprintf(s, " AND %s = ?", col)
		s.Args = append(s.Args, m.Value)
	}
}

// PaneRange writes the condition that pane_start lies in [from, to):
// pane_start >= toDateTime(?) AND pane_start < toDateTime(?) with the two
// bound, or with Macros $__timeFilter(pane_start), Grafana's range (which
// the data source renders with its end included; from and to are unused).
func (s *SQL) PaneRange(from, to time.Time) {
	if s.Render == Macros {
		s.WriteString("$__timeFilter(pane_start)")
		return
	}
	s.WriteString("pane_start >= toDateTime(?) AND pane_start < toDateTime(?)")
	s.Args = append(s.Args, from.Unix(), to.Unix())
}

// RoundedWeights are a pane's centroid weights rounded to whole calls, as
// quantilesExactWeighted takes them (they are whole for digests built from
// unit-weight events).
const RoundedWeights = "arrayMap(x -> toUInt64(round(x)), centroid_weights)"

// CentroidJoin turns each row with centroid_means and centroid_weights into
// one row per centroid: mean and its rounded weight w.
const CentroidJoin = " ARRAY JOIN centroid_means AS mean, " + RoundedWeights + " AS w"

// QuantilesExactWeighted returns quantilesExactWeighted(levels)(args): the
// quantiles of the union of the digests whose centroids args name, never an
// average of per-pane percentiles. Levels are spliced into SQL, so each is
// formatted from a float64 here, never taken from a caller's string.
func QuantilesExactWeighted(qs []float64, args string) (string, error) {
	levels, err := quantileLevels(qs)
	if err != nil {
		return "", err
	}
	return "quantilesExactWeighted(" + levels + ")(" + args + ")", nil
}

// CallRows is the row source of a call query, the one read rule of call
// data: the columns Columns of the panes of the selected keys in a range,
// each key's 5-minute bucket read from its rollup in call_rollups where
// there is one and from its 10-s panes in call_panes where there is not,
// both deduplicated by FINAL.
//
// The rollups read are those that lie wholly in the range; the panes
// branch leaves out the panes whose (key, bucket) such a rollup covers (a
// NOT IN over the (key, start) pairs of the same rollups, through the
// primary key). So the partial 5 minutes at either end of the range, the
// buckets a rollup does not cover yet (rollups are written once their
// bucket is final, after the panes; aggregators of other keys may be later)
// and any time before rollups existed come from the panes, key by key: a
// range up to now is complete, and without rollups the answer is
// call_panes' alone.
//
// The conditions are a PREWHERE: with FINAL, 18.16 reads every column of
// every row the primary key selects before it applies WHERE, and with a key
// label free the key cannot narrow pane_start, so the panes branch of a
// one-day range would read a day of centroids to keep the last minutes.
// pane_start and the key are the pane's identity, so filtering before
// FINAL's merge drops all versions of a pane together. Rollup centroid means
// are rounded to whole µs, the resolution latencies are recorded at
// (latency_us): about half as many distinct values for
// quantilesExactWeighted to hash and sort, most of a day-long query's time
// (benchmarks/RESULTS.md); the 10-s panes are read as stored.
type CallRows struct {
	// Columns are the columns of each row, as call_panes names them; in
	// the rollups' rows centroid_means is the rounded means.
	Columns string
	// Match selects the keys.
	Match []Match
	// From and To are the range [From, To) of a Bound rendering; Macros
	// reads Grafana's time range.
	From, To time.Time
	// Rollups reads call_rollups where they exist; false reads call_panes
	// alone.
	Rollups bool
	// Gate is a condition under which the rollups are read (with Macros,
	// on Grafana's interval or range); when it is false the rollup branch
	// and the NOT IN set are empty. "" reads them always.
	Gate string
	// Source adds a column src holding the row's table as a Source bit.
	Source bool
}

// CallRows writes c as a parenthesised subquery.
func (s *SQL) CallRows(c CallRows) {
	rollS := strconv.Itoa(RollupSeconds)
	cols := func(src Source) string {
		out := c.Columns
		if src == SourceRollups {
			out = strings.Replace(out, "centroid_means", "arrayMap(x -> round(x), centroid_means) AS centroid_means", 1)
		}
		if c.Source {
			out += fmt.Sprintf(", toUInt8(%d) AS src", src)
		}
		return out
	}
	// rollupRange is the condition of the rollups that lie in the range:
	// rollup starts are multiples of RollupSeconds, so those that start
	// at or after From and end by To.
	rollupRange := func() {
		if c.Gate != "" {
			s.WriteString(c.Gate + " AND ")
		}
		if s.Render == Macros {
			s.WriteString("pane_start >= toDateTime(intDiv(toUInt32($__fromTime) + " + strconv.Itoa(RollupSeconds-1) + ", " + rollS + ") * " + rollS + ")" +
				" AND pane_start <= $__toTime - " + rollS)
		} else {
			to := c.To.Unix()
			s.PaneRange(c.From, time.Unix(to-to%RollupSeconds, 0))
		}
		s.Match(c.Match)
	}
	s.WriteString("(")
	if c.Rollups {
		s.WriteString("SELECT " + cols(SourceRollups) + " FROM " + s.Table("call_rollups") + " FINAL PREWHERE ")
		rollupRange()
		s.WriteString(" UNION ALL ")
	}
	s.WriteString("SELECT " + cols(SourcePanes) + " FROM " + s.Table("call_panes") + " FINAL PREWHERE ")
	s.PaneRange(c.From, c.To)
	s.Match(c.Match)
	if c.Rollups {
		keys := schemas.KeyColumns(-1)
		s.WriteString(" AND (" + keys + ", toDateTime(intDiv(toUInt32(pane_start), " + rollS + ") * " + rollS + ")) NOT IN" +
			" (SELECT " + keys + ", pane_start FROM " + s.Table("call_rollups") + " WHERE ")
		rollupRange()
		s.WriteString(")")
	}
	s.WriteString(")")
}
