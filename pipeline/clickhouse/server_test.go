package clickhouse

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest"
)

func TestMain(m *testing.M) { os.Exit(chtest.RunMain(m)) }

// setup opens a migrated database of its own on the shared server.
func setup(tb testing.TB) (driver.Conn, Config) {
	tb.Helper()
	s := chtest.Shared(tb)
	cfg := DefaultConfig()
	cfg.DSN = s.DSN()
	cfg.Database = s.Database()
	cfg.MaxRetryBackoff = 500 * time.Millisecond
	ctx := context.Background()
	conn, err := Open(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	if _, err := Migrate(ctx, conn, cfg); err != nil {
		tb.Fatal(err)
	}
	return conn, cfg
}

func TestMigrateAppliesRecordsAndIsIdempotent(t *testing.T) {
	s := chtest.Shared(t)
	cfg := DefaultConfig()
	cfg.DSN = s.DSN()
	cfg.Database = s.Database() + "_m"     // Open must create it
	cfg.RetentionDays = Retention{Logs: 7} // ignored by 18.16
	ctx := context.Background()
	conn, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Cleanup(func() { _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+cfg.Database) })

	version := chtest.Scalar[string](t, conn, "SELECT version()")
	want, err := DDL(version, DDLOptions{Database: cfg.Database, Retention: cfg.RetentionDays})
	if err != nil {
		t.Fatal(err)
	}
	applied, err := Migrate(ctx, conn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != len(want) {
		t.Fatalf("applied %v, want %d migrations", applied, len(want))
	}
	recorded, err := AppliedMigrations(ctx, conn, cfg.Database)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range want {
		if recorded[m.Version] != m.Name {
			t.Errorf("migration %d recorded as %q, want %q", m.Version, recorded[m.Version], m.Name)
		}
	}
	firstApplied := chtest.Scalar[time.Time](t, conn, "SELECT max(applied_at) FROM "+cfg.Database+".schema_migrations")
	if time.Since(firstApplied) > time.Minute || time.Since(firstApplied) < -time.Minute {
		t.Errorf("applied_at %s is not now", firstApplied)
	}
	for _, tbl := range []string{"call_panes", "logs", "metric_samples", "resource_panes", "alerts", "schema_migrations"} {
		if n := chtest.Scalar[uint64](t, conn, "SELECT count() FROM system.tables WHERE database = ? AND name = ?", cfg.Database, tbl); n != 1 {
			t.Errorf("table %s missing", tbl)
		}
	}
	for col, typ := range map[string]string{
		"pane_start": "DateTime", "pane_seconds": "UInt32", "method": "String", "count": "UInt64",
		"p999_us": "Float64", "centroid_means": "Array(Float64)", "centroid_weights": "Array(Float64)", "version": "UInt64",
	} {
		got := chtest.Scalar[string](t, conn, "SELECT type FROM system.columns WHERE database = ? AND table = 'call_panes' AND name = ?", cfg.Database, col)
		if got != typ {
			t.Errorf("call_panes.%s is %s, want %s", col, got, typ)
		}
	}
	if e := chtest.Scalar[string](t, conn, "SELECT engine FROM system.tables WHERE database = ? AND name = 'call_panes'", cfg.Database); e != "ReplacingMergeTree" {
		t.Errorf("call_panes engine %s", e)
	}

	again, err := Migrate(ctx, conn, cfg)
	if err != nil || len(again) != 0 {
		t.Fatalf("second Migrate applied %v, %v; want nothing", again, err)
	}
	if n := chtest.Scalar[uint64](t, conn, "SELECT count() FROM "+cfg.Database+".schema_migrations"); n != uint64(len(want)) {
		t.Fatalf("%d migration records after a second run, want %d", n, len(want))
	}
}

func TestPanesReplaceNeverAdd(t *testing.T) {
	conn, cfg := setup(t)
	ctx := context.Background()
	w := NewWriter(conn, cfg, nil)
	var rows []PaneRow
	for i := range 3 {
		rows = append(rows, pane(i))
	}
	for range 2 { // the same panes published twice
		if err := w.WritePanes(ctx, rows); err != nil {
			t.Fatal(err)
		}
	}
	corr := pane(1)
	corr.Count, corr.Errors, corr.Version = 7, 0, 2
	corr.CentroidMeans, corr.CentroidWeights = []float64{5, 6, 7}, []float64{3, 2, 2}
	stale := pane(1)
	stale.Count, stale.Version = 1000, 0
	if err := w.WritePanes(ctx, []PaneRow{corr, stale}); err != nil {
		t.Fatal(err)
	}
	got, err := QueryPanes(ctx, conn, PaneQuery{Database: cfg.Database, From: time.Unix(0, 0), To: time.Unix(2_000_000_000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d panes under FINAL, want 3: %+v", len(got), got)
	}
	for i, p := range got {
		want := rows[i]
		if i == 1 {
			want = corr
		}
		if !p.PaneStart.Equal(want.PaneStart) || p.Count != want.Count || p.Version != want.Version ||
			!slices.Equal(p.CentroidMeans, want.CentroidMeans) || !slices.Equal(p.CentroidWeights, want.CentroidWeights) ||
			p.Method != want.Method || p.Group != want.Group || p.PaneSeconds != 10 {
			t.Errorf("pane %d = %+v, want %+v", i, p, want)
		}
	}
	sum := chtest.Scalar[uint64](t, conn, "SELECT sum(count) FROM "+cfg.Database+".call_panes FINAL")
	if sum != 2+7+2 {
		t.Fatalf("sum(count) FINAL = %d, want 11", sum)
	}
}

// exactQuantile is the nearest-rank quantile: the smallest value with at
// least level·n values at or below it.
func exactQuantile(sorted []float64, level float64) float64 {
	rank := int(math.Ceil(level * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}

func TestQueryTPMergesCentroidsOfManyPanes(t *testing.T) {
	conn, cfg := setup(t)
	ctx := context.Background()
	w := NewWriter(conn, cfg, nil)
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Unix(1_700_000_000, 0)
	var rows []PaneRow
	var all []float64
	const panes, perPane = 30, 200
	for i := range panes {
		// Small panes: every value is its own centroid, so the stored
		// digest is exact. Latency level drifts across panes so that the
		// merged quantile differs from every per-pane one.
		p := PaneRow{PaneStart: base.Add(time.Duration(i) * 10 * time.Second), PaneSeconds: 10,
			System: "s", App: "a", Group: "g", IDC: "dc1", Method: "get", Version: 1}
		for range perPane {
			v := math.Round(math.Exp(rng.NormFloat64()*0.8+6+float64(i%7)*0.2)*10) / 10
			p.CentroidMeans = append(p.CentroidMeans, v)
			p.CentroidWeights = append(p.CentroidWeights, 1)
			all = append(all, v)
			p.Count++
		}
		slices.Sort(p.CentroidMeans) // a digest's centroids are sorted by mean
		rows = append(rows, p)
	}
	// Noise the selector and the range must exclude.
	other := rows[0]
	other.Method, other.CentroidMeans, other.CentroidWeights = "put", []float64{1e9}, []float64{1000}
	late := rows[0]
	late.PaneStart = base.Add(time.Hour)
	late.CentroidMeans, late.CentroidWeights = []float64{1e9}, []float64{1000}
	if err := w.WritePanes(ctx, append(slices.Clone(rows), other, late)); err != nil {
		t.Fatal(err)
	}
	// A duplicate publication must not change the answer.
	if err := w.WritePanes(ctx, rows[:5]); err != nil {
		t.Fatal(err)
	}
	slices.Sort(all)
	levels := []float64{0.5, 0.9, 0.99, 0.999}
	res, err := QueryTP(ctx, conn, TPQuery{Database: cfg.Database, Selector: Selector{App: "a", Method: "get"},
		From: base, To: base.Add(panes * 10 * time.Second), Quantiles: levels})
	if err != nil {
		t.Fatal(err)
	}
	if res.Count != panes*perPane {
		t.Fatalf("count %d, want %d", res.Count, panes*perPane)
	}
	for i, l := range levels {
		want := exactQuantile(all, l)
		if got := res.Quantiles[i]; math.Abs(got-want)/want > 0.01 {
			t.Errorf("TP%g = %g, want %g within 1%%", l*100, got, want)
		}
	}
	// Averaging per-pane p99 would be wrong; make sure the data tells apart.
	var avg float64
	for _, p := range rows {
		s := slices.Sorted(slices.Values(p.CentroidMeans))
		avg += exactQuantile(s, 0.99) / panes
	}
	if math.Abs(avg-res.Quantiles[2])/res.Quantiles[2] < 0.02 {
		t.Fatalf("test data too uniform: avg of pane p99 %g ≈ merged p99 %g", avg, res.Quantiles[2])
	}

	empty, err := QueryTP(ctx, conn, TPQuery{Database: cfg.Database, Selector: Selector{App: "nobody"},
		From: base, To: base.Add(time.Minute), Quantiles: []float64{0.99}})
	if err != nil {
		t.Fatal(err)
	}
	if empty.Count != 0 || !math.IsNaN(empty.Quantiles[0]) {
		t.Fatalf("empty selection gave %+v, want count 0 and NaN", empty)
	}
}

func TestAllTablesRoundTrip(t *testing.T) {
	conn, cfg := setup(t)
	ctx := context.Background()
	w := NewWriter(conn, cfg, nil)
	db := cfg.Database
	ts := time.Unix(1_700_000_123, 456_789_012)

	logs := []LogRow{
		{TS: ts, EventLabels: EventLabels{System: "s", App: "a", Host: "h1", Pod: "p", Container: "c"}, Stream: "stderr", Level: "error",
			Message: "EXT4-fs error", Source: "/var/log/x.log", SourceID: 42, Offset: 0, Truncated: true},
		{TS: ts.Add(time.Second), EventLabels: EventLabels{System: "s", App: "a"}, Message: "second", SourceID: 42, Offset: 100, Unparsed: true},
	}
	if err := w.WriteLogs(ctx, logs); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteLogs(ctx, logs[:1]); err != nil { // re-sent line
		t.Fatal(err)
	}
	if n := chtest.Scalar[uint64](t, conn, "SELECT count() FROM "+db+".logs FINAL"); n != 2 {
		t.Errorf("logs FINAL count = %d, want 2", n)
	}
	if ns := chtest.Scalar[uint32](t, conn, "SELECT ts_ns FROM "+db+".logs FINAL WHERE offset = 0"); ns != 456_789_012 {
		t.Errorf("ts_ns = %d, want 456789012", ns)
	}
	if m := chtest.Scalar[string](t, conn, "SELECT message FROM "+db+".logs FINAL WHERE unparsed = 1"); m != "second" {
		t.Errorf("unparsed line message %q", m)
	}
	if n := chtest.Scalar[uint64](t, conn, "SELECT count() FROM "+db+".logs FINAL WHERE truncated = 1 AND level = 'error' AND host = 'h1'"); n != 1 {
		t.Errorf("%d truncated error lines on h1, want 1", n)
	}

	metrics := []MetricRow{{TS: ts, EventLabels: EventLabels{Host: "h1", Container: "c"}, Name: "cpu_usage", Value: 0.25, Kind: "gauge"},
		{TS: ts, EventLabels: EventLabels{Host: "h2", Container: "c"}, Name: "cpu_usage", Value: 0.75, Kind: "gauge"}}
	if err := w.WriteMetrics(ctx, metrics); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteMetrics(ctx, metrics); err != nil {
		t.Fatal(err)
	}
	if s := chtest.Scalar[float64](t, conn, "SELECT sum(value) FROM "+db+".metric_samples FINAL"); s != 1 {
		t.Errorf("sum(value) FINAL = %g, want 1", s)
	}

	rp := ResourcePaneRow{PaneStart: ts.Truncate(10 * time.Second), PaneSeconds: 10, Host: "h1", Container: "c",
		Name: "mem", Count: 10, Avg: 1, Max: 2, P95: 1.5, Version: 1}
	rp2 := rp
	rp2.Max, rp2.Version = 9, 2
	if err := w.WriteResourcePanes(ctx, []ResourcePaneRow{rp, rp2, rp}); err != nil {
		t.Fatal(err)
	}
	if m := chtest.Scalar[float64](t, conn, "SELECT max FROM "+db+".resource_panes FINAL"); m != 9 {
		t.Errorf("resource pane max = %g, want the version-2 value 9", m)
	}

	alert := AlertRow{TS: ts, Rule: "HighTP99", State: "firing", Value: 812.5, App: "a",
		LabelNames: []string{"severity", "app"}, LabelValues: []string{"page", "a"},
		AnnotationNames: []string{"summary"}, AnnotationValues: []string{"TP99 above 500ms"},
		Fingerprint: 1<<63 + 5, ActiveAt: ts.Add(-time.Minute), FiredAt: ts}
	if err := w.WriteAlerts(ctx, []AlertRow{alert, alert}); err != nil {
		t.Fatal(err)
	}
	if v := chtest.Scalar[string](t, conn, "SELECT label_values[indexOf(label_names, 'severity')] FROM "+db+".alerts FINAL"); v != "page" {
		t.Errorf("severity label %q, want page", v)
	}
	if fp := chtest.Scalar[uint64](t, conn, "SELECT fingerprint FROM "+db+".alerts FINAL"); fp != 1<<63+5 {
		t.Errorf("fingerprint %d", fp)
	}
	if r := chtest.Scalar[uint32](t, conn, "SELECT toUInt32(resolved_at) FROM "+db+".alerts FINAL"); r != 0 {
		t.Errorf("unset resolved_at stored as %d, want 0", r)
	}
	if n := chtest.Scalar[uint64](t, conn, "SELECT count() FROM "+db+".alerts FINAL"); n != 1 {
		t.Errorf("%d alert rows, want 1", n)
	}
	if st := w.Stats(); st.Rejected != 0 || st.Retries != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestUnknownTableIsPermanent(t *testing.T) {
	s := chtest.Shared(t)
	cfg := DefaultConfig()
	cfg.DSN = s.DSN()
	cfg.Database = s.Database() // never migrated: no call_panes
	ctx := context.Background()
	conn, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	w := NewWriter(conn, cfg, nil)
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err = w.WritePanes(ctx, []PaneRow{pane(0)})
	if !errors.Is(err, ErrPermanent) {
		t.Fatalf("err = %v, want ErrPermanent", err)
	}
	if w.Stats().Retries != 0 {
		t.Fatalf("retried a permanent error %d times", w.Stats().Retries)
	}
}

func TestWriterWaitsForServerRestart(t *testing.T) {
	s := chtest.Start(t)
	cfg := DefaultConfig()
	cfg.DSN = s.DSN()
	cfg.Database = "tpflow"
	cfg.MaxRetryBackoff = 300 * time.Millisecond
	cfg.BatchRows = 50
	ctx := context.Background()
	conn, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := Migrate(ctx, conn, cfg); err != nil {
		t.Fatal(err)
	}
	w := NewWriter(conn, cfg, nil)
	var first, second []PaneRow
	for i := range 100 {
		first = append(first, pane(i))
		second = append(second, pane(100+i))
	}
	if err := w.WritePanes(ctx, first); err != nil {
		t.Fatal(err)
	}

	t0 := time.Now()
	s.Stop()
	t.Logf("server stopped in %s", time.Since(t0).Round(time.Millisecond))
	done := make(chan error, 1)
	go func() { done <- w.WritePanes(ctx, second) }()
	select {
	case err := <-done:
		t.Fatalf("WritePanes returned %v while the server was down", err)
	case <-time.After(3 * time.Second):
	}
	if w.Stats().Retries == 0 {
		t.Fatal("no retries while the server was down")
	}
	t0 = time.Now()
	s.Start()
	t.Logf("server restarted in %s", time.Since(t0).Round(time.Millisecond))
	select {
	case err := <-done:
		t.Logf("write finished %s after the restart began", time.Since(t0).Round(time.Millisecond))
		if err != nil {
			t.Fatalf("WritePanes after restart: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("WritePanes did not finish within 30s of the restart")
	}
	n := chtest.Scalar[uint64](t, conn, "SELECT count() FROM tpflow.call_panes FINAL")
	sum := chtest.Scalar[uint64](t, conn, "SELECT sum(count) FROM tpflow.call_panes FINAL")
	if n != 200 || sum != 400 {
		t.Fatalf("after restart: %d panes, sum(count) %d; want 200 and 400", n, sum)
	}
	if st := w.Stats(); st.Rows != 200 || st.Rejected != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func BenchmarkWritePanes(b *testing.B) {
	conn, cfg := setup(b)
	w := NewWriter(conn, cfg, nil)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	const batch = 5000
	rows := make([]PaneRow, batch)
	base := time.Unix(1_700_000_000, 0)
	for i := range rows {
		r := &rows[i]
		r.PaneStart, r.PaneSeconds = base.Add(time.Duration(i/50)*10*time.Second), 10
		r.System, r.App, r.Group, r.IDC = "sys", "app"+string(rune('a'+i%10)), "g", "dc1"
		r.Method = "method" + string(rune('a'+i%50%26))
		r.Count, r.Version = 100, 1
		for j := range 100 {
			r.CentroidMeans = append(r.CentroidMeans, float64(j)*10+rng.Float64())
			r.CentroidWeights = append(r.CentroidWeights, 1)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	t0 := time.Now()
	for b.Loop() {
		if err := w.WritePanes(ctx, rows); err != nil {
			b.Fatal(err)
		}
		n += batch
	}
	b.ReportMetric(float64(n)/time.Since(t0).Seconds(), "rows/s")
}

// TestWrongPasswordIsRefusedWithoutShowingIt gives the server's user a
// wrong clickhouse.password: the server refuses it (so the password
// reaches the handshake), and neither Open's nor Ready's error holds it.
func TestWrongPasswordIsRefusedWithoutShowingIt(t *testing.T) {
	const pw = "wrong-pw-5521"
	s := chtest.Shared(t)
	cfg := DefaultConfig()
	cfg.DSN, cfg.Database, cfg.Password = s.DSN(), s.Database(), pw
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := Open(ctx, cfg)
	if err == nil {
		conn.Close()
		t.Fatal("Open with a wrong password succeeded")
	}
	for _, err := range []error{err, Ready(ctx, cfg)} {
		if err == nil || strings.Contains(err.Error(), pw) || !strings.Contains(strings.ToLower(err.Error()), "password") {
			t.Errorf("error = %v; want the server's refusal of the password, without the password", err)
		}
	}
}
