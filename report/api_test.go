package report

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
)

func get(t *testing.T, srv *httptest.Server, path string, out any) (int, string) {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", path, ct)
	}
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("%s: %v\n%s", path, err, body)
		}
	}
	return resp.StatusCode, string(body)
}

// TestAPIRejectsMalformed needs no server: every case fails before a query.
func TestAPIRejectsMalformed(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	srv := httptest.NewServer(NewAPI(nil, "tpflow", APIOptions{Now: func() time.Time { return now }}).Handler())
	defer srv.Close()
	long := strings.Repeat("a", MaxLabelLen+1)
	for _, c := range []struct{ path, reason string }{
		{"/api/v1/tp?from=yesterday", `from: cannot parse "yesterday" as a time`},
		{"/api/v1/tp?to=2026-13-01", `to: cannot parse "2026-13-01"`},
		{"/api/v1/tp?from=now-1h&to=now-2h", "is not before"},
		{"/api/v1/tp?from=2026-11-27&to=2026-11-27", "is not before"},
		{"/api/v1/tp?from=2026-01-01&to=2026-11-27", "longer than"},
		{"/api/v1/tp?from=now-x", "after now- comes a duration"},
		{"/api/v1/tp?from=99999999999", "out of range"},
		{"/api/v1/tp?step=0s", "at least 1s"},
		{"/api/v1/tp?step=1500ms", "whole number of seconds"},
		{"/api/v1/tp?step=often", `step: cannot parse "often"`},
		{"/api/v1/tp?from=now-24h&step=1s", "more than 10000"},
		{"/api/v1/tp?q=2", "q: 2 is outside (0, 1]"},
		{"/api/v1/tp?q=0.5,abc", `q: cannot parse "abc"`},
		{"/api/v1/tp?by=host", `by: "host" is not a label`},
		{"/api/v1/tp?by=app,app", `by: "app" is given twice`},
		{"/api/v1/tp?host=h1", `unknown parameter "host"`},
		{"/api/v1/tp?app=a&app=b", `parameter "app" is given 2 times`},
		{"/api/v1/tp?app=", "app: empty value"},
		{"/api/v1/tp?method=a%00b", "control character U+0000"},
		{"/api/v1/tp?group=%ff", "not valid UTF-8"},
		{"/api/v1/tp?idc=" + long, "more than 256"},
		{"/api/v1/tp?app=%zz", "cannot parse the query string"},
		{"/api/v1/capacity?by=host", `by: "host" is not a level`},
		{"/api/v1/capacity?target=1.5", "target: 1.5 is outside (0, 1]"},
		{"/api/v1/capacity?target=70", "target: 70 is outside"},
		{"/api/v1/capacity?method=x", `unknown parameter "method"`},
		{"/api/v1/topology?from=tomorrow", "from: cannot parse"},
		{"/api/v1/topology?system=", "system: empty value"},
	} {
		code, body := get(t, srv, c.path, nil)
		var e errorResponse
		if err := json.Unmarshal([]byte(body), &e); err != nil {
			t.Errorf("%s: body %q is not JSON: %v", c.path, body, err)
			continue
		}
		if code != http.StatusBadRequest || !strings.Contains(e.Error, c.reason) {
			t.Errorf("%s: %d %q, want 400 with %q", c.path, code, e.Error, c.reason)
		}
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"now":                       now,
		"now-90m":                   now.Add(-90 * time.Minute),
		"2026-11-02":                time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC),
		"2026-11-02T08:30":          time.Date(2026, 11, 2, 8, 30, 0, 0, time.UTC),
		"2026-11-02 08:30":          time.Date(2026, 11, 2, 8, 30, 0, 0, time.UTC),
		"2026-11-02T08:30:00Z":      time.Date(2026, 11, 2, 8, 30, 0, 0, time.UTC),
		"2026-11-02T10:30:00+02:00": time.Date(2026, 11, 2, 8, 30, 0, 0, time.UTC),
		"1793000000":                time.Unix(1793000000, 0).UTC(),
	} {
		got, err := ParseTime("from", in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "12", "1900-01-01", "2026-11-02T25:00", "now+1h", "now-"} {
		if _, err := ParseTime("from", in, now); err == nil {
			t.Errorf("ParseTime(%q) succeeded", in)
		}
	}
}

func apiServer(t *testing.T) (*httptest.Server, map[int][]float64, clickhouse.Config) {
	conn, cfg := setup(t)
	raw := loadFixture(t, conn, cfg)
	now := fixTo.Add(time.Minute)
	srv := httptest.NewServer(NewAPI(conn, cfg.Database, APIOptions{Now: func() time.Time { return now }}).Handler())
	t.Cleanup(srv.Close)
	return srv, raw, cfg
}

func rangeQuery() string {
	return "from=" + url.QueryEscape(fixFrom.Format(time.RFC3339)) + "&to=" + url.QueryEscape(fixTo.Format(time.RFC3339))
}

// TestAPITPMatchesExact checks the merged TP99 of /api/v1/tp against the
// exact quantile of the raw latencies, over the whole range and per step.
func TestAPITPMatchesExact(t *testing.T) {
	srv, raw, _ := apiServer(t)
	var res TPResponse
	if code, body := get(t, srv, "/api/v1/tp?app=api&q=tp50,tp99&"+rangeQuery(), &res); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var all []float64
	var calls uint64
	for ki, k := range fixCalls {
		if k.app == "api" {
			all = append(all, raw[ki]...)
		}
	}
	calls = uint64(len(all))
	if len(res.Series) != 1 || len(res.Series[0].Points) != 1 {
		t.Fatalf("series %+v", res.Series)
	}
	p := res.Series[0].Points[0]
	if p.Calls != calls || p.QPS != float64(calls)/600 || res.StepSeconds != 600 {
		t.Errorf("calls %d qps %g step %d, want %d, %g, 600", p.Calls, p.QPS, res.StepSeconds, calls, float64(calls)/600)
	}
	for i, q := range []float64{0.5, 0.99} {
		exact := exactQuantile(all, q)
		if got := *p.QuantilesUs[i]; math.Abs(got-exact)/exact > 0.01 {
			t.Errorf("q%g: %g, exact %g: more than 1%% off", q, got, exact)
		} else {
			t.Logf("q%g over %d calls: %g µs, exact %g µs (%.3f%%)", q, calls, got, exact, 100*(got-exact)/exact)
		}
	}

	// Per minute and per method: each point against its own raw values.
	if code, body := get(t, srv, "/api/v1/tp?system=pay&by=app,method&step=1m&q=0.99&"+rangeQuery(), &res); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	if len(res.Series) != 3 {
		t.Fatalf("%d series, want 3 (pay's app and method pairs)", len(res.Series))
	}
	for _, s := range res.Series {
		var idx []int
		for ki, k := range fixCalls {
			if k.system == "pay" && k.app == s.Labels["app"] && k.method == s.Labels["method"] {
				idx = append(idx, ki)
			}
		}
		if len(s.Points) != 10 {
			t.Fatalf("%v: %d points, want 10", s.Labels, len(s.Points))
		}
		for m, pt := range s.Points {
			var vs []float64
			for _, ki := range idx {
				per := perPane(raw[ki], ki)
				for p := m * 6; p < m*6+6; p++ {
					vs = append(vs, per[p]...)
				}
			}
			exact := exactQuantile(vs, 0.99)
			if !pt.Start.Equal(fixFrom.Add(time.Duration(m)*time.Minute)) || pt.Calls != uint64(len(vs)) {
				t.Errorf("%v point %d: start %s calls %d, want %d", s.Labels, m, pt.Start, pt.Calls, len(vs))
			}
			if got := *pt.QuantilesUs[0]; math.Abs(got-exact)/exact > 0.01 {
				t.Errorf("%v minute %d: TP99 %g, exact %g: more than 1%% off", s.Labels, m, got, exact)
			}
		}
	}
}

// TestAPITPCompressedDigests checks the 1% bound where the digests really
// compress: 20 000 distinct latencies per pane, a few hundred centroids.
func TestAPITPCompressedDigests(t *testing.T) {
	conn, cfg := setup(t)
	k := callKey{"bulk", "svc", "g", "i", "m"}
	var rows []clickhouse.PaneRow
	var all []float64
	x := uint64(88172645463325252)
	for p := range 12 {
		lat := make([]float64, 20000)
		for i := range lat {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			u := (float64(x%(1<<40)) + 0.5) / (1 << 40)
			// Lognormal-like: exp of a sum of uniforms, with a slow tail.
			lat[i] = 300 * math.Exp(3*u*u*u) * (1 + float64(p)/20)
		}
		all = append(all, lat...)
		rows = append(rows, paneRow(k, fixFrom.Add(time.Duration(p)*10*time.Second), lat, 0))
	}
	if err := clickhouse.NewWriter(conn, cfg, nil).WritePanes(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
	if n := len(rows[0].CentroidMeans); n > 1000 {
		t.Fatalf("pane digest has %d centroids: not compressed", n)
	}
	srv := httptest.NewServer(NewAPI(conn, cfg.Database, APIOptions{}).Handler())
	defer srv.Close()
	var res TPResponse
	if code, body := get(t, srv, "/api/v1/tp?system=bulk&q=0.5,0.9,0.99,0.999&"+rangeQuery(), &res); code != 200 || len(res.Series) != 1 {
		t.Fatalf("%d %s", code, body)
	}
	for i, q := range res.Quantiles {
		exact := exactQuantile(all, q)
		got := *res.Series[0].Points[0].QuantilesUs[i]
		if math.Abs(got-exact)/exact > 0.01 {
			t.Errorf("q%g: %g, exact %g: more than 1%% off", q, got, exact)
		}
		t.Logf("q%g over %d calls in %d-centroid panes: %.1f µs, exact %.1f µs (%+.3f%%)", q, len(all), len(rows[0].CentroidMeans), got, exact, 100*(got-exact)/exact)
	}
}

// perPane splits a key's raw latencies back into its panes.
func perPane(all []float64, ki int) [][]float64 {
	out := make([][]float64, fixPanes)
	off := 0
	for p := range fixPanes {
		n := 50 + (p*13+ki*29)%200
		out[p] = all[off : off+n]
		off += n
	}
	return out
}

// TestAPILabelValuesAreNeverSpliced sends quotes, backslashes and SQL as
// label values: they select nothing (or exactly the row that has that
// value) and inject nothing.
func TestAPILabelValuesAreNeverSpliced(t *testing.T) {
	srv, _, cfg := apiServer(t)
	conn, _ := clickhouse.Open(context.Background(), cfg)
	defer conn.Close()
	odd := callKey{"pay", `o'brien\" --`, "g1", "bj", "x') OR 1=1 --"}
	if err := clickhouse.NewWriter(conn, cfg, nil).WritePanes(context.Background(),
		[]clickhouse.PaneRow{paneRow(odd, fixFrom, []float64{1000, 2000, 3000}, 0)}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{
		`pay' OR '1'='1`, `pay\' OR 1=1 --`, `' UNION ALL SELECT 1 --`, "x'; DROP TABLE call_panes; --",
		`pay" OR "1"="1`, `\`, `'`, `%' OR app LIKE '%`,
	} {
		for _, name := range []string{"system", "app", "method"} {
			var res TPResponse
			code, body := get(t, srv, "/api/v1/tp?"+name+"="+url.QueryEscape(v)+"&"+rangeQuery(), &res)
			if code != 200 {
				t.Errorf("%s=%q: %d %s", name, v, code, body)
				continue
			}
			if len(res.Series) != 0 {
				t.Errorf("%s=%q: %d series, want none: %s", name, v, len(res.Series), body)
			}
		}
		var topo Topo
		if code, body := get(t, srv, "/api/v1/topology?app="+url.QueryEscape(v)+"&"+rangeQuery(), &topo); code != 200 || len(topo.Systems) != 0 {
			t.Errorf("topology app=%q: %d %s", v, code, body)
		}
		var capRes CapacityResponse
		if code, body := get(t, srv, "/api/v1/capacity?group="+url.QueryEscape(v)+"&"+rangeQuery(), &capRes); code != 200 || len(capRes.Rows) != 0 {
			t.Errorf("capacity group=%q: %d %s", v, code, body)
		}
	}
	// The value with quotes in it finds its own row and nothing else.
	var res TPResponse
	code, body := get(t, srv, "/api/v1/tp?app="+url.QueryEscape(odd.app)+"&method="+url.QueryEscape(odd.method)+"&by=method&"+rangeQuery(), &res)
	if code != 200 || len(res.Series) != 1 || res.Series[0].Labels["method"] != odd.method || res.Series[0].Points[0].Calls != 3 {
		t.Errorf("odd labels: %d %s", code, body)
	}
	var n uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM "+cfg.Database+".call_panes").Scan(&n); err != nil || n != uint64(len(fixCalls)*fixPanes+1) {
		t.Errorf("call_panes has %d rows (%v), want %d", n, err, len(fixCalls)*fixPanes+1)
	}
}

func TestAPITopologyAndCapacity(t *testing.T) {
	srv, raw, _ := apiServer(t)
	var topo Topo
	if code, body := get(t, srv, "/api/v1/topology?"+rangeQuery(), &topo); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	got, _ := json.Marshal(topo)
	want := `{"systems":[{"name":"pay","apps":[{"name":"api","groups":[{"name":"g1","idcs":["bj"]},{"name":"g2","idcs":["sh"]}]},` +
		`{"name":"ledger","groups":[{"name":"g1","idcs":["bj"]}]}]},{"name":"shop","apps":[{"name":"web","groups":[{"name":"g1","idcs":["gz"]}]}]}]}`
	if string(got) != want {
		t.Errorf("topology\n got %s\nwant %s", got, want)
	}
	// The default range (the last 24 h before now) holds the dataset too.
	if code, _ := get(t, srv, "/api/v1/topology?system=shop", &topo); code != 200 || len(topo.Systems) != 1 || topo.Systems[0].Name != "shop" {
		t.Errorf("topology system=shop: %+v", topo)
	}

	var res CapacityResponse
	if code, body := get(t, srv, "/api/v1/capacity?by=app&target=80%25&"+rangeQuery(), &res); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	exp := expected(1, raw)
	if len(res.Rows) != len(exp) || res.Target != 0.8 || res.By != "app" {
		t.Fatalf("%d rows, target %g, by %s", len(res.Rows), res.Target, res.By)
	}
	for _, r := range res.Rows {
		labels := []string{r.System}
		if r.Level == "app" {
			labels = append(labels, r.App)
		}
		e := exp[fmt.Sprint(len(labels)-1, labels)]
		if e == nil {
			t.Fatalf("row %v not in the dataset", labels)
		}
		if *r.CPU.Avg != e.cpu.Avg || *r.Memory.Peak != e.mem.Peak || r.Instances != e.instances || r.Calls != e.calls {
			t.Errorf("%v: %+v, want %+v", labels, r, e)
		}
		if e.cpuLim {
			n := int(math.Ceil(float64(e.instances)*max(e.cpu.UtilPeak, e.mem.UtilPeak)/0.8 - 1e-9))
			if r.Recommendation.Replicas == nil || *r.Recommendation.Replicas != n {
				t.Errorf("%v: recommendation %+v, want %d", labels, r.Recommendation, n)
			}
		} else if r.Recommendation.Replicas != nil || r.CPU.Limit != nil || r.CPU.UtilPeak != nil {
			t.Errorf("%v: a recommendation or limit without limits: %+v", labels, r)
		}
	}
	// An empty range is an empty answer, not an error.
	if code, body := get(t, srv, "/api/v1/capacity?from=2026-01-01&to=2026-01-02", &res); code != 200 || len(res.Rows) != 0 {
		t.Errorf("empty range: %d %s", code, body)
	}
}

func TestMount(t *testing.T) {
	base := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "base") })
	api := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "api") })
	srv := httptest.NewServer(Mount(base, api))
	defer srv.Close()
	for path, want := range map[string]string{"/api/v1/tp": "api", "/api/v1/capacity": "api", "/api/v1/topology": "api", "/api/v1/windows": "base", "/metrics": "base"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != want {
			t.Errorf("%s served by %q, want %q", path, b, want)
		}
	}
}

// TestAPITPRollups adds the 5-minute rollups of the first half of the known
// dataset, built from its panes as the aggregator builds them: a 5m step
// reads them, the rest of the range comes from the panes, and the answer
// keeps every call; a 1m step reads the panes alone.
func TestAPITPRollups(t *testing.T) {
	srv, raw, cfg := apiServer(t)
	conn, err := clickhouse.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	panes, _ := callRows()
	var rollups []clickhouse.PaneRow
	for len(panes) > 0 {
		// callRows lists each key's panes in order: 30 make a rollup.
		n := 0
		for n < len(panes) && panes[n].Method == panes[0].Method && panes[n].App == panes[0].App && panes[n].Group == panes[0].Group &&
			panes[n].PaneStart.Before(panes[0].PaneStart.Add(aggregator.RollupLength)) {
			n++
		}
		if panes[0].PaneStart.Before(fixFrom.Add(aggregator.RollupLength)) {
			var ps []aggregator.PaneStat
			for _, r := range panes[:n] {
				ps = append(ps, paneStat(r))
			}
			r := aggregator.MergeRollup(ps, fixFrom.UnixMilli(), aggregator.RollupLength, aggregator.DefaultConfig().RollupCompression)
			rollups = append(rollups, rowOf(panes[0], r))
		}
		panes = panes[n:]
	}
	if len(rollups) != len(fixCalls) {
		t.Fatalf("%d rollups, want one per key", len(rollups))
	}
	if err := clickhouse.NewWriter(conn, cfg, nil).WriteRollups(context.Background(), rollups); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		step, source string
		points       int
	}{
		{"5m", "call_rollups+call_panes", 2},
		{"", "call_rollups+call_panes", 1},
		{"1m", "call_panes", 10},
	} {
		var res TPResponse
		path := "/api/v1/tp?app=api&q=0.99&step=" + c.step + "&" + rangeQuery()
		if code, body := get(t, srv, path, &res); code != 200 || len(res.Series) != 1 {
			t.Fatalf("%s: %d %s", path, code, body)
		}
		if res.Source != c.source || len(res.Series[0].Points) != c.points {
			t.Errorf("step %q: source %q, %d points; want %q, %d", c.step, res.Source, len(res.Series[0].Points), c.source, c.points)
		}
		for _, pt := range res.Series[0].Points {
			var vs []float64
			for ki, k := range fixCalls {
				if k.app != "api" {
					continue
				}
				for p, lat := range perPane(raw[ki], ki) {
					if s := fixFrom.Add(time.Duration(p) * 10 * time.Second); !s.Before(pt.Start) && s.Before(pt.Start.Add(time.Duration(res.StepSeconds)*time.Second)) {
						vs = append(vs, lat...)
					}
				}
			}
			exact := exactQuantile(vs, 0.99)
			if pt.Calls != uint64(len(vs)) || math.Abs(*pt.QuantilesUs[0]-exact)/exact > 0.01 {
				t.Errorf("step %q at %s: %d calls TP99 %g; want %d calls, TP99 %g within 1%%", c.step, pt.Start, pt.Calls, *pt.QuantilesUs[0], len(vs), exact)
			}
		}
	}
	// from 10 s after a 5-minute boundary, step 5m: the points are still on
	// the 5-minute grid; the first one holds the calls from from on, read
	// from the panes (its rollup reaches before from), and its QPS divides
	// by the 290 s inside the range.
	var res TPResponse
	from := fixFrom.Add(10 * time.Second)
	path := "/api/v1/tp?app=api&step=5m&from=" + url.QueryEscape(from.Format(time.RFC3339)) + "&to=" + url.QueryEscape(fixTo.Format(time.RFC3339))
	if code, body := get(t, srv, path, &res); code != 200 || res.Source != "call_panes" || len(res.Series) != 1 || len(res.Series[0].Points) == 0 {
		t.Fatalf("%s: %d %s", path, code, body)
	}
	pt := res.Series[0].Points[0]
	var calls int
	for ki, k := range fixCalls {
		if k.app != "api" {
			continue
		}
		for p, lat := range perPane(raw[ki], ki) {
			if s := fixFrom.Add(time.Duration(p) * 10 * time.Second); !s.Before(from) && s.Before(fixFrom.Add(5*time.Minute)) {
				calls += len(lat)
			}
		}
	}
	if !pt.Start.Equal(fixFrom) || pt.Calls != uint64(calls) || math.Abs(pt.QPS-float64(calls)/290) > 1e-9 {
		t.Errorf("first point %+v; want start %s, %d calls, QPS %g", pt, fixFrom, calls, float64(calls)/290)
	}
}

// paneStat is a stored pane as the aggregator holds it.
func paneStat(r clickhouse.PaneRow) aggregator.PaneStat {
	p := aggregator.PaneStat{Start: r.PaneStart.UnixMilli(), PaneMs: int64(r.PaneSeconds) * 1000, Count: r.Count, Errors: r.Errors,
		SumUs: uint64(r.SumUs), MinUs: uint32(r.MinUs), MaxUs: uint32(r.MaxUs)}
	for i, m := range r.CentroidMeans {
		p.Centroids = append(p.Centroids, aggregator.Centroid{Mean: float32(m), Weight: uint32(r.CentroidWeights[i])})
	}
	return p
}

// rowOf is the rollup p of the key of r as the sink stores it.
func rowOf(r clickhouse.PaneRow, p aggregator.PaneStat) clickhouse.PaneRow {
	out := clickhouse.PaneRow{PaneStart: time.UnixMilli(p.Start).UTC(), PaneSeconds: uint32(p.PaneMs / 1000),
		System: r.System, App: r.App, Group: r.Group, IDC: r.IDC, Method: r.Method,
		Count: p.Count, Errors: p.Errors, SumUs: float64(p.SumUs), MinUs: float64(p.MinUs), MaxUs: float64(p.MaxUs),
		P50Us: p.P50, P90Us: p.P90, P99Us: p.P99, P999Us: p.P999, Version: p.Version}
	for _, c := range p.Centroids {
		out.CentroidMeans = append(out.CentroidMeans, float64(c.Mean))
		out.CentroidWeights = append(out.CentroidWeights, float64(c.Weight))
	}
	return out
}
