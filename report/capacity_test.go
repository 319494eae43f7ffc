package report

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tpflow/tpflow/pipeline/clickhouse"
)

// expectRow is what a row must hold, computed from the dataset in Go.
type expectRow struct {
	cpu, mem       Resource
	instances      int
	calls, errors  uint64
	raw            []float64
	cpuLim, memLim bool
}

// expected computes the rows of the dataset down to depth by brute force,
// with the formulas of Resource's doc.
func expected(depth int, raw map[int][]float64) map[string]*expectRow {
	out := map[string]*expectRow{}
	key := func(l []string, d int) string { return fmt.Sprint(d, l[:d+1]) }
	for d := 0; d <= depth; d++ {
		type acc struct {
			cpu, mem, cpuLim, memLim map[int]float64
			n                        map[int]int
		}
		accs := map[string]*acc{}
		for ci, c := range fixContainers {
			k := key([]string{c.system, c.app, c.group, c.idc}, d)
			a := accs[k]
			if a == nil {
				a = &acc{map[int]float64{}, map[int]float64{}, map[int]float64{}, map[int]float64{}, map[int]int{}}
				accs[k] = a
			}
			for p := c.first; p < fixPanes; p++ {
				a.cpu[p] += cpuAt(ci, p)
				a.mem[p] += memAt(ci, p)
				a.n[p]++
				if c.cpuLimit > 0 {
					a.cpuLim[p] += c.cpuLimit
				}
				if c.memLimit > 0 {
					a.memLim[p] += c.memLimit
				}
			}
		}
		for k, a := range accs {
			e := &expectRow{}
			e.cpu = stats(a.cpu, a.cpuLim)
			e.mem = stats(a.mem, a.memLim)
			e.cpuLim, e.memLim = len(a.cpuLim) > 0, len(a.memLim) > 0
			for _, n := range a.n {
				e.instances = max(e.instances, n)
			}
			out[k] = e
		}
		for ki, c := range fixCalls {
			k := key([]string{c.system, c.app, c.group, c.idc}, d)
			e := out[k]
			e.raw = append(e.raw, raw[ki]...)
			e.calls += uint64(len(raw[ki]))
			for p := range fixPanes {
				e.errors += uint64(p % 5)
			}
		}
	}
	return out
}

// stats computes avg, quantileExact(0.95) (the ⌊0.95·n⌋-th smallest, from
// 0), max of the pane totals and the mean limit.
func stats(used, limit map[int]float64) Resource {
	var vs []float64
	sum := 0.0
	for _, v := range used {
		vs = append(vs, v)
	}
	sort.Float64s(vs)
	for _, v := range vs {
		sum += v
	}
	r := Resource{Avg: sum / float64(len(vs)), P95: vs[int(0.95*float64(len(vs)))], Peak: vs[len(vs)-1]}
	if len(limit) > 0 {
		ls := 0.0
		for _, v := range limit {
			ls += v
		}
		r.Limit = ls / float64(len(limit))
		r.UtilAvg, r.UtilPeak = r.Avg/r.Limit, r.Peak/r.Limit
	} else {
		r.UtilAvg, r.UtilPeak = math.NaN(), math.NaN()
	}
	return r
}

func sameFloat(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }

func TestCapacityMatchesDataset(t *testing.T) {
	conn, cfg := setup(t)
	raw := loadFixture(t, conn, cfg)
	var steps []string
	q := CapacityQuery{Database: cfg.Database, From: fixFrom, To: fixTo, Depth: 3, Target: 0.7, TrendPoints: DefaultTrendPoints, Progress: func(s string) { steps = append(steps, s) }}
	rows, err := Capacity(context.Background(), conn, q)
	if err != nil {
		t.Fatal(err)
	}
	want := expected(3, raw)
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d", len(rows), len(want))
	}
	if len(steps) < 4 {
		t.Errorf("progress steps %q", steps)
	}
	for i, r := range rows {
		k := fmt.Sprint(r.Depth, r.Labels())
		e := want[k]
		if e == nil {
			t.Fatalf("unexpected row %s", k)
		}
		if i > 0 {
			// Nesting: a row's parent comes before it.
			if r.Depth > 0 && !slices.ContainsFunc(rows[:i], func(p Row) bool {
				return p.Depth == r.Depth-1 && slices.Equal(p.Labels(), r.Labels()[:r.Depth])
			}) {
				t.Errorf("row %s comes before its parent", k)
			}
		}
		for _, c := range []struct {
			name      string
			got, want Resource
		}{{"cpu", r.CPU, e.cpu}, {"memory", r.Memory, e.mem}} {
			g, w := c.got, c.want
			if !sameFloat(g.Avg, w.Avg) || !sameFloat(g.P95, w.P95) || !sameFloat(g.Peak, w.Peak) || !sameFloat(g.Limit, w.Limit) ||
				!sameFloat(g.UtilAvg, w.UtilAvg) || !sameFloat(g.UtilPeak, w.UtilPeak) {
				t.Errorf("%s %s: got %+v, want %+v", k, c.name, g, w)
			}
		}
		if r.Instances != e.instances {
			t.Errorf("%s: instances %d, want %d", k, r.Instances, e.instances)
		}
		if r.Calls != e.calls || r.Errors != e.errors {
			t.Errorf("%s: calls %d errors %d, want %d and %d", k, r.Calls, r.Errors, e.calls, e.errors)
		}
		if qps := float64(e.calls) / fixTo.Sub(fixFrom).Seconds(); r.QPS != qps {
			t.Errorf("%s: QPS %g, want %g", k, r.QPS, qps)
		}
		if exact := exactQuantile(e.raw, 0.99); math.Abs(r.TP99Us-exact)/exact > 0.01 {
			t.Errorf("%s: TP99 %g, exact %g: more than 1%% off", k, r.TP99Us, exact)
		}
		// The recommendation follows the documented formula.
		peak := math.NaN()
		if e.cpuLim {
			peak = e.cpu.UtilPeak
		}
		if e.memLim && (math.IsNaN(peak) || e.mem.UtilPeak > peak) {
			peak = e.mem.UtilPeak
		}
		rec := r.Recommendation
		if math.IsNaN(peak) {
			if rec.OK {
				t.Errorf("%s: recommendation %+v without any limit", k, rec)
			}
		} else {
			n := int(math.Ceil(float64(e.instances)*peak/0.7 - 1e-9))
			if !rec.OK || rec.Replicas != n || rec.PeakUtil != peak {
				t.Errorf("%s: recommendation %+v, want %d replicas at peak %g", k, rec, n, peak)
			}
			if !strings.HasPrefix(rec.Formula, fmt.Sprintf("ceil(%d × ", e.instances)) || !strings.HasSuffix(rec.Formula, fmt.Sprintf(" / 0.7) = %d", n)) {
				t.Errorf("%s: formula %q", k, rec.Formula)
			}
		}
		if len(r.Trend) != DefaultTrendPoints {
			t.Errorf("%s: %d trend points", k, len(r.Trend))
		}
	}
	// The trend's CPU is the mean of the pane totals in each bucket.
	for _, r := range rows {
		if r.Depth == 0 && r.System == "pay" {
			step := q.trendStep()
			p := r.Trend[3]
			var us []float64
			for pane := range fixPanes {
				start := fixFrom.Add(time.Duration(pane) * 10 * time.Second)
				if start.Before(p.Start) || !start.Before(p.Start.Add(step)) {
					continue
				}
				u := 0.0
				for ci, c := range fixContainers {
					if c.system == "pay" && pane >= c.first {
						u += cpuAt(ci, pane)
					}
				}
				us = append(us, u)
			}
			sum := 0.0
			for _, u := range us {
				sum += u
			}
			if want := sum / float64(len(us)); p.CPU != want {
				t.Errorf("pay trend[3] CPU %g, want %g", p.CPU, want)
			}
		}
	}
	// IDC as a column: the pay system spans bj and sh.
	if !slices.Equal(rows[0].IDCs, []string{"bj", "sh"}) {
		t.Errorf("pay IDCs %q", rows[0].IDCs)
	}
}

func TestCapacityEmptyRangeAndSelector(t *testing.T) {
	conn, cfg := setup(t)
	loadFixture(t, conn, cfg)
	ctx := context.Background()
	_, err := Capacity(ctx, conn, CapacityQuery{Database: cfg.Database, From: fixTo, To: fixTo.Add(time.Hour), Depth: 2, Target: 0.7})
	if !errors.Is(err, ErrEmpty) || !strings.Contains(err.Error(), "every system") {
		t.Fatalf("empty range: %v", err)
	}
	// A selector value with SQL in it selects nothing and breaks nothing.
	for _, v := range []string{`pay' OR '1'='1`, `pay\' OR 1=1 --`, "x'; DROP TABLE call_panes; --"} {
		_, err := Capacity(ctx, conn, CapacityQuery{Database: cfg.Database, Selector: clickhouse.Selector{System: v}, From: fixFrom, To: fixTo, Depth: 1, Target: 0.7})
		if !errors.Is(err, ErrEmpty) {
			t.Errorf("system=%q: %v, want no data", v, err)
		}
	}
	rows, err := Capacity(ctx, conn, CapacityQuery{Database: cfg.Database, Selector: clickhouse.Selector{System: "pay", App: "api"}, From: fixFrom, To: fixTo, Depth: 2, Target: 0.7})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rows {
		names = append(names, strings.Join(r.Labels(), "/"))
	}
	if want := []string{"pay", "pay/api", "pay/api/g1", "pay/api/g2"}; !slices.Equal(names, want) {
		t.Errorf("rows %q, want %q", names, want)
	}
	for _, bad := range []CapacityQuery{
		{Database: cfg.Database, From: fixFrom, To: fixTo, Depth: 4, Target: 0.7},
		{Database: cfg.Database, From: fixFrom, To: fixTo, Depth: 1, Target: 0},
		{Database: cfg.Database, From: fixTo, To: fixFrom, Depth: 1, Target: 0.7},
	} {
		if _, err := Capacity(ctx, conn, bad); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%+v: %v, want a bad request", bad, err)
		}
	}
}

// TestCapacityFormats renders the dataset's report as CSV and Markdown and
// reads the numbers back.
func TestCapacityFormats(t *testing.T) {
	conn, cfg := setup(t)
	raw := loadFixture(t, conn, cfg)
	rows, err := Capacity(context.Background(), conn, CapacityQuery{Database: cfg.Database, From: fixFrom, To: fixTo, Depth: 2, Target: 0.7})
	if err != nil {
		t.Fatal(err)
	}
	want := expected(2, raw)
	rep := Report{From: fixFrom, To: fixTo, Depth: 2, Target: 0.7, Scope: "every system", Rows: rows, Generated: fixTo}

	var b bytes.Buffer
	if err := rep.Render(&b, "csv"); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(recs[0], csvHeader) || len(recs) != len(want)+1 {
		t.Fatalf("CSV header %q, %d lines", recs[0], len(recs))
	}
	col := func(name string) int { return slices.Index(csvHeader, name) }
	for _, rec := range recs[1:] {
		depth := slices.Index(Levels, rec[0])
		labels := rec[1 : 2+depth]
		e := want[fmt.Sprint(depth, labels)]
		if e == nil {
			t.Fatalf("CSV row %q not in the dataset", rec)
		}
		f := func(name string) float64 {
			s := rec[col(name)]
			if s == "" {
				return math.NaN()
			}
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				t.Fatalf("%s %q: %v", name, s, err)
			}
			return v
		}
		for _, c := range []struct {
			name string
			want float64
		}{
			{"cpu_avg_cores", e.cpu.Avg}, {"cpu_p95_cores", e.cpu.P95}, {"cpu_peak_cores", e.cpu.Peak}, {"cpu_util_peak", e.cpu.UtilPeak},
			{"mem_avg_bytes", e.mem.Avg}, {"mem_peak_bytes", e.mem.Peak}, {"mem_util_avg", e.mem.UtilAvg},
			{"instances", float64(e.instances)}, {"calls", float64(e.calls)}, {"errors", float64(e.errors)},
		} {
			if got := f(c.name); !sameFloat(got, c.want) {
				t.Errorf("%q %s = %g, want %g", labels, c.name, got, c.want)
			}
		}
		if e.cpuLim && rec[col("replicas_needed")] == "" {
			t.Errorf("%q: no replicas in CSV", labels)
		}
	}

	b.Reset()
	if err := rep.Render(&b, "md"); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	lines := strings.Split(md, "\n")
	tableRows := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "| ") && !strings.HasPrefix(l, "| row") {
			tableRows++
			if strings.Count(l, " | ")+2 != strings.Count("| row | IDC | inst | CPU used | CPU limit | CPU util | mem used | mem limit | mem util | QPS | TP99 (first → last) | replicas |", " | ")+2 {
				t.Errorf("markdown line with a wrong cell count: %s", l)
			}
		}
	}
	if tableRows != len(want) {
		t.Errorf("markdown has %d table rows, want %d:\n%s", tableRows, len(want), md)
	}
	for _, r := range rows {
		if r.Recommendation.OK && !strings.Contains(md, fmt.Sprintf("**%d** = %s", r.Recommendation.Replicas, strings.SplitN(r.Recommendation.Formula, " = ", 2)[0])) {
			t.Errorf("markdown lacks the recommendation of %q", r.Labels())
		}
	}
	if !strings.Contains(md, FormulaText) {
		t.Error("markdown lacks the formula")
	}
	if err := rep.Render(&b, "pdf"); !errors.Is(err, ErrBadRequest) {
		t.Errorf("format pdf: %v", err)
	}
}

func TestRecommend(t *testing.T) {
	f := func(n int, cpu, mem, target float64, want int, basis, formula string) {
		t.Helper()
		r := Recommend(n, cpu, mem, target)
		if want == 0 {
			if r.OK {
				t.Errorf("Recommend(%d, %g, %g, %g) = %+v, want none", n, cpu, mem, target, r)
			}
			return
		}
		if !r.OK || r.Replicas != want || r.Basis != basis || r.Formula != formula {
			t.Errorf("Recommend(%d, %g, %g, %g) = %+v, want %d by %s, %q", n, cpu, mem, target, r, want, basis, formula)
		}
	}
	f(4, 0.875, 0.5, 0.7, 5, "cpu", "ceil(4 × 0.875 / 0.7) = 5") // exactly 5: no rounding up
	f(4, 0.5, 0.9, 0.7, 6, "memory", "ceil(4 × 0.9 / 0.7) = 6")
	f(3, math.NaN(), 0.2, 0.7, 1, "memory", "ceil(3 × 0.2 / 0.7) = 1")
	f(10, 0.05, math.NaN(), 0.7, 1, "cpu", "ceil(10 × 0.05 / 0.7) = 1")
	f(2, math.NaN(), math.NaN(), 0.7, 0, "", "")
	f(0, 0.5, 0.5, 0.7, 0, "", "")
}
