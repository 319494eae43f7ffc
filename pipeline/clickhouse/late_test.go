package clickhouse

import (
	"context"
	"testing"
	"time"
)

// TestMergedPanesRoundTrip writes a pane as the sink does and another with
// a late mark as the late merger does, in both pane tables, and reads them
// back by identity: the sink's row has no mark (-1, -1), the merged one
// keeps its mark, the higher version wins, and identities that are not
// stored (another key, another start) are absent.
func TestMergedPanesRoundTrip(t *testing.T) {
	conn, cfg := setup(t)
	ctx := context.Background()
	w := NewWriter(conn, cfg, nil)
	start := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	base := PaneRow{PaneStart: start, PaneSeconds: 10, System: "s", App: "a", Group: "g", IDC: "i", Method: "m",
		Count: 2, SumUs: 30, MinUs: 10, MaxUs: 20, P50Us: 10, P90Us: 20, P99Us: 20, P999Us: 20,
		CentroidMeans: []float64{10, 20}, CentroidWeights: []float64{1, 1}, Version: 2}
	other := base
	other.Method = "other"
	other.PaneStart = start.Add(10 * time.Second)
	for _, rollups := range []bool{false, true} {
		write := w.WritePanes
		if rollups {
			write = w.WriteRollups
		}
		if err := write(ctx, []PaneRow{base, other}); err != nil {
			t.Fatal(err)
		}
		ids := []PaneID{base.ID(), other.ID(), {System: "s", App: "a", Group: "g", IDC: "i", Method: "m", Start: other.PaneStart.Unix()}}
		got, err := QueryMergedPanes(ctx, conn, cfg.Database, rollups, ids)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 {
			t.Fatalf("rollups %v: read %d panes, want 2: %+v", rollups, len(got), got)
		}
		if r := got[base.ID()]; r.Count != 2 || r.LatePartition != -1 || r.LateOffset != -1 || !r.PaneStart.Equal(start) {
			t.Fatalf("rollups %v: sink's row read as %+v, want count 2 and no late mark", rollups, r)
		}
		merged := MergedPane{PaneRow: base, LatePartition: 3, LateOffset: 41}
		merged.Count, merged.Version = 3, 1<<62|3
		merged.CentroidMeans, merged.CentroidWeights = []float64{10, 20, 30}, []float64{1, 1, 1}
		if err := w.WriteMergedPanes(ctx, rollups, []MergedPane{merged}); err != nil {
			t.Fatal(err)
		}
		got, err = QueryMergedPanes(ctx, conn, cfg.Database, rollups, ids[:1])
		if err != nil {
			t.Fatal(err)
		}
		if r := got[base.ID()]; len(got) != 1 || r.Count != 3 || r.Version != 1<<62|3 || r.LatePartition != 3 || r.LateOffset != 41 || len(r.CentroidMeans) != 3 {
			t.Fatalf("rollups %v: merged row read as %+v, want count 3 with mark 3/41", rollups, got)
		}
	}
}

// TestAddColumnMigrationRunsAgain applies the statements of migration 0008
// a second time, as an interrupted run would on a server without ADD
// COLUMN IF NOT EXISTS (18.16): each must fail only with "column exists",
// which Migrate accepts, or succeed.
func TestAddColumnMigrationRunsAgain(t *testing.T) {
	conn, cfg := setup(t)
	ctx := context.Background()
	var version string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		t.Fatal(err)
	}
	migs, err := DDL(version, DDLOptions{Database: cfg.Database})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, m := range migs {
		if m.Version != 8 {
			continue
		}
		found = true
		for _, s := range m.Statements {
			if err := conn.Exec(ctx, s); err != nil && !columnExists(s, err) {
				t.Errorf("%s again: %v", s, err)
			}
		}
	}
	if !found {
		t.Fatal("no migration 0008")
	}
	if columnExists("ALTER TABLE x ADD COLUMN y Int32", context.Canceled) {
		t.Error("a cancelled context counts as an existing column")
	}
}
