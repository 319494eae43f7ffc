package dashboards

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/aggregator/backfill/backfilltest"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
)

// The known dataset the panel SQL runs over, and its ground truth: the raw
// latencies and samples the stored rows were made from.

const paneSec = 10

// t0 is the start of the dashboards' time range in the tests; the dataset
// reaches 5 minutes before and after it.
var t0 = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

type callKey struct{ system, app, group, idc, method string }

func (k callKey) aggregatorKey() aggregator.Key {
	return aggregator.Key{System: k.system, App: k.app, Group: k.group, IDC: k.idc, Method: k.method}
}

// callPane is one final pane with the raw latencies behind it.
type callPane struct {
	key    callKey
	start  time.Time
	lat    []float64 // µs, whole, in arrival order
	ok     []bool
	errors uint64
}

type resKey struct{ system, app, group, idc, host, container string }

// resPane is one final resource pane of one metric of one container.
type resPane struct {
	key        resKey
	name       string
	start      time.Time
	count      uint64
	avg, max   float64
	p95        float64
	rawSamples []float64
}

type counterSample struct {
	key   resKey
	name  string
	ts    time.Time
	value float64
}

type dataset struct {
	calls    []callPane
	res      []resPane
	counters []counterSample
	alerts   []clickhouse.AlertRow
}

var callKeys = func() []callKey {
	var ks []callKey
	apps := map[string][]string{"shop": {"cart", "checkout"}, "pay": {"ledger"}, "noise": {"spam"}}
	for _, sys := range []string{"shop", "pay", "noise"} {
		for _, app := range apps[sys] {
			for _, g := range []string{"g1", "g2"} {
				for _, idc := range []string{"bj", "sh"} {
					for _, m := range []string{"get", "put"} {
						ks = append(ks, callKey{sys, app, g, idc, m})
					}
				}
			}
		}
	}
	return ks
}()

// medianUs gives every key its own latency level; checkout/put is the
// slowest method by far.
func medianUs(k callKey) float64 {
	m := 800.0
	if k.method == "put" {
		m = 1500
	}
	if k.app == "checkout" && k.method == "put" {
		m = 9000
	}
	if k.idc == "sh" {
		m *= 1.3
	}
	return m
}

func makeDataset() dataset {
	rng := rand.New(rand.NewPCG(6, 2026))
	var d dataset
	first, last := t0.Add(-5*time.Minute), t0.Add(35*time.Minute)
	for _, k := range callKeys {
		for s := first; s.Before(last); s = s.Add(paneSec * time.Second) {
			if rng.IntN(20) == 0 {
				continue // a pane without calls
			}
			n := 20 + rng.IntN(300)
			p := callPane{key: k, start: s, lat: make([]float64, n), ok: make([]bool, n)}
			// The level drifts over time so that per-pane percentiles
			// differ from merged ones.
			drift := 1 + 0.5*math.Sin(float64(s.Unix())/300)
			for i := range p.lat {
				p.lat[i] = math.Max(1, math.Round(medianUs(k)*drift*math.Exp(rng.NormFloat64()*0.7)))
				p.ok[i] = rng.IntN(50) != 0
				if !p.ok[i] {
					p.errors++
				}
			}
			d.calls = append(d.calls, p)
		}
	}
	hosts := 0
	for _, k := range callKeys {
		if k.method != "get" {
			continue
		}
		for c := range 2 {
			hosts++
			rk := resKey{k.system, k.app, k.group, k.idc, fmt.Sprintf("node-%02d", hosts), fmt.Sprintf("%s-%s-%s-%d", k.app, k.group, k.idc, c)}
			limit := float64(2+c) * (1 << 30)
			if hosts == 3 {
				limit = 9223372036854771712 // no limit (cgroup v1)
			}
			cpuLevel := 0.2 + rng.Float64()*2
			cpuLimit := float64(1+c) * 0.75 // cores
			if hosts%4 == 0 {
				cpuLimit = 0 // no CFS quota
			}
			throttled := hosts%3 != 0
			var periods, thr, thrSec float64
			for s := first; s.Before(last); s = s.Add(paneSec * time.Second) {
				n := 2 + rng.IntN(3)
				cpu, mem := make([]float64, n), make([]float64, n)
				lim := make([]float64, n)
				for i := range n {
					cpu[i] = math.Round(cpuLevel*(0.5+rng.Float64())*1000) / 1000
					mem[i] = float64(int64((1 + c) * (200 + rng.IntN(100)) << 20))
					lim[i] = limit
				}
				cpuLim := make([]float64, n)
				for i := range n {
					cpuLim[i] = cpuLimit
				}
				d.res = append(d.res, resPaneOf(rk, MetricCPUCores, s, cpu), resPaneOf(rk, MetricMemWorkingSet, s, mem), resPaneOf(rk, MetricMemLimit, s, lim))
				if s.Unix()%60 != 0 || hosts%2 == 0 {
					// Some containers miss a limit reading now and then:
					// their usage in that pane is then left out of the
					// utilisation too.
					d.res = append(d.res, resPaneOf(rk, MetricCPULimit, s, cpuLim))
				}
				for i := range n {
					ts := s.Add(time.Duration(i*paneSec/n) * time.Second)
					periods += 100
					if throttled {
						t := float64(rng.IntN(30))
						thr += t
						thrSec += t * 0.004
					}
					d.counters = append(d.counters,
						counterSample{rk, MetricCFSPeriods, ts, periods},
						counterSample{rk, MetricCFSThrottled, ts, thr},
						counterSample{rk, MetricCFSThrottledSec, ts, thrSec})
				}
			}
		}
	}
	d.alerts = makeAlerts()
	return d
}

func resPaneOf(k resKey, name string, start time.Time, samples []float64) resPane {
	s := slices.Sorted(slices.Values(samples))
	var sum float64
	for _, v := range s {
		sum += v
	}
	rank := int(math.Ceil(0.95 * float64(len(s))))
	return resPane{key: k, name: name, start: start, count: uint64(len(s)), avg: sum / float64(len(s)), max: s[len(s)-1], p95: s[rank-1], rawSamples: s}
}

func makeAlerts() []clickhouse.AlertRow {
	at := func(m int, sec int) time.Time {
		return t0.Add(time.Duration(m)*time.Minute + time.Duration(sec)*time.Second)
	}
	a := func(rule string, fp uint64, state string, ts time.Time, v float64, app string) clickhouse.AlertRow {
		r := clickhouse.AlertRow{TS: ts, Rule: rule, State: state, Value: v, System: "shop", App: app, Group: "g1", IDC: "bj",
			LabelNames: []string{"alertname", "severity"}, LabelValues: []string{rule, "page"}, Fingerprint: fp, ActiveAt: ts}
		if state == "firing" {
			r.FiredAt = ts
		}
		if state == "resolved" {
			r.ResolvedAt = ts
		}
		return r
	}
	return []clickhouse.AlertRow{
		// Fires in range, resolves after it: firing at the end.
		a("SlowCheckout", 1, "pending", at(3, 0), 9100, "checkout"),
		a("SlowCheckout", 1, "firing", at(5, 0), 9800, "checkout"),
		a("SlowCheckout", 1, "resolved", at(40, 0), 700, "checkout"),
		// Fires and resolves in range.
		a("CartErrors", 2, "pending", at(10, 0), 0.04, "cart"),
		a("CartErrors", 2, "firing", at(11, 0), 0.05, "cart"),
		a("CartErrors", 2, "resolved", at(20, 0), 0.01, "cart"),
		// Fired before the range and never resolved.
		a("LedgerSlow", 3, "firing", at(-30, 0), 5000, "ledger"),
		// Pending and firing in the same second: firing wins.
		a("CartSlow", 4, "firing", at(25, 0), 2000, "cart"),
		a("CartSlow", 4, "pending", at(25, 0), 2000, "cart"),
		// Only pending.
		a("CartSlow", 5, "pending", at(26, 30), 1900, "cart"),
	}
}

// compress builds the digest of a pane's sorted latencies the way the
// aggregator does when a pane closes (BenchmarkDedupe uses it to make many
// panes quickly; the tests take their panes from the engine itself): consecutive values form a centroid
// while its weight stays within the t-digest size bound 4·n·q·(1−q)/δ at
// the centroid's centre, so the tails are singletons.
func compress(sorted []float64, delta float64) (means, weights []float64) {
	n := float64(len(sorted))
	for i := 0; i < len(sorted); {
		start, sum := i, sorted[i]
		for i++; i < len(sorted); i++ {
			w := float64(i - start + 1)
			q := (float64(start) + w/2) / n
			if w > 4*n*q*(1-q)/delta {
				break
			}
			sum += sorted[i]
		}
		w := float64(i - start)
		means, weights = append(means, sum/w), append(weights, w)
	}
	return means, weights
}

// rollupsWritten is the rollup horizon of the dataset: the rollups of the
// 5-minute buckets from here on are not in call_rollups yet (they lag
// behind the panes), so a range that reaches past it needs call_panes.
var rollupsWritten = t0.Add(25 * time.Minute)

// lateRollupKey's rollup of the bucket at lateRollupStart is not written.
var (
	lateRollupKey   = aggregator.Key{System: "shop", App: "checkout", Group: "g1", IDC: "sh", Method: "put"}
	lateRollupStart = t0.Add(10 * time.Minute)
)

// paneRow is the row the sink stores for a PaneStat.
func paneRow(st aggregator.PaneStat) clickhouse.PaneRow {
	row := clickhouse.PaneRow{PaneStart: time.UnixMilli(st.Start), PaneSeconds: uint32(st.PaneMs / 1000),
		System: st.Key.System, App: st.Key.App, Group: st.Key.Group, IDC: st.Key.IDC, Method: st.Key.Method,
		Count: st.Count, Errors: st.Errors, SumUs: float64(st.SumUs), MinUs: float64(st.MinUs), MaxUs: float64(st.MaxUs),
		P50Us: st.P50, P90Us: st.P90, P99Us: st.P99, P999Us: st.P999, Version: st.Version}
	for _, c := range st.Centroids {
		row.CentroidMeans = append(row.CentroidMeans, float64(c.Mean))
		row.CentroidWeights = append(row.CentroidWeights, float64(c.Weight))
	}
	return row
}

// withOldVersions returns rows plus what FINAL must remove: an earlier,
// partial and wrong version of every 7th row and a re-published copy of
// every 11th.
func withOldVersions(rows []clickhouse.PaneRow) []clickhouse.PaneRow {
	var out []clickhouse.PaneRow
	for i, row := range rows {
		if i%7 == 0 {
			old := row
			old.Count, old.Version = row.Count/2, row.Version-1
			old.Errors = min(row.Errors+5, old.Count)
			old.MaxUs *= 10
			old.CentroidMeans = []float64{row.MaxUs * 50}
			old.CentroidWeights = []float64{float64(old.Count)}
			out = append(out, old)
		}
		out = append(out, row)
		if i%11 == 0 {
			out = append(out, row) // re-published
		}
	}
	return out
}

// rows returns what the sink would have stored: the panes and the rollups
// the aggregator engine makes of the raw calls (rollups up to
// rollupsWritten), the other rows as they would be, plus older versions
// and duplicates that FINAL must remove.
func (d dataset) rows(tb testing.TB) (panes, rollups []clickhouse.PaneRow, res []clickhouse.ResourcePaneRow, metrics []clickhouse.MetricRow, alerts []clickhouse.AlertRow) {
	ps, rs := enginePanes(tb, d.calls)
	for _, st := range ps {
		panes = append(panes, paneRow(st))
	}
	panes = withOldVersions(panes)
	for _, st := range rs {
		// One key's rollup of a bucket inside the horizon is missing, as
		// when its aggregator is late: that bucket of that key must come
		// from its panes while the others' come from rollups.
		if st.Start < rollupsWritten.UnixMilli() && (st.Key != lateRollupKey || st.Start != lateRollupStart.UnixMilli()) {
			rollups = append(rollups, paneRow(st))
		}
	}
	rollups = withOldVersions(rollups)
	for i, p := range d.res {
		row := clickhouse.ResourcePaneRow{PaneStart: p.start, PaneSeconds: paneSec, System: p.key.system, App: p.key.app, Group: p.key.group,
			IDC: p.key.idc, Host: p.key.host, Container: p.key.container, Name: p.name, Count: p.count, Avg: p.avg, Max: p.max, P95: p.p95,
			Version: p.count}
		if i%5 == 0 {
			old := row
			old.Count, old.Version, old.Avg, old.Max = 1, 0, p.avg*7, p.max*7
			res = append(res, old)
		}
		res = append(res, row)
	}
	for i, c := range d.counters {
		r := clickhouse.MetricRow{TS: c.ts, EventLabels: clickhouse.EventLabels{System: c.key.system, App: c.key.app, Group: c.key.group, IDC: c.key.idc, Host: c.key.host,
			Container: c.key.container}, Name: c.name, Value: c.value, Kind: "counter"}
		metrics = append(metrics, r)
		if i%13 == 0 {
			metrics = append(metrics, r) // sent twice
		}
	}
	alerts = append(slices.Clone(d.alerts), d.alerts[:4]...) // some sent twice
	return panes, rollups, res, metrics, alerts
}

// enginePanes feeds the calls, pane by pane in time order, through a real
// aggregator engine with the default configuration and returns the final
// panes and the 5-minute rollups it emits: the digests in ClickHouse are
// the ones production stores.
func enginePanes(tb testing.TB, calls []callPane) (panes, rollups []aggregator.PaneStat) {
	tb.Helper()
	now := t0.Add(-time.Hour)
	eng, err := aggregator.New(aggregator.DefaultConfig(), aggregator.WithClock(func() time.Time { return now }))
	if err != nil {
		tb.Fatal(err)
	}
	byStart := map[int64][]callPane{}
	var starts []int64
	for _, p := range calls {
		if byStart[p.start.Unix()] == nil {
			starts = append(starts, p.start.Unix())
		}
		byStart[p.start.Unix()] = append(byStart[p.start.Unix()], p)
	}
	slices.Sort(starts)
	var out []aggregator.PaneStat
	var offset int64
	events := 0
	for _, st := range starts {
		now = time.Unix(st+paneSec, 0)
		b := backfilltest.NewCallBatch()
		for _, p := range byStart[st] {
			for i, l := range p.lat {
				// Spread the calls over the pane.
				ts := p.start.UnixMilli() + int64(i)*paneSec*1000/int64(len(p.lat))
				b.Add(p.key.aggregatorKey(), ts, uint32(l), p.ok[i])
			}
			events += len(p.lat)
		}
		if is := eng.Ingest(0, offset, b.Batch); is.Accepted != len(b.Batch.Calls) {
			tb.Fatalf("engine accepted %+v of %d calls", is, len(b.Batch.Calls))
		}
		offset++
		ps, _ := eng.Flush()
		out = append(out, ps...)
	}
	now = now.Add(time.Hour)
	ps, _ := eng.Flush()
	out = append(out, ps...)
	var n, nr uint64
	for _, p := range out {
		if p.Correction {
			tb.Fatalf("unexpected correction of %+v", p.Key)
		}
		if p.Rollup {
			if p.PaneMs != aggregator.RollupLength.Milliseconds() || p.Start%p.PaneMs != 0 {
				tb.Fatalf("rollup of %+v: %d ms at %d", p.Key, p.PaneMs, p.Start)
			}
			rollups = append(rollups, p)
			nr += p.Count
			continue
		}
		panes = append(panes, p)
		n += p.Count
	}
	if n != uint64(events) {
		tb.Fatalf("engine panes hold %d calls, %d were ingested", n, events)
	}
	if nr != uint64(events) {
		tb.Fatalf("engine rollups hold %d calls, %d were ingested", nr, events)
	}
	return panes, rollups
}
