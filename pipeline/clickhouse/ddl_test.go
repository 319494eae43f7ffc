package clickhouse

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func renderDDL(ms []Migration) string {
	var b strings.Builder
	for _, m := range ms {
		for _, s := range m.Statements {
			b.WriteString("-- ")
			b.WriteString(m.Name)
			b.WriteString("\n")
			b.WriteString(s)
			b.WriteString(";\n\n")
		}
	}
	return b.String()
}

func TestDDLGolden(t *testing.T) {
	opts := DDLOptions{Database: "tpflow", Retention: Retention{CallPanes: 400, Logs: 7, ResourcePanes: 30}}
	// One golden file per feature set: the versions that share one render
	// the same DDL.
	for v, file := range map[string]string{"18.16.1": "ddl-18.16.sql", "23.8.2.7": "ddl-20.1.sql", "25.3.1.2703": "ddl-20.1.sql"} {
		t.Run(v, func(t *testing.T) {
			ms, err := DDL(v, opts)
			if err != nil {
				t.Fatal(err)
			}
			got := renderDDL(ms)
			golden := filepath.Join("testdata", file)
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestDDLGolden -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("DDL for %s differs from %s (run with -update after checking):\n%s", v, golden, got)
			}
		})
	}
}

func TestDDLFeaturesByVersion(t *testing.T) {
	f := func(version string, want Features) {
		t.Helper()
		v, err := ParseServerVersion(version)
		if err != nil {
			t.Fatal(err)
		}
		if got := v.Features(); got != want {
			t.Errorf("Features(%s) = %+v, want %+v", version, got, want)
		}
	}
	f("18.16.1", Features{})
	f("19.2.9", Features{})
	f("19.3.4", Features{LowCardinality: true})
	f("19.6.1", Features{LowCardinality: true, TTL: true})
	f("19.10.1", Features{LowCardinality: true, TTL: true, Codecs: true})
	f("20.1.2.4", Features{LowCardinality: true, TTL: true, Codecs: true, DateTime64: true, AddColumnIfNotExists: true})
	f("25.3.1.2703", Features{LowCardinality: true, TTL: true, Codecs: true, DateTime64: true, AddColumnIfNotExists: true})
}

func TestDDLBaselineHasNoModernSyntax(t *testing.T) {
	ms, err := DDL("18.16.1", DDLOptions{Database: "tpflow", Retention: Retention{CallPanes: 30, Logs: 7}})
	if err != nil {
		t.Fatal(err)
	}
	text := renderDDL(ms)
	for _, bad := range []string{"LowCardinality", "TTL", "CODEC", "DateTime64"} {
		if strings.Contains(text, bad) {
			t.Errorf("18.16 DDL contains %s", bad)
		}
	}
	modern, err := DDL("25.3.1", DDLOptions{Database: "tpflow", Retention: Retention{Logs: 7}})
	if err != nil {
		t.Fatal(err)
	}
	mt := renderDDL(modern)
	if strings.Count(mt, "TTL ") != 1 || !strings.Contains(mt, "TTL toDateTime(ts) + INTERVAL 7 DAY") {
		t.Errorf("want exactly the logs TTL when only logs retention is set:\n%s", mt)
	}
}

func TestDDLVersionsAndNames(t *testing.T) {
	ms, err := DDL("18.16.1", DDLOptions{Database: "db1"})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		version uint32
		name    string
		table   string // every statement names it
	}{
		{1, "call_panes", "call_panes"}, {2, "logs", "logs"}, {3, "metric_samples", "metric_samples"},
		{4, "resource_panes", "resource_panes"}, {5, "alerts", "alerts"}, {6, "call_rollups", "call_rollups"},
		{8, "late_marks", "call_"}, {9, "logs_flags", "logs"}, {10, "operations", "operations"},
	}
	if len(ms) != len(want) {
		t.Fatalf("%d migrations, want %d", len(ms), len(want))
	}
	for i, m := range ms {
		if m.Version != want[i].version || m.Name != want[i].name {
			t.Errorf("migration %d = %d %s, want %d %s", i, m.Version, m.Name, want[i].version, want[i].name)
		}
		for _, s := range m.Statements {
			if !strings.Contains(s, "db1."+want[i].table) {
				t.Errorf("statement of %s does not name db1.%s: %s", m.Name, want[i].table, s)
			}
		}
	}
}

func TestDDLBadInput(t *testing.T) {
	for _, c := range []struct{ version, db, want string }{
		{"", "tpflow", "cannot parse ClickHouse version"},
		{"18", "tpflow", "cannot parse ClickHouse version"},
		{"x.y.z", "tpflow", "cannot parse ClickHouse version"},
		{"-1.2", "tpflow", "cannot parse ClickHouse version"},
		{"18.16.1", "", "database name"},
		{"18.16.1", "tp-flow", "database name"},
		{"18.16.1", "a; DROP TABLE x", "database name"},
	} {
		_, err := DDL(c.version, DDLOptions{Database: c.db})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("DDL(%q, %q) error = %v, want it to contain %q", c.version, c.db, err, c.want)
		}
	}
}
