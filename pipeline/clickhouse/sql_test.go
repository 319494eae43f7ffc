package clickhouse

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tpflow/tpflow/schemas"
)

func TestSelectorFollowsTheKeyLabels(t *testing.T) {
	for i, l := range schemas.KeyLabels() {
		var s Selector
		if !s.Set(l.Name, "v") {
			t.Fatalf("Set(%q) = false", l.Name)
		}
		want := make([]string, len(schemas.KeyLabels()))
		want[i] = "v"
		if got := s.Values(); !slices.Equal(got, want) {
			t.Errorf("after Set(%q): Values() = %q, want %q", l.Name, got, want)
		}
		if v, ok := s.Get(l.Name); !ok || v != "v" {
			t.Errorf("Get(%q) = %q, %v", l.Name, v, ok)
		}
		if got, want := s.Matches(), []Match{{l.Name, "v"}}; !slices.Equal(got, want) {
			t.Errorf("Matches() = %v, want %v", got, want)
		}
	}
	var s Selector
	if s.Set("host", "h") || s != (Selector{}) {
		t.Errorf("Set(host) took a label that is not a key label: %+v", s)
	}
	s = Selector{System: "pay", Method: `a"b`}
	if got, want := s.String(), `system="pay" method="a\"b"`; got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
}

func TestSQLMatchRenderings(t *testing.T) {
	b := SQL{}
	b.Match(Selector{App: "a' OR 1=1 --", Group: "g"}.Matches())
	if got, want := b.String(), " AND app = ? AND group_name = ?"; got != want {
		t.Errorf("bound: %q, want %q", got, want)
	}
	if want := []any{"a' OR 1=1 --", "g"}; !slices.Equal(b.Args, want) {
		t.Errorf("bound args %q, want %q", b.Args, want)
	}
	m := SQL{Render: Macros}
	m.Match(Vars("system", "group"))
	if got, want := m.String(), " AND system IN (${system:singlequote}) AND group_name IN (${group:singlequote})"; got != want {
		t.Errorf("macros: %q, want %q", got, want)
	}
	if len(m.Args) != 0 {
		t.Errorf("macros bound %q", m.Args)
	}
	defer func() {
		if recover() == nil {
			t.Error("a label that is not a key label was rendered")
		}
	}()
	m.Match(Vars("host"))
}

// The two renderings of the read rule have the same shape: the same
// branches and label conditions, placeholders in one and macros in the other.
func TestCallRowsRenderingsAgree(t *testing.T) {
	from, to := time.Unix(1_800_000_100, 0), time.Unix(1_800_003_650, 0)
	b := SQL{Database: "db"}
	b.CallRows(CallRows{Columns: "pane_start, centroid_means", Match: Selector{System: "s", App: "a"}.Matches(),
		From: from, To: to, Rollups: true})
	m := SQL{Render: Macros}
	m.CallRows(CallRows{Columns: "pane_start, centroid_means", Match: Vars("system", "app"), Rollups: true, Gate: "g = 1"})

	bs, ms := b.String(), m.String()
	if n := strings.Count(bs, "?"); n != len(b.Args) {
		t.Errorf("bound: %d placeholders, %d arguments", n, len(b.Args))
	}
	// Range and labels of the rollups, of the panes and of the NOT IN set.
	want := []any{from.Unix(), to.Unix() - to.Unix()%RollupSeconds, "s", "a", from.Unix(), to.Unix(), "s", "a",
		from.Unix(), to.Unix() - to.Unix()%RollupSeconds, "s", "a"}
	if !slices.Equal(b.Args, want) {
		t.Errorf("bound args %v, want %v", b.Args, want)
	}
	if strings.Contains(ms, "?") || strings.Count(ms, "${app:singlequote}") != 3 || strings.Count(ms, "g = 1 AND") != 2 {
		t.Errorf("macros: %s", ms)
	}
	for _, s := range []string{bs, ms} {
		if strings.Count(s, "call_rollups") != 2 || strings.Count(s, "call_panes") != 1 ||
			strings.Count(s, "arrayMap(x -> round(x), centroid_means) AS centroid_means") != 1 ||
			!strings.Contains(s, "("+schemas.KeyColumns(-1)+", toDateTime(intDiv(toUInt32(pane_start), 300) * 300)) NOT IN") {
			t.Errorf("SQL %s", s)
		}
	}
	if !strings.Contains(bs, "db.call_panes") || strings.Contains(ms, ".call_panes") {
		t.Errorf("database: %s / %s", bs, ms)
	}

	p := SQL{}
	p.CallRows(CallRows{Columns: "pane_start", From: from, To: to, Source: true})
	if got, want := p.String(), "(SELECT pane_start, toUInt8(2) AS src FROM call_panes FINAL PREWHERE pane_start >= toDateTime(?) AND pane_start < toDateTime(?))"; got != want {
		t.Errorf("panes only: %s, want %s", got, want)
	}
}
