package report

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/schemas"
)

// Metrics names the resource_panes metrics a capacity report reads.
type Metrics struct {
	CPUUsed, CPULimit, MemoryUsed, MemoryLimit string
}

// DefaultMetrics returns the names collectors/metrics gives the container
// gauges: CPU used in cores (container_cpu_usage_cores), the memory the
// kernel will not reclaim (container_memory_working_set_bytes, what
// Kubernetes evicts on), the cgroup memory limit, and the CFS quota in
// cores (container_cpu_limit_cores). A limit of 0 means none; a row whose
// containers have no limit has no utilisation.
func DefaultMetrics() Metrics {
	return Metrics{
		CPUUsed:     "container_cpu_usage_cores",
		CPULimit:    "container_cpu_limit_cores",
		MemoryUsed:  "container_memory_working_set_bytes",
		MemoryLimit: "container_memory_limit_bytes",
	}
}

// DefaultTarget is the default target peak utilisation of a recommendation.
const DefaultTarget = 0.7

// DefaultTrendPoints is how many buckets the trends of a row have.
const DefaultTrendPoints = 24

// CapacityQuery asks for a capacity report.
type CapacityQuery struct {
	// Database holds resource_panes and call_panes.
	Database string
	// Selector restricts the report; its Method is ignored.
	Selector clickhouse.Selector
	From, To time.Time
	// Depth is the deepest level of rows, an index into Levels: 0 gives
	// system rows only, 2 system → app → group.
	Depth int
	// Target is the peak utilisation the recommendation aims at, in (0, 1].
	Target float64
	// TrendPoints is the number of buckets of each row's trends; 0 means
	// DefaultTrendPoints.
	TrendPoints int
	// Metrics names the metrics read; zero fields take DefaultMetrics.
	Metrics Metrics
	// Progress, when set, is told each step as it starts.
	Progress func(step string)
}

// Resource is one resource of one row. Used values are of the row's total:
// per pane start t, U(t) is the sum over the row's containers of their pane
// averages; Avg is the mean of U over the panes, P95 ClickHouse's
// quantileExact(0.95) of them (the ⌊0.95·n⌋-th smallest, from 0) and Peak
// their maximum. Limit is the mean over the panes of the sum of the
// containers' limits (a limit of 0 means none and is left out); 0 when
// unknown, and then the utilisations are NaN.
type Resource struct {
	Avg, P95, Peak float64
	Limit          float64
	// UtilAvg = Avg / Limit, UtilPeak = Peak / Limit.
	UtilAvg, UtilPeak float64
}

// Recommendation is the replica count that keeps a row's peak utilisation
// under the target: Replicas = ceil(Instances × PeakUtil / Target), where
// PeakUtil is the higher of the CPU and memory peak utilisations (Basis
// says which). OK is false when neither utilisation is known.
type Recommendation struct {
	OK       bool
	Basis    string // "cpu" or "memory"
	PeakUtil float64
	Target   float64
	Replicas int
	// Formula is the arithmetic, for example "ceil(4 × 0.875 / 0.7) = 5".
	Formula string
}

// TrendPoint is one bucket of a row's trends.
type TrendPoint struct {
	Start time.Time
	// QPS is the calls of the bucket's panes over the bucket's length.
	QPS float64
	// TP99Us merges the bucket's centroids; NaN without calls.
	TP99Us float64
	// CPU and Memory are the means of U(t) over the bucket's panes; NaN
	// without panes.
	CPU, Memory float64
}

// Row is one line of a capacity report.
type Row struct {
	// Depth is the row's level, an index into Levels; the labels deeper
	// than it are "".
	Depth              int
	System, App, Group string
	IDC                string
	// IDCs are the IDCs seen under the row.
	IDCs []string
	// Instances is the most containers with a CPU (or, without CPU
	// samples, memory) pane at one pane start.
	Instances   int
	CPU, Memory Resource
	// Calls and Errors are sums over the range; QPS is Calls over its
	// length; TP99Us merges every centroid of the range (NaN without calls).
	Calls, Errors  uint64
	QPS, TP99Us    float64
	Trend          []TrendPoint
	Recommendation Recommendation
}

// Labels returns the row's label values down to its depth.
func (r Row) Labels() []string { return []string{r.System, r.App, r.Group, r.IDC}[:r.Depth+1] }

// Name returns the row's own label value (its app for an app row).
func (r Row) Name() string { return r.Labels()[r.Depth] }

// ErrEmpty is returned when the range holds no data for the report.
var ErrEmpty = errors.New("no data")

var metricNameRe = regexp.MustCompile(`^[A-Za-z_:][A-Za-z0-9_:]{0,127}$`)

func (q *CapacityQuery) check() error {
	d := DefaultMetrics()
	for _, m := range []struct {
		dst *string
		def string
	}{
		{&q.Metrics.CPUUsed, d.CPUUsed}, {&q.Metrics.CPULimit, d.CPULimit},
		{&q.Metrics.MemoryUsed, d.MemoryUsed}, {&q.Metrics.MemoryLimit, d.MemoryLimit},
	} {
		if *m.dst == "" {
			*m.dst = m.def
		}
		if !metricNameRe.MatchString(*m.dst) {
			return badRequest("metric name %q must match %s", *m.dst, metricNameRe)
		}
	}
	if q.Depth < 0 || q.Depth >= len(Levels) {
		return badRequest("depth %d is not a level", q.Depth)
	}
	if !(q.Target > 0 && q.Target <= 1) {
		return badRequest("target %g is outside (0, 1]", q.Target)
	}
	if !q.From.Before(q.To) {
		return badRequest("from %s is not before to %s", q.From.Format(time.RFC3339), q.To.Format(time.RFC3339))
	}
	if q.TrendPoints == 0 {
		q.TrendPoints = DefaultTrendPoints
	}
	if q.TrendPoints < 1 || q.TrendPoints > 1000 {
		return badRequest("trend points %d is outside [1, 1000]", q.TrendPoints)
	}
	return nil
}

// trendStep returns the bucket length of the trends: the range over
// TrendPoints, rounded up to whole seconds.
func (q *CapacityQuery) trendStep() time.Duration {
	s := (q.To.Sub(q.From) + time.Duration(q.TrendPoints) - 1) / time.Duration(q.TrendPoints)
	return max(time.Second, (s+time.Second-1)/time.Second*time.Second)
}

// Capacity runs q and returns its rows nested: each system row is followed
// by its app rows, each app row by its group rows, and so on down to
// q.Depth, in label order. It returns ErrEmpty (wrapped) when the range
// holds neither resource nor call panes for the selection.
func Capacity(ctx context.Context, conn driver.Conn, q CapacityQuery) ([]Row, error) {
	if err := q.check(); err != nil {
		return nil, err
	}
	progress := q.Progress
	if progress == nil {
		progress = func(string) {}
	}
	rows := map[string]*Row{}
	get := func(depth int, labels []string) *Row {
		k := strconv.Itoa(depth) + "\x00" + strings.Join(labels, "\x00")
		r := rows[k]
		if r == nil {
			r = &Row{Depth: depth, CPU: unknownResource(), Memory: unknownResource(), TP99Us: math.NaN()}
			l := append(slices.Clone(labels), "", "", "", "")
			r.System, r.App, r.Group, r.IDC = l[0], l[1], l[2], l[3]
			rows[k] = r
		}
		return r
	}
	for depth := 0; depth <= q.Depth; depth++ {
		progress(fmt.Sprintf("resources by %s", Levels[depth]))
		if err := resourceTotals(ctx, conn, q, depth, get); err != nil {
			return nil, err
		}
		progress(fmt.Sprintf("resource trends by %s", Levels[depth]))
		if err := resourceTrends(ctx, conn, q, depth, get); err != nil {
			return nil, err
		}
		progress(fmt.Sprintf("calls by %s", Levels[depth]))
		if err := callStats(ctx, conn, q, depth, get); err != nil {
			return nil, err
		}
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w between %s and %s for %s in database %s", ErrEmpty,
			q.From.Format(time.RFC3339), q.To.Format(time.RFC3339), DescribeSelector(q.Selector), q.Database)
	}
	progress("IDCs")
	topo, err := Topology(ctx, conn, TopologyQuery{Database: q.Database, Selector: q.Selector, From: q.From, To: q.To})
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		r.IDCs = topo.IDCsUnder(r.Labels())
		r.finish(q.Target)
	}
	out := make([]Row, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b Row) int {
		// Parents sort before children: "" (absent) is below every label
		// only through the depth comparison at equal prefixes.
		la, lb := a.Labels(), b.Labels()
		for i := range min(len(la), len(lb)) {
			if c := strings.Compare(la[i], lb[i]); c != 0 {
				return c
			}
		}
		return a.Depth - b.Depth
	})
	return out, nil
}

func unknownResource() Resource {
	return Resource{Avg: math.NaN(), P95: math.NaN(), Peak: math.NaN(), UtilAvg: math.NaN(), UtilPeak: math.NaN()}
}

// DescribeSelector names what a selector covers, for titles and messages.
func DescribeSelector(s clickhouse.Selector) string {
	if d := s.String(); d != "" {
		return d
	}
	return "every system"
}

// resourceInner returns the subquery that gives U(t) — per row labels,
// metric name and pane start, the sum of the containers' pane averages and
// their number — with its arguments.
func resourceInner(q CapacityQuery, depth int) (string, []any) {
	keys := schemas.KeyColumns(depth + 1)
	m := q.Metrics
	s := clickhouse.SQL{Database: q.Database}
	fmt.Fprintf(&s, "SELECT %s, name, pane_start, sum(avg) AS u, count() AS n FROM %s FINAL WHERE ", keys, s.Table("resource_panes"))
	s.PaneRange(q.From, q.To)
	s.WriteString(" AND name IN (?, ?, ?, ?) AND (avg > 0 OR name IN (?, ?))")
	s.Args = append(s.Args, m.CPUUsed, m.CPULimit, m.MemoryUsed, m.MemoryLimit, m.CPUUsed, m.MemoryUsed)
	s.Match(resourceMatches(q.Selector))
	fmt.Fprintf(&s, " GROUP BY %s, name, pane_start", keys)
	return s.String(), s.Args
}

// resourceMatches returns the conditions of a selector on tables without a
// method column (resource_panes; the topology reads call_panes by the same
// labels): its method is left out.
func resourceMatches(s clickhouse.Selector) []clickhouse.Match {
	s.Method = ""
	return s.Matches()
}

func resourceTotals(ctx context.Context, conn driver.Conn, q CapacityQuery, depth int, get func(int, []string) *Row) error {
	inner, args := resourceInner(q, depth)
	keys := schemas.KeyColumns(depth + 1)
	query := fmt.Sprintf("SELECT %s, name, avg(u), quantileExact(0.95)(u), max(u), max(n) FROM (%s) GROUP BY %s, name", keys, inner, keys)
	rows, err := conn.Query(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("cannot query resource totals by %s: %w", Levels[depth], err)
	}
	defer rows.Close()
	for rows.Next() {
		labels := make([]string, depth+1)
		var (
			name           string
			avg, p95, peak float64
			n              uint64
		)
		dest := make([]any, 0, depth+6)
		for i := range labels {
			dest = append(dest, &labels[i])
		}
		dest = append(dest, &name, &avg, &p95, &peak, &n)
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("cannot scan resource totals: %w", err)
		}
		r := get(depth, labels)
		switch name {
		case q.Metrics.CPUUsed:
			r.CPU.Avg, r.CPU.P95, r.CPU.Peak = avg, p95, peak
			r.Instances = int(n)
		case q.Metrics.MemoryUsed:
			r.Memory.Avg, r.Memory.P95, r.Memory.Peak = avg, p95, peak
			if math.IsNaN(r.CPU.Avg) && r.Instances < int(n) {
				r.Instances = int(n)
			}
		case q.Metrics.CPULimit:
			r.CPU.Limit = avg
		case q.Metrics.MemoryLimit:
			r.Memory.Limit = avg
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot query resource totals by %s: %w", Levels[depth], err)
	}
	return nil
}

func resourceTrends(ctx context.Context, conn driver.Conn, q CapacityQuery, depth int, get func(int, []string) *Row) error {
	inner, args := resourceInner(q, depth)
	keys := schemas.KeyColumns(depth + 1)
	step := int64(q.trendStep() / time.Second)
	from := q.From.Unix()
	query := fmt.Sprintf("SELECT %s, name, toUInt32(intDiv(toUInt32(pane_start) - %d, %d) * %d + %d) AS bucket, avg(u)"+
		" FROM (%s) WHERE name IN (?, ?) GROUP BY %s, name, bucket", keys, from, step, step, from, inner, keys)
	args = append(args, q.Metrics.CPUUsed, q.Metrics.MemoryUsed)
	rows, err := conn.Query(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("cannot query resource trends by %s: %w", Levels[depth], err)
	}
	defer rows.Close()
	for rows.Next() {
		labels := make([]string, depth+1)
		var (
			name   string
			bucket uint32
			avg    float64
		)
		dest := make([]any, 0, depth+4)
		for i := range labels {
			dest = append(dest, &labels[i])
		}
		dest = append(dest, &name, &bucket, &avg)
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("cannot scan resource trends: %w", err)
		}
		p := get(depth, labels).point(q, time.Unix(int64(bucket), 0).UTC())
		if name == q.Metrics.CPUUsed {
			p.CPU = avg
		} else {
			p.Memory = avg
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("cannot query resource trends by %s: %w", Levels[depth], err)
	}
	return nil
}

func callStats(ctx context.Context, conn driver.Conn, q CapacityQuery, depth int, get func(int, []string) *Row) error {
	sel := q.Selector
	sel.Method = ""
	cq := clickhouse.CallStatsQuery{Database: q.Database, Selector: sel, From: q.From, To: q.To, By: Levels[:depth+1], Quantiles: []float64{0.99}}
	total, err := clickhouse.QueryCallStats(ctx, conn, cq)
	if err != nil {
		return err
	}
	secs := q.To.Sub(q.From).Seconds()
	for _, s := range total {
		r := get(depth, s.Labels)
		r.Calls, r.Errors, r.QPS, r.TP99Us = s.Count, s.Errors, float64(s.Count)/secs, s.Quantiles[0]
	}
	cq.Step = q.trendStep()
	trend, err := clickhouse.QueryCallStats(ctx, conn, cq)
	if err != nil {
		return err
	}
	for _, s := range trend {
		r := get(depth, s.Labels)
		p := r.point(q, s.Start)
		end := s.Start.Add(cq.Step)
		if end.After(q.To) {
			end = q.To
		}
		p.QPS = float64(s.Count) / end.Sub(s.Start).Seconds()
		p.TP99Us = s.Quantiles[0]
	}
	return nil
}

// point returns the row's trend point starting at t, creating the whole
// trend on first use so that every row has the same buckets.
func (r *Row) point(q CapacityQuery, t time.Time) *TrendPoint {
	if r.Trend == nil {
		step := q.trendStep()
		for s := q.From; s.Before(q.To); s = s.Add(step) {
			r.Trend = append(r.Trend, TrendPoint{Start: s.UTC(), TP99Us: math.NaN(), CPU: math.NaN(), Memory: math.NaN()})
		}
	}
	i := int(t.Sub(q.From) / q.trendStep())
	if i < 0 || i >= len(r.Trend) {
		panic(fmt.Sprintf("BUG: trend bucket %s outside [%s, %s)", t, q.From, q.To))
	}
	return &r.Trend[i]
}

// finish computes the utilisations and the recommendation.
func (r *Row) finish(target float64) {
	for _, res := range []*Resource{&r.CPU, &r.Memory} {
		if res.Limit > 0 && !math.IsNaN(res.Avg) {
			res.UtilAvg, res.UtilPeak = res.Avg/res.Limit, res.Peak/res.Limit
		} else {
			res.UtilAvg, res.UtilPeak = math.NaN(), math.NaN()
		}
	}
	r.Recommendation = Recommend(r.Instances, r.CPU.UtilPeak, r.Memory.UtilPeak, target)
}

// Recommend returns the replicas needed to keep the peak utilisation under
// target, given the instances that ran at the peak utilisations cpu and
// memory (NaN when unknown): ceil(instances × peak / target) with peak the
// higher known one, and at least 1. The load is assumed to spread evenly
// over the replicas.
func Recommend(instances int, cpu, memory, target float64) Recommendation {
	rec := Recommendation{Target: target}
	switch {
	case instances <= 0:
		return rec
	case !math.IsNaN(cpu) && (math.IsNaN(memory) || cpu >= memory):
		rec.Basis, rec.PeakUtil = "cpu", cpu
	case !math.IsNaN(memory):
		rec.Basis, rec.PeakUtil = "memory", memory
	default:
		return rec
	}
	rec.OK = true
	x := float64(instances) * rec.PeakUtil / target
	// A product that is a whole number up to rounding (4 × 0.875 / 0.7)
	// must not round up to the next replica.
	rec.Replicas = max(1, int(math.Ceil(x-1e-9)))
	rec.Formula = fmt.Sprintf("ceil(%d × %s / %s) = %d", instances, fmtRatio(rec.PeakUtil), fmtRatio(target), rec.Replicas)
	return rec
}

// fmtRatio prints a utilisation with 3 significant decimals, trailing zeros
// dropped.
func fmtRatio(f float64) string {
	s := fmt.Sprintf("%.3f", f)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}
