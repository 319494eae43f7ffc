package aggregator

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/influxdata/tdigest"
)

// TestLibraryDigestBaseline measures github.com/influxdata/tdigest on the
// accuracy test's data at the engine's compression, for the comparison in
// DESIGN.md and RESULTS.md, and guards the pinned version: merged digests
// must keep their whole weight (v0.0.1 lost most of it).
func TestLibraryDigestBaseline(t *testing.T) {
	if testing.Short() {
		t.Skip("1e6-sample runs")
	}
	delta := DefaultConfig().Compression
	var table strings.Builder
	fmt.Fprintf(&table, "| distribution | case | TP50 | TP90 | TP99 | TP999 |\n|---|---|---|---|---|---|\n")
	for di, d := range dists {
		r := rand.New(rand.NewPCG(uint64(di)+1, 42))
		vals := make([]uint32, 1_000_000)
		one := tdigest.NewWithCompression(delta)
		for i := range vals {
			vals[i] = d.draw(r)
			one.Add(float64(vals[i]), 1)
		}
		merged := tdigest.NewWithCompression(delta)
		for i := 0; i < 60; i++ {
			p := tdigest.NewWithCompression(delta)
			for _, v := range vals[i*10000 : (i+1)*10000] {
				p.Add(float64(v), 1)
			}
			merged.AddCentroidList(p.Centroids(nil))
		}
		if c := merged.Count(); c != 600000 {
			t.Errorf("%s: merged library digest counts %v, want 600000: the pinned version must not lose weight", d.name, c)
		}
		sorted := slices.Clone(vals)
		slices.Sort(sorted)
		sorted60 := slices.Clone(vals[:600000])
		slices.Sort(sorted60)
		for _, c := range []struct {
			label  string
			td     *tdigest.TDigest
			sorted []uint32
		}{{"1 pane × 1e6", one, sorted}, {"60 × 1e4 merged", merged, sorted60}} {
			fmt.Fprintf(&table, "| %s | %s |", d.name, c.label)
			for _, q := range accuracyQuantiles {
				fmt.Fprintf(&table, " %.3f %% |", 100*relErr(c.td.Quantile(q.q), exactQuantile(c.sorted, q.q)))
			}
			table.WriteString("\n")
		}
	}
	t.Logf("influxdata/tdigest at compression %g, relative errors:\n%s", delta, table.String())
}
