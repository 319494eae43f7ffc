package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/aggregator/backfill"
	"github.com/tpflow/tpflow/aggregator/backfill/backfilltest"
	"github.com/tpflow/tpflow/internal/cli"
	"github.com/tpflow/tpflow/internal/config/sections"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest"
	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest/chdb"
)

func TestRollupBackfillBadArguments(t *testing.T) {
	rng := []string{"--from", "2026-11-02T08:00:00Z", "--to", "2026-11-02T09:00:00Z"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"rollup"}, "tpflow rollup: want the action: tpflow rollup backfill --from TIME --to TIME [flags]\n"},
		{[]string{"rollup", "rebuild"}, "tpflow rollup: want the action: tpflow rollup backfill"},
		{[]string{"rollup", "backfill"}, "tpflow rollup: --from and --to are required"},
		{[]string{"rollup", "backfill", "--from", "2026-11-02"}, "tpflow rollup: --from and --to are required"},
		{[]string{"rollup", "backfill", "--from", "yesterday", "--to", "now-1h"}, "tpflow rollup: --from: cannot parse \"yesterday\" as a time; use RFC 3339"},
		{[]string{"rollup", "backfill", "--from", "2026-11-02", "--to", "2026-02-30"}, "tpflow rollup: --to: cannot parse \"2026-02-30\""},
		{[]string{"rollup", "backfill", "--from", "now-", "--to", "now-1h"}, "tpflow rollup: --from: cannot parse \"now-\""},
		{[]string{"rollup", "backfill", "--from", "2026-11-02T09:00:00Z", "--to", "2026-11-02T08:00:00Z"}, "tpflow rollup: --from 2026-11-02T09:00:00Z is not before --to 2026-11-02T08:00:00Z\n"},
		{[]string{"rollup", "backfill", "--from", "now-1h", "--to", "now"}, "less than 10m0s before now"},
		{[]string{"rollup", "backfill", "--from", "now-1h", "--to", "now-9m"}, "the aggregator is still writing those buckets"},
		{append([]string{"rollup", "backfill", "--app", "a\x01"}, rng...), "tpflow rollup: --app: value holds control character U+0001\n"},
		{append([]string{"rollup", "backfill", "--dry-run=perhaps"}, rng...), "tpflow rollup: invalid boolean value \"perhaps\" for -dry-run"},
		{append([]string{"rollup", "backfill", "--buckets", "3"}, rng...), "tpflow rollup: flag provided but not defined: -buckets\n"},
	} {
		code, out, errOut := runCLI(t, c.args...)
		if code != cli.ExitUsage || out != "" || !strings.Contains(errOut, c.want) || !strings.Contains(errOut, "Run 'tpflow rollup --help' for usage.") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and %q", c.args, code, out, errOut, c.want)
		}
	}
	// The refusal says where the range may end.
	_, _, errOut := runCLI(t, "rollup", "backfill", "--from", "now-1h", "--to", "now")
	if !strings.Contains(errOut, "or pass --force") || !strings.Contains(errOut, "End the range at ") {
		t.Errorf("refusal does not say what to do: %q", errOut)
	}
}

func TestRollupHelp(t *testing.T) {
	code, out, _ := runCLI(t, "rollup", "--help")
	for _, want := range []string{"Usage: tpflow rollup [flags] backfill", "call_rollups", "call_panes", "--dry-run", "--force",
		"--from TIME", "--method METHOD", "Re-running is harmless", "rollup_compression"} {
		if code != cli.ExitOK || !strings.Contains(out, want) {
			t.Errorf("rollup --help: exit %d, lacks %q", code, want)
		}
	}
}

func TestRollupBackfillCLI(t *testing.T) {
	srv := chtest.Start(t)
	ctx := context.Background()
	conn, cfg := chdb.Open(t, srv.DSN(), "tpflow")
	from := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	keys := []aggregator.Key{
		{System: "pay", App: "api", Group: "g1", IDC: "bj", Method: "Charge"},
		{System: "pay", App: "api", Group: "g1", IDC: "bj", Method: "Refund"},
		{System: "pay", App: "web", Group: "g2", IDC: "sh", Method: "GET /"},
		{System: "shop", App: "cart", Group: "g1", IDC: "sh", Method: "Cart.add"},
	}
	d := backfilltest.Build(t, backfilltest.Spec{Keys: keys, From: from, To: from.Add(40 * time.Minute), CallsPerPane: 300,
		Late: map[int]time.Duration{3: 7 * time.Minute}, Seed: 3})
	backfilltest.Store(t, clickhouse.NewWriter(conn, cfg, nil), d)
	dsn := "clickhouse://" + srv.Addr() + "/" + cfg.Database
	tbl := cfg.Database + ".call_rollups"
	nPanes := strconv.Itoa(len(d.Panes))
	truncate := func() {
		t.Helper()
		if err := conn.Exec(ctx, "TRUNCATE TABLE "+tbl); err != nil {
			t.Fatal(err)
		}
	}

	// A dry run reads and counts, and writes nothing.
	code, out, errOut := runCLI(t, "rollup", "backfill", "--clickhouse", dsn, "--dry-run",
		"--from", "2026-11-02T08:00:00Z", "--to", "2026-11-02T08:40:00Z")
	want := "rollup backfill (dry run): 8 buckets from 2026-11-02T08:00:00Z to 2026-11-02T08:40:00Z, every key: 4 keys, 31 rollups built, none written, " +
		nPanes + " panes read (0 skipped) in "
	if code != cli.ExitOK || errOut != "" || !strings.HasPrefix(out, want) {
		t.Fatalf("dry run: exit %d, stderr %q, stdout %q; want %q...", code, errOut, out, want)
	}
	if got := backfilltest.Stored(t, conn, cfg.Database, false); len(got) != 0 {
		t.Fatalf("dry run wrote %d rollups", len(got))
	}

	// A range inside the data is rounded outward, and says so; the
	// rollups are the engine's.
	all := backfilltest.EngineRollups(d, nil)
	args := []string{"rollup", "backfill", "--clickhouse", dsn, "--from", "2026-11-02T08:03:00Z", "--to", "2026-11-02T08:37:10Z"}
	code, out, errOut = runCLI(t, args...)
	if code != cli.ExitOK || errOut != "rollup backfill: range rounded outward to whole 5-minute buckets: 2026-11-02T08:00:00Z to 2026-11-02T08:40:00Z (asked 2026-11-02T08:03:00Z to 2026-11-02T08:37:10Z)\n" {
		t.Fatalf("backfill: exit %d, stderr %q", code, errOut)
	}
	want = "rollup backfill: 8 buckets from 2026-11-02T08:00:00Z to 2026-11-02T08:40:00Z, every key: 4 keys, 31 rollups written, " + nPanes + " panes read (0 skipped) in "
	if !strings.HasPrefix(out, want) || !regexp.MustCompile(` in [0-9.]+m?s, [0-9]+ panes/s\n$`).MatchString(out) {
		t.Fatalf("backfill summary %q, want %q...", out, want)
	}
	backfilltest.SameRollups(t, backfilltest.Stored(t, conn, cfg.Database, true), all)

	// A second run changes nothing: once merged, the same rows remain.
	code, out2, _ := runCLI(t, args...)
	if code != cli.ExitOK || !strings.HasPrefix(out2, want) {
		t.Fatalf("second run: exit %d, stdout %q", code, out2)
	}
	backfilltest.Optimize(t, conn, tbl)
	backfilltest.SameRollups(t, backfilltest.Stored(t, conn, cfg.Database, false), all)

	// The selector limits what is written.
	truncate()
	code, out, errOut = runCLI(t, "rollup", "backfill", "--clickhouse", dsn, "--system", "pay", "--app", "api",
		"--from", "1793606400", "--to", "2026-11-02T08:40:00Z")
	if code != cli.ExitOK || !strings.Contains(out, `system="pay" app="api": 2 keys, 16 rollups written`) {
		t.Fatalf("selector: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	backfilltest.SameRollups(t, backfilltest.Stored(t, conn, cfg.Database, true),
		backfilltest.EngineRollups(d, func(k aggregator.Key) bool { return k.System == "pay" && k.App == "api" }))

	// A range or selector without panes exits 1 and says so.
	truncate()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--from", "2026-11-01", "--to", "2026-11-02"}, "tpflow rollup: no panes of every key in call_panes from 2026-11-01T00:00:00Z to 2026-11-02T00:00:00Z: nothing to back-fill\n"},
		{[]string{"--from", "2026-11-02", "--to", "2026-11-03", "--app", "nope", "--method", "Charge"}, "tpflow rollup: no panes of app=\"nope\" method=\"Charge\" in call_panes from 2026-11-02T00:00:00Z to 2026-11-03T00:00:00Z: nothing to back-fill\n"},
		// --force lets a range reach now; there is nothing there either.
		{[]string{"--from", "now-30m", "--to", "now", "--force"}, "tpflow rollup: no panes of every key in call_panes from "},
	} {
		code, out, errOut := runCLI(t, append([]string{"rollup", "backfill", "--clickhouse", dsn}, c.args...)...)
		if code != cli.ExitError || out != "" || !strings.Contains(errOut, c.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 1 and %q", c.args, code, out, errOut, c.want)
		}
	}
	// A database without tpflow's tables says how to create them.
	code, _, errOut = runCLI(t, "rollup", "backfill", "--clickhouse", "clickhouse://"+srv.Addr()+"/empty", "--dry-run",
		"--from", "2026-11-02", "--to", "2026-11-03")
	if code != cli.ExitError || !strings.Contains(errOut, "database empty has no tpflow tables yet: tpflow sink --migrate creates them") {
		t.Errorf("no tables: exit %d, stderr %q", code, errOut)
	}
	if got := backfilltest.Stored(t, conn, cfg.Database, false); len(got) != 0 {
		t.Fatalf("runs without panes wrote %d rollups", len(got))
	}

	// A pane whose centroid arrays differ in length is reported with its
	// key and start and left out; every other rollup is written.
	var victim aggregator.PaneStat
	for _, p := range d.Panes {
		if p.Key.Method == "GET /" && p.Start == from.Add(21*time.Minute+40*time.Second).UnixMilli() {
			victim = p
		}
	}
	bad := backfill.RowOf(victim)
	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+cfg.Database+".call_panes (pane_start, pane_seconds, system, app, group_name, idc, method,"+
		" count, errors, sum_us, min_us, max_us, p50_us, p90_us, p99_us, p999_us, centroid_means, centroid_weights, version)")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Append(bad.PaneStart, bad.PaneSeconds, bad.System, bad.App, bad.Group, bad.IDC, bad.Method, bad.Count, bad.Errors,
		bad.SumUs, bad.MinUs, bad.MaxUs, bad.P50Us, bad.P90Us, bad.P99Us, bad.P999Us, bad.CentroidMeans[:3], bad.CentroidWeights, bad.Version+1); err != nil {
		t.Fatal(err)
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCLI(t, "rollup", "backfill", "--clickhouse", dsn, "--from", "2026-11-02T08:00:00Z", "--to", "2026-11-02T08:40:00Z")
	wantErr := `rollup backfill: skipped pane system="pay" app="web" group="g2" idc="sh" method="GET /" pane_start=2026-11-02T08:21:40Z: 3 centroid means but ` +
		strconv.Itoa(len(bad.CentroidWeights)) + " weights\n"
	if code != cli.ExitOK || errOut != wantErr || !strings.Contains(out, "31 rollups written, "+nPanes+" panes read (1 skipped)") {
		t.Fatalf("broken pane: exit %d, stdout %q, stderr %q; want stderr %q", code, out, errOut, wantErr)
	}
	got := backfilltest.Stored(t, conn, cfg.Database, true)
	id := backfilltest.RollupID{Key: victim.Key, Start: from.Add(20 * time.Minute).Unix()}
	if g, n := got[id], all[id].Count-victim.Count; g.Count != n || g.Version != n {
		t.Errorf("the broken bucket %+v has count %d, version %d; want the engine's %d calls less the pane's %d", id, g.Count, g.Version, all[id].Count, victim.Count)
	}
	delete(got, id)
	delete(all, id)
	backfilltest.SameRollups(t, got, all)
}

// TestRollupBackfillProgress runs the command with progress every
// millisecond and checks the lines on stderr.
func TestRollupBackfillProgress(t *testing.T) {
	srv := chtest.Start(t)
	cfg := sections.DefaultConfig()
	cfg.ClickHouse.DSN = srv.DSN()
	cfg.ClickHouse.Database = "tpflow"
	ctx := context.Background()
	conn, err := clickhouse.Open(ctx, cfg.ClickHouse)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := clickhouse.Migrate(ctx, conn, cfg.ClickHouse); err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	d := backfilltest.Build(t, backfilltest.Spec{Keys: backfilltest.Keys(50), From: from, To: from.Add(time.Hour), CallsPerPane: 100, Seed: 5})
	backfilltest.Store(t, clickhouse.NewWriter(conn, cfg.ClickHouse, nil), d)
	cfg.ClickHouse.BatchRows = 20 // many batches, so progress moves
	var out, errOut bytes.Buffer
	env := &cli.Env{Stdout: &out, Stderr: &errOut}
	o := rollupOptions{from: "2026-11-02T08:00:00Z", to: "2026-11-02T09:00:00Z", now: time.Now, progressEvery: time.Millisecond}
	if err := runRollupBackfill(ctx, env, &cfg, o); err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`^rollup backfill: ([0-9]+)/12 buckets, ([0-9]+) rollups written, ([0-9]+) panes read, [0-9.]+s$`)
	lines := strings.Split(strings.TrimSpace(errOut.String()), "\n")
	if len(lines) < 2 {
		t.Fatalf("progress lines %q; want several", lines)
	}
	for _, l := range lines {
		if !line.MatchString(l) {
			t.Errorf("progress line %q does not match %s", l, line)
		}
	}
	if !strings.Contains(out.String(), "50 keys, 600 rollups written") {
		t.Errorf("summary %q", out.String())
	}
}
