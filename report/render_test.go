package report

import (
	"bytes"
	"encoding/csv"
	"math"
	"strings"
	"testing"
	"time"
)

// TestRenderEscapesAndUnknowns renders rows whose labels carry markup and
// whose numbers are unknown: nothing is injected into HTML or Markdown,
// and unknown numbers print as "–" (empty in CSV), never as NaN.
func TestRenderEscapesAndUnknowns(t *testing.T) {
	from := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	nan := math.NaN()
	row := Row{Depth: 1, System: `<script>alert(1)</script>`, App: "a|b*c_", IDCs: []string{"bj"},
		CPU: unknownResource(), Memory: unknownResource(), TP99Us: nan,
		Trend: []TrendPoint{{Start: from, TP99Us: nan, CPU: nan, Memory: nan}}}
	row.finish(0.7)
	rep := Report{From: from, To: from.Add(time.Hour), Depth: 1, Target: 0.7, Scope: `system="<b>"`, Rows: []Row{row}, Generated: from}

	var b bytes.Buffer
	if err := rep.HTML(&b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	if strings.Contains(page, "<script") || strings.Contains(page, `"<b>"`) || !strings.Contains(page, "&lt;script&gt;") || !strings.Contains(page, "&lt;b&gt;") {
		t.Errorf("HTML does not escape labels:\n%s", page)
	}
	if strings.Contains(page, "NaN") || !strings.Contains(page, "Replicas needed: n/a") {
		t.Errorf("HTML prints unknowns wrongly:\n%s", page)
	}

	b.Reset()
	if err := rep.Markdown(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	if !strings.Contains(md, `a\|b\*c\_`) || strings.Contains(md, "<script>") || strings.Contains(md, "NaN") {
		t.Errorf("Markdown does not escape or prints NaN:\n%s", md)
	}

	b.Reset()
	if err := rep.CSV(&b); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil || len(recs) != 2 {
		t.Fatalf("CSV: %v %q", err, recs)
	}
	for i, v := range recs[1] {
		if strings.Contains(v, "NaN") {
			t.Errorf("CSV %s = %q", csvHeader[i], v)
		}
	}
	if recs[1][1] != row.System || recs[1][2] != row.App {
		t.Errorf("CSV labels %q", recs[1][:3])
	}
}
