package clickhouse

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/influxdata/tdigest"

	"github.com/tpflow/tpflow/aggregator"
)

// rollupData is a dataset of 10-s panes with digests built from known raw
// latencies, and the 5-minute rollups of some of them built from the same
// panes with aggregator.MergeRollup.
type rollupData struct {
	base time.Time
	// raw[k][p] are the latencies of key k's pane p.
	raw  [][][]float64
	errs [][]uint64
}

var rollupKeys = []Selector{
	{System: "pay", App: "api", Group: "g1", IDC: "bj", Method: "Charge"},
	{System: "pay", App: "api", Group: "g1", IDC: "bj", Method: "Refund"},
	{System: "pay", App: "web", Group: "g1", IDC: "sh", Method: "GET /"},
	{System: "pay", App: "cold", Group: "g1", IDC: "sh", Method: "Scan"},
}

const (
	rollupPanes = 360 // one hour of 10-s panes
	// api's rollups cover the first 40 minutes (the newest buckets are not
	// rolled up yet); web's cover minutes 15 to 40 (rollups enabled, or
	// back-filled, later than the panes start) but for a gap at minute 25;
	// cold has none.
	apiRollupEnd  = 40 * 6
	webRollupFrom = 15 * 6
	webRollupGap  = 25 * 6
)

// loadRollupData writes the panes of rollupKeys and their rollups.
func loadRollupData(t *testing.T, conn driver.Conn, cfg Config) rollupData {
	t.Helper()
	d := rollupData{base: time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)}
	x := uint64(0x9E3779B97F4A7C15)
	var panes, rollups []PaneRow
	for k, sel := range rollupKeys {
		d.raw = append(d.raw, nil)
		d.errs = append(d.errs, nil)
		var stats []aggregator.PaneStat
		for p := range rollupPanes {
			n := 800 + (p*37+k*11)%1200
			lat := make([]float64, n)
			for i := range lat {
				x ^= x << 13
				x ^= x >> 7
				x ^= x << 17
				u := float64(x%1_000_000) / 1_000_000
				// Slow for a few minutes now and then, so that buckets differ.
				lat[i] = math.Round(200 * math.Exp(4*u*u) * (1 + float64((p/20+k)%3)/2))
			}
			d.raw[k] = append(d.raw[k], lat)
			d.errs[k] = append(d.errs[k], uint64(p%4))
			row, st := digestPane(sel, d.base.Add(time.Duration(p)*10*time.Second), lat, uint64(p%4))
			panes = append(panes, row)
			stats = append(stats, st)
		}
		first, end := 0, 0
		switch sel.App {
		case "api":
			end = apiRollupEnd
		case "web":
			first, end = webRollupFrom, apiRollupEnd
		}
		for p := first; p < end; p += RollupSeconds / 10 {
			if sel.App == "web" && p == webRollupGap {
				continue
			}
			r := aggregator.MergeRollup(stats[p:p+RollupSeconds/10], stats[p].Start, aggregator.RollupLength,
				aggregator.DefaultConfig().RollupCompression)
			rollups = append(rollups, rollupRow(r))
		}
	}
	w := NewWriter(conn, cfg, nil)
	ctx := context.Background()
	if err := w.WritePanes(ctx, panes); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteRollups(ctx, rollups); err != nil {
		t.Fatal(err)
	}
	// The rollups must really be coarser than the panes they merge, or
	// reading them would prove nothing.
	var paneCents, rollupCents float64
	for _, r := range panes {
		paneCents += float64(len(r.CentroidMeans))
	}
	for _, r := range rollups {
		rollupCents += float64(len(r.CentroidMeans))
	}
	perRollup, perPane := rollupCents/float64(len(rollups)), paneCents/float64(len(panes))
	if perRollup > perPane*RollupSeconds/10/4 {
		t.Fatalf("a rollup holds %.0f centroids, its 30 panes %.0f each: not merged", perRollup, perPane)
	}
	return d
}

// digestPane returns the pane of lat as stored (a t-digest at compression
// 300: about the 270 centroids the aggregator keeps for 1 000 calls) and
// as the aggregator holds it.
func digestPane(sel Selector, start time.Time, lat []float64, errs uint64) (PaneRow, aggregator.PaneStat) {
	td := tdigest.NewWithCompression(300)
	var sum float64
	for _, v := range lat {
		td.Add(v, 1)
		sum += v
	}
	st := aggregator.PaneStat{
		Key:   aggregator.Key{System: sel.System, App: sel.App, Group: sel.Group, IDC: sel.IDC, Method: sel.Method},
		Start: start.UnixMilli(), PaneMs: 10_000, Version: uint64(len(lat)), Count: uint64(len(lat)), Errors: errs,
		SumUs: uint64(sum), MinUs: uint32(slices.Min(lat)), MaxUs: uint32(slices.Max(lat)),
	}
	for _, c := range td.Centroids(nil) {
		st.Centroids = append(st.Centroids, aggregator.Centroid{Mean: float32(c.Mean), Weight: uint32(c.Weight)})
	}
	return rollupRow(st), st
}

// rollupRow converts a PaneStat as the sink does.
func rollupRow(p aggregator.PaneStat) PaneRow {
	r := PaneRow{
		PaneStart: time.UnixMilli(p.Start).UTC(), PaneSeconds: uint32(p.PaneMs / 1000),
		System: p.Key.System, App: p.Key.App, Group: p.Key.Group, IDC: p.Key.IDC, Method: p.Key.Method,
		Count: p.Count, Errors: p.Errors, SumUs: float64(p.SumUs), MinUs: float64(p.MinUs), MaxUs: float64(p.MaxUs),
		P50Us: p.P50, P90Us: p.P90, P99Us: p.P99, P999Us: p.P999, Version: p.Version,
	}
	for _, c := range p.Centroids {
		r.CentroidMeans = append(r.CentroidMeans, float64(c.Mean))
		r.CentroidWeights = append(r.CentroidWeights, float64(c.Weight))
	}
	return r
}

// exact returns the calls, errors and exact TP99 of the raw latencies of
// the keys sel matches whose panes start in [from, to).
func (d rollupData) exact(sel Selector, from, to time.Time) (calls, errs uint64, tp99 float64) {
	var all []float64
	for k, key := range rollupKeys {
		if (sel.App != "" && sel.App != key.App) || (sel.Method != "" && sel.Method != key.Method) {
			continue
		}
		for p := range rollupPanes {
			if s := d.base.Add(time.Duration(p) * 10 * time.Second); !s.Before(from) && s.Before(to) {
				all = append(all, d.raw[k][p]...)
				errs += d.errs[k][p]
			}
		}
	}
	if len(all) == 0 {
		return 0, 0, math.NaN()
	}
	slices.Sort(all)
	return uint64(len(all)), errs, exactQuantile(all, 0.99)
}

func queryStats(t *testing.T, conn driver.Conn, q CallStatsQuery) []CallStats {
	t.Helper()
	res, err := QueryCallStats(context.Background(), conn, q)
	if err != nil {
		t.Fatalf("%+v: %v", q, err)
	}
	return res
}

// checkExact compares every bucket of res with the raw latencies: counts
// and errors equal, TP99 within 1 %, and every bucket of the range present.
func (d rollupData) checkExact(t *testing.T, what string, q CallStatsQuery, res []CallStats) {
	t.Helper()
	step := q.Step
	if step == 0 {
		step = q.To.Sub(q.From)
	}
	i := 0
	// The grid starts at From, or at the multiple of Step before it.
	first := time.Unix(q.origin(q.From.Unix(), int64(step/time.Second)), 0).UTC()
	for start := first; start.Before(q.To); start = start.Add(step) {
		from, end := start, start.Add(step)
		if from.Before(q.From) {
			from = q.From
		}
		if end.After(q.To) {
			end = q.To
		}
		calls, errs, tp := d.exact(q.Selector, from, end)
		if calls == 0 {
			continue
		}
		if i >= len(res) {
			t.Errorf("%s: bucket %s missing", what, start)
			return
		}
		r := res[i]
		i++
		if !r.Start.Equal(start) || r.Count != calls || r.Weight != calls || r.Errors != errs {
			t.Errorf("%s: bucket %s: start %s calls %d weight %d errors %d, want %d calls %d errors", what, start,
				r.Start, r.Count, r.Weight, r.Errors, calls, errs)
		}
		got := r.Quantiles[0]
		if e := math.Abs(got-tp) / tp; e > worst[r.Source] {
			worst[r.Source] = e
		}
		if !(math.Abs(got-tp)/tp <= 0.01) {
			t.Errorf("%s: bucket %s (%s): TP99 %g, exact %g: more than 1%% off", what, start, r.Source, got, tp)
		}
	}
	if i != len(res) {
		t.Errorf("%s: %d buckets, want %d", what, len(res), i)
	}
}

// worst is the largest relative TP99 error checkExact saw, by source.
var worst = map[Source]float64{}

func sources(res []CallStats) []Source {
	out := make([]Source, len(res))
	for i, r := range res {
		out[i] = r.Source
	}
	return out
}

func TestCallStatsReadsRollupsWhereTheyAre(t *testing.T) {
	conn, cfg := setup(t)
	d := loadRollupData(t, conn, cfg)
	api := Selector{System: "pay", App: "api"}
	q := CallStatsQuery{Database: cfg.Database, Selector: api, From: d.base, To: d.base.Add(40 * time.Minute),
		Step: 5 * time.Minute, Quantiles: []float64{0.99}}
	if !q.RollupsAllowed() {
		t.Fatal("aligned from and step: rollups not allowed")
	}

	// Where every bucket has rollups: read from them alone, against the
	// same query over the panes and against the raw latencies.
	panesQ := q
	panesQ.PanesOnly = true
	for _, by := range [][]string{nil, {"method"}} {
		q.By, panesQ.By = by, by
		roll, panes := queryStats(t, conn, q), queryStats(t, conn, panesQ)
		if len(roll) != len(panes) || len(roll) != 8*max(1, 2*len(by)) {
			t.Fatalf("by %v: %d buckets from rollups, %d from panes", by, len(roll), len(panes))
		}
		if s := SourceOf(roll); s != SourceRollups {
			t.Errorf("by %v: source %s, want call_rollups", by, s)
		}
		if s := SourceOf(panes); s != SourcePanes {
			t.Errorf("by %v, panes only: source %s, want call_panes", by, s)
		}
		for i := range roll {
			r, p := roll[i], panes[i]
			if !slices.Equal(r.Labels, p.Labels) || !r.Start.Equal(p.Start) || r.Count != p.Count || r.Errors != p.Errors || r.Weight != p.Weight {
				t.Errorf("by %v: rollups %+v, panes %+v", by, r, p)
			}
			// Rollup means are merged at whole µs.
			if q := r.Quantiles[0]; q != math.Round(q) {
				t.Errorf("by %v: TP99 %g from rollups is not a whole µs", by, q)
			}
		}
		if by == nil {
			d.checkExact(t, "rollups", q, roll)
			d.checkExact(t, "panes", panesQ, panes)
		} else {
			for _, m := range []string{"Charge", "Refund"} {
				sq := q
				sq.Selector.Method = m
				sq.By = nil
				d.checkExact(t, "rollups of "+m, sq, queryStats(t, conn, sq))
			}
		}
	}

	// A range reaching past the newest rollup (and the step 10m, two
	// rollups a bucket): the buckets after the horizon come from the panes,
	// and nothing is missing.
	q.By = nil
	q.To = d.base.Add(time.Hour)
	q.Step = 10 * time.Minute
	res := queryStats(t, conn, q)
	d.checkExact(t, "past the horizon", q, res)
	want := []Source{SourceRollups, SourceRollups, SourceRollups, SourceRollups, SourcePanes, SourcePanes}
	if got := sources(res); !slices.Equal(got, want) {
		t.Errorf("sources per 10m %v, want %v", got, want)
	}
	// To not aligned: the rollup that would reach past it is not read.
	q.To = d.base.Add(37*time.Minute + 30*time.Second)
	q.Step = 0
	res = queryStats(t, conn, q)
	d.checkExact(t, "to unaligned", q, res)
	if len(res) != 1 || res[0].Source != SourceRollups|SourcePanes {
		t.Errorf("one bucket to 08:37:30: %+v, want rollups and panes", res)
	}

	// web's rollups start 15 minutes in and miss minutes 25 to 30: those
	// buckets come from the panes; cold has none: the panes alone, the same
	// answer as before.
	web := Selector{App: "web"}
	q = CallStatsQuery{Database: cfg.Database, Selector: web, From: d.base, To: d.base.Add(time.Hour),
		Step: 5 * time.Minute, Quantiles: []float64{0.99}}
	res = queryStats(t, conn, q)
	d.checkExact(t, "web", q, res)
	for i, r := range res {
		want := SourcePanes
		if i >= 3 && i < 8 && i != 5 {
			want = SourceRollups
		}
		if r.Source != want {
			t.Errorf("web bucket %s: source %s, want %s", r.Start, r.Source, want)
		}
	}
	q.Selector = Selector{App: "cold"}
	cold := queryStats(t, conn, q)
	q.PanesOnly = true
	if coldPanes := queryStats(t, conn, q); !slices.EqualFunc(cold, coldPanes, sameStats) || SourceOf(cold) != SourcePanes {
		t.Errorf("no rollups: %+v, panes only %+v", cold, coldPanes)
	}
	q.PanesOnly = false
	d.checkExact(t, "cold", q, cold)

	// An unaligned from with a step of 5 minutes (or none): the grid is
	// aligned to the step, the first bucket holds what lies from From on,
	// read from the panes, and the buckets after it from the rollups.
	for _, aq := range []CallStatsQuery{
		{From: d.base.Add(10 * time.Second), To: d.base.Add(40 * time.Minute), Step: 5 * time.Minute},
		{From: d.base.Add(130 * time.Second), To: d.base.Add(38 * time.Minute), Step: 10 * time.Minute},
		{From: d.base.Add(time.Minute), To: d.base.Add(40 * time.Minute)},
	} {
		aq.Database, aq.Selector, aq.Quantiles = cfg.Database, api, []float64{0.99}
		if !aq.RollupsAllowed() {
			t.Errorf("from %s step %s: rollups not allowed", aq.From, aq.Step)
		}
		res := queryStats(t, conn, aq)
		d.checkExact(t, "unaligned from", aq, res)
		if len(res) == 0 || res[0].Source&SourcePanes == 0 || SourceOf(res)&SourceRollups == 0 {
			t.Errorf("from %s step %s: sources %v, want the first bucket from the panes and rollups after", aq.From, aq.Step, sources(res))
		}
		if aq.Step > 0 && !res[0].Start.Equal(aq.From.Truncate(aq.Step)) {
			t.Errorf("from %s step %s: first bucket at %s, want the step's multiple before from", aq.From, aq.Step, res[0].Start)
		}
	}

	// A step that is not a multiple of 5 minutes never reads rollups.
	for _, uq := range []CallStatsQuery{
		{From: d.base, To: d.base.Add(40 * time.Minute), Step: time.Minute},
		{From: d.base, To: d.base.Add(40 * time.Minute), Step: 450 * time.Second},
	} {
		uq.Database, uq.Selector, uq.Quantiles = cfg.Database, api, []float64{0.99}
		if uq.RollupsAllowed() {
			t.Errorf("from %s step %s: rollups allowed", uq.From, uq.Step)
		}
		res := queryStats(t, conn, uq)
		if s := SourceOf(res); s != SourcePanes {
			t.Errorf("from %s step %s: source %s", uq.From, uq.Step, s)
		}
		d.checkExact(t, "unaligned", uq, res)
		sql, _, _ := uq.SQL()
		if strings.Contains(sql, "call_rollups") {
			t.Errorf("from %s step %s reads call_rollups: %s", uq.From, uq.Step, sql)
		}
	}

	t.Logf("largest TP99 error against the raw latencies: %.3f%% from call_rollups, %.3f%% from call_panes",
		100*worst[SourceRollups], 100*worst[SourcePanes])

	// Without any rollups, the answers are those of the panes alone.
	all := CallStatsQuery{Database: cfg.Database, From: d.base, To: d.base.Add(time.Hour), Step: 5 * time.Minute,
		By: []string{"app", "method"}, Quantiles: []float64{0.5, 0.99}}
	before := queryStats(t, conn, all)
	if s := SourceOf(before); s != SourceRollups|SourcePanes {
		t.Errorf("all keys with rollups: source %s", s)
	}
	for _, k := range rollupKeys {
		// Each key's buckets, whatever their source, against the raw data.
		var mine []CallStats
		for _, r := range before {
			if r.Labels[0] == k.App && r.Labels[1] == k.Method {
				mine = append(mine, r)
			}
		}
		kq := all
		kq.Selector, kq.By, kq.Quantiles = Selector{App: k.App, Method: k.Method}, nil, []float64{0.99}
		for i := range mine {
			mine[i].Quantiles = mine[i].Quantiles[1:]
		}
		d.checkExact(t, "all keys, "+k.App+" "+k.Method, kq, mine)
	}
	if err := conn.Exec(context.Background(), "TRUNCATE TABLE "+cfg.Database+".call_rollups"); err != nil {
		t.Fatal(err)
	}
	after := queryStats(t, conn, all)
	all.PanesOnly = true
	panesOnly := queryStats(t, conn, all)
	if !slices.EqualFunc(after, panesOnly, sameStats) || SourceOf(after) != SourcePanes || len(after) != len(before) {
		t.Errorf("without rollups: %d buckets from %s, panes only %d, %d before", len(after), SourceOf(after), len(panesOnly), len(before))
		for i := range min(len(after), len(panesOnly)) {
			if !sameStats(after[i], panesOnly[i]) {
				t.Errorf("bucket %d: %+v, panes only %+v", i, after[i], panesOnly[i])
			}
		}
	}
}

func sameStats(a, b CallStats) bool {
	return slices.Equal(a.Labels, b.Labels) && a.Start.Equal(b.Start) && a.Count == b.Count && a.Errors == b.Errors &&
		a.Weight == b.Weight && slices.Equal(a.Quantiles, b.Quantiles) && a.Source == b.Source
}

func TestCallStatsSQLBindsLabels(t *testing.T) {
	q := CallStatsQuery{Database: "db", Selector: Selector{App: "a' OR 1=1 --", Method: "m"},
		From: time.Unix(1_800_000_000, 0), To: time.Unix(1_800_003_600, 0), Step: 5 * time.Minute, Quantiles: []float64{0.99}}
	sql, args, err := q.SQL()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sql, "OR 1=1") || !strings.Contains(sql, "call_rollups") {
		t.Errorf("SQL %s", sql)
	}
	if n := strings.Count(sql, "?"); n != len(args) {
		t.Errorf("%d placeholders, %d arguments", n, len(args))
	}
	var labels int
	for _, a := range args {
		if a == "a' OR 1=1 --" {
			labels++
		}
	}
	// The rollup branch, the panes branch and the rollups' keys.
	if labels != 3 {
		t.Errorf("app bound %d times, want 3", labels)
	}
}
