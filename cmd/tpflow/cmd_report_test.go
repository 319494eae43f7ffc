package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tpflow/tpflow/internal/cli"
	"github.com/tpflow/tpflow/internal/config/sections"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest"
	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest/chdb"
)

func TestReportBadArguments(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"report"}, "tpflow report: want the report kind: tpflow report capacity [flags]\n"},
		{[]string{"report", "usage"}, "tpflow report: want the report kind: tpflow report capacity [flags]\n"},
		{[]string{"report", "capacity", "--by", "host"}, "tpflow report: --by: \"host\" is not a level; use one of system, app, group, idc\n"},
		{[]string{"report", "capacity", "--from", "last week"}, "tpflow report: --from: cannot parse \"last week\" as a time; use RFC 3339"},
		{[]string{"report", "capacity", "--to", "2026-02-30"}, "tpflow report: --to: cannot parse \"2026-02-30\""},
		{[]string{"report", "capacity", "--from", "2026-11-02", "--to", "2026-11-01"}, "tpflow report: --from 2026-11-02T00:00:00Z is not before to 2026-11-01T00:00:00Z\n"},
		{[]string{"report", "capacity", "--from", "2026-01-01", "--to", "2026-11-01"}, "is longer than 744h0m0s"},
		{[]string{"report", "capacity", "--format", "pdf"}, "tpflow report: --format: \"pdf\" is not one of html, md, csv\n"},
		{[]string{"report", "capacity", "--target", "0"}, "tpflow report: --target: 0 is outside (0, 1]\n"},
		{[]string{"report", "capacity", "--app", "a\x01"}, "tpflow report: --app: value holds control character U+0001\n"},
	} {
		code, out, errOut := runCLI(t, c.args...)
		if code != cli.ExitUsage || out != "" || !strings.Contains(errOut, c.want) || !strings.Contains(errOut, "Run 'tpflow report --help' for usage.") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and %q", c.args, code, out, errOut, c.want)
		}
	}
}

// reportData writes a small dataset: two containers of one group with
// limits, and one method's calls, over 5 minutes from `from`.
func reportData(t *testing.T, dsn string) (clickhouse.Config, time.Time) {
	t.Helper()
	conn, cfg := chdb.Open(t, dsn, "tpflow")
	ctx := context.Background()
	from := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	var res []clickhouse.ResourcePaneRow
	var calls []clickhouse.PaneRow
	for p := range 30 {
		at := from.Add(time.Duration(p) * 10 * time.Second)
		for i, c := range []string{"c1", "c2"} {
			for name, v := range map[string]float64{
				"container_cpu_usage_cores": float64(2+i+p%3) / 4, "container_cpu_limit_cores": 1,
				"container_memory_working_set_bytes": 1 << 29, "container_memory_limit_bytes": 1 << 30,
			} {
				res = append(res, clickhouse.ResourcePaneRow{PaneStart: at, PaneSeconds: 10, System: "shop", App: "cart", Group: "blue", IDC: "bj",
					Host: "h" + c, Container: c, Name: name, Count: 5, Avg: v, Max: v, P95: v, Version: 5})
			}
		}
		calls = append(calls, clickhouse.PaneRow{PaneStart: at, PaneSeconds: 10, System: "shop", App: "cart", Group: "blue", IDC: "bj",
			Method: "GET /cart", Count: 4, Errors: 1, SumUs: 10000, MinUs: 1000, MaxUs: 4000, P50Us: 2000, P90Us: 4000, P99Us: 4000, P999Us: 4000,
			CentroidMeans: []float64{1000, 2000, 3000, 4000}, CentroidWeights: []float64{1, 1, 1, 1}, Version: 1})
	}
	w := clickhouse.NewWriter(conn, cfg, nil)
	if err := w.WriteResourcePanes(ctx, res); err != nil {
		t.Fatal(err)
	}
	if err := w.WritePanes(ctx, calls); err != nil {
		t.Fatal(err)
	}
	return cfg, from
}

func TestReportCapacityCLI(t *testing.T) {
	srv := chtest.Start(t)
	cfg, from := reportData(t, srv.DSN())
	dsn := "clickhouse://" + srv.Addr() + "/" + cfg.Database
	rng := []string{"--from", from.Format(time.RFC3339), "--to", from.Add(5 * time.Minute).Format(time.RFC3339)}

	// Markdown on stdout; no progress for a quick report.
	code, out, errOut := runCLI(t, append([]string{"report", "capacity", "--clickhouse", dsn, "--by", "group"}, rng...)...)
	if code != cli.ExitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	// CPU peak 2 × … : per pane (2+p%3)/4 + (3+p%3)/4, peak (4+5)/4 = 2.25
	// cores of a 2-core limit: 112.5%; ceil(2 × 1.125 / 0.7) = 4.
	for _, want := range []string{"| **shop** |", "| &nbsp;&nbsp;cart |", "| &nbsp;&nbsp;&nbsp;&nbsp;blue | bj | 2 |", "**4** = ceil(2 × 1.125 / 0.7) by cpu", "replicas_needed = ceil("} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q:\n%s", want, out)
		}
	}

	dir := t.TempDir()
	csvPath := filepath.Join(dir, "r.csv")
	code, _, errOut = runCLI(t, append([]string{"report", "capacity", "--clickhouse", dsn, "--by", "app", "--out", csvPath, "--target", "90%"}, rng...)...)
	if code != cli.ExitOK || !strings.Contains(errOut, "wrote "+csvPath+": 2 rows, csv") {
		t.Fatalf("csv: exit %d, stderr %q", code, errOut)
	}
	b, _ := os.ReadFile(csvPath)
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil || len(recs) != 3 {
		t.Fatalf("csv %v: %q", err, b)
	}
	h := map[string]int{}
	for i, n := range recs[0] {
		h[n] = i
	}
	app := recs[2]
	for col, want := range map[string]string{"level": "app", "app": "cart", "instances": "2", "cpu_peak_cores": "2.25", "cpu_limit_cores": "2",
		"cpu_util_peak": "1.125", "mem_avg_bytes": "1073741824", "mem_util_avg": "0.5", "calls": "120", "errors": "30", "qps": "0.4",
		"replicas_needed": "3", "recommendation": "ceil(2 × 1.125 / 0.9) = 3 (cpu)"} {
		if app[h[col]] != want {
			t.Errorf("csv %s = %q, want %q", col, app[h[col]], want)
		}
	}

	htmlPath := filepath.Join(dir, "r.html")
	if code, _, errOut := runCLI(t, append([]string{"report", "capacity", "--clickhouse", dsn, "--out", htmlPath}, rng...)...); code != cli.ExitOK {
		t.Fatalf("html: exit %d, %s", code, errOut)
	}
	page, _ := os.ReadFile(htmlPath)
	for _, want := range []string{"<!DOCTYPE html>", "<svg", "polyline", "group blue"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("html lacks %q", want)
		}
	}
	for _, banned := range []string{"<script", "http://", "https://", "@import", "url("} {
		if bytes.Contains(page, []byte(banned)) {
			t.Errorf("html is not self-contained: has %q", banned)
		}
	}

	// An empty range says so and exits 1, writing no file.
	empty := filepath.Join(dir, "empty.md")
	code, out, errOut = runCLI(t, "report", "capacity", "--clickhouse", dsn, "--from", "2026-10-01", "--to", "2026-10-02", "--out", empty)
	if code != cli.ExitError || out != "" || errOut != "tpflow report: nothing to report: no data between 2026-10-01T00:00:00Z and 2026-10-02T00:00:00Z for every system in database tpflow\n" {
		t.Errorf("empty range: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if _, err := os.Stat(empty); !os.IsNotExist(err) {
		t.Errorf("empty range wrote %s", empty)
	}

	// A database without the tables says how to create them.
	code, _, errOut = runCLI(t, "report", "capacity", "--clickhouse", "clickhouse://"+srv.Addr()+"/nothing_here")
	if code != cli.ExitError || !strings.Contains(errOut, "database nothing_here has no tpflow tables yet: tpflow sink --migrate creates them") {
		t.Errorf("no tables: exit %d, stderr %q", code, errOut)
	}

	// Progress goes to stderr once a report takes longer than the bound.
	o := reportOptions{by: "idc", from: rng[1], to: rng[3], format: "md", target: "0.7", now: time.Now}
	var stdout, stderr bytes.Buffer
	c := sections.DefaultConfig()
	c.ClickHouse = cfg
	if err := runReport(context.Background(), &cli.Env{Stdout: &stdout, Stderr: &stderr}, &c, o); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr.String(), "report: ") || !strings.Contains(stderr.String(), "rendering md") {
		t.Errorf("no progress on stderr: %q", stderr.String())
	}
}

func TestAPIRole(t *testing.T) {
	srv := chtest.Start(t)
	cfg, from := reportData(t, srv.DSN())
	listen := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errOut syncBuffer
	go func() {
		done <- run(ctx, []string{"api", "--listen", listen, "--clickhouse", "clickhouse://" + srv.Addr() + "/" + cfg.Database}, &bytes.Buffer{}, &errOut)
	}()
	base := "http://" + listen
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, _, err := httpGet(base + "/healthz"); err == nil && code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("api did not start: %s", errOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	q := "from=" + from.Format(time.RFC3339) + "&to=" + from.Add(5*time.Minute).Format(time.RFC3339)
	code, body, err := httpGet(base + "/api/v1/tp?app=cart&q=tp99&step=1m&" + q)
	var tp struct {
		Series []struct {
			Points []struct {
				Calls       uint64
				QuantilesUs []float64 `json:"quantiles_us"`
			}
		}
	}
	if err != nil || code != 200 || json.Unmarshal(body, &tp) != nil || len(tp.Series) != 1 || len(tp.Series[0].Points) != 5 ||
		tp.Series[0].Points[0].Calls != 24 || tp.Series[0].Points[0].QuantilesUs[0] != 4000 {
		t.Errorf("tp: %d %v %s", code, err, body)
	}
	if code, body, _ := httpGet(base + "/api/v1/tp?from=soon"); code != 400 || !strings.Contains(string(body), `"error": "from: cannot parse`) {
		t.Errorf("bad from: %d %s", code, body)
	}
	if code, body, _ := httpGet(base + "/api/v1/topology?" + q); code != 200 || !strings.Contains(string(body), `"name": "blue"`) {
		t.Errorf("topology: %d %s", code, body)
	}
	if code, body, _ := httpGet(base + "/readyz"); code != 200 {
		t.Errorf("readyz: %d %s", code, body)
	}
	cancel()
	select {
	case c := <-done:
		if c != cli.ExitOK {
			t.Errorf("api exited %d: %s", c, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("api did not stop")
	}
}
