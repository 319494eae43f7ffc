package aggregator

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// dist draws latencies in microseconds.
type dist struct {
	name string
	draw func(r *rand.Rand) uint32
}

var dists = []dist{
	{"lognormal(3,1) ms", func(r *rand.Rand) uint32 {
		return clampUs(math.Exp(3+r.NormFloat64()) * 1000)
	}},
	{"pareto(1.5) ms", func(r *rand.Rand) uint32 {
		return clampUs(1000 * math.Pow(1-r.Float64(), -1/1.5))
	}},
	{"bimodal 95% N(5,1) 5% N(500,50) ms", func(r *rand.Rand) uint32 {
		if r.Float64() < 0.95 {
			return clampUs((5 + r.NormFloat64()) * 1000)
		}
		return clampUs((500 + 50*r.NormFloat64()) * 1000)
	}},
}

func clampUs(v float64) uint32 {
	switch {
	case v < 1:
		return 1
	case v > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(math.Round(v))
}

var accuracyQuantiles = []struct {
	q      float64
	name   string
	maxErr float64
}{{0.5, "TP50", 0.01}, {0.9, "TP90", 0.01}, {0.99, "TP99", 0.01}, {0.999, "TP999", 0.02}}

// exactQuantile is the nearest-rank q-quantile: the ⌈q·n⌉-th smallest value.
func exactQuantile(sorted []uint32, q float64) float64 {
	k := int(math.Ceil(q * float64(len(sorted))))
	if k < 1 {
		k = 1
	}
	return float64(sorted[k-1])
}

// buildPane runs vals through the open-pane path exactly as the engine does.
func buildPane(vals []uint32, delta float64, limit int) pane {
	var p openPane
	p.reset(0)
	var w work
	for _, v := range vals {
		p.add(v, true)
		if limit > 0 && len(p.vals) >= limit {
			p.fold(delta, &w)
		}
	}
	return p.close(delta, &w)
}

// mergedQuantile merges panes the way windows and rollups do.
func mergedQuantile(panes []pane, q float64) float64 {
	var all []Centroid
	lo, hi := uint32(math.MaxUint32), uint32(0)
	for _, p := range panes {
		all = append(all, p.cents...)
		lo, hi = min(lo, p.min), max(hi, p.max)
	}
	sortCentroids(all)
	return quantile(all, float64(lo), float64(hi), q)
}

func relErr(got, want float64) float64 { return math.Abs(got-want) / want }

// TestAccuracy checks TP50/90/99 within 1 % and TP999 within 2 % of the exact
// nearest-rank values, for one pane of 1e6 samples and for a merge of 60
// panes of 1e4 samples, on three latency shapes. Run with -v for the table.
func TestAccuracy(t *testing.T) {
	if testing.Short() {
		t.Skip("1e6-sample accuracy runs take a few seconds")
	}
	cfg := DefaultConfig()
	if s := os.Getenv("ACC_DELTA"); s != "" {
		cfg.Compression, _ = strconv.ParseFloat(s, 64)
	}
	var table strings.Builder
	fmt.Fprintf(&table, "| distribution | case | TP50 | TP90 | TP99 | TP999 | centroids |\n|---|---|---|---|---|---|---|\n")
	for di, d := range dists {
		r := rand.New(rand.NewPCG(uint64(di)+1, 42))
		vals := make([]uint32, 1_000_000)
		for i := range vals {
			vals[i] = d.draw(r)
		}
		sorted := slices.Clone(vals)
		slices.Sort(sorted)

		one := buildPane(slices.Clone(vals), cfg.Compression, cfg.RawBufferLimit)
		var panes []pane
		for i := 0; i < 60; i++ {
			panes = append(panes, buildPane(slices.Clone(vals[i*10000:(i+1)*10000]), cfg.Compression, cfg.RawBufferLimit))
		}
		sorted60 := slices.Clone(vals[:600000])
		slices.Sort(sorted60)

		check := func(label string, got func(q float64) float64, exact []uint32, ncent int) {
			fmt.Fprintf(&table, "| %s | %s |", d.name, label)
			for _, aq := range accuracyQuantiles {
				e := relErr(got(aq.q), exactQuantile(exact, aq.q))
				fmt.Fprintf(&table, " %.3f %% |", 100*e)
				if e > aq.maxErr {
					t.Errorf("%s, %s: %s = %.0f µs, exact %.0f µs: error %.3f %% > %.1f %%",
						d.name, label, aq.name, got(aq.q), exactQuantile(exact, aq.q), 100*e, 100*aq.maxErr)
				}
			}
			fmt.Fprintf(&table, " %d |\n", ncent)
		}
		check("1 pane × 1e6", one.quantile, sorted, len(one.cents))
		n60 := 0
		for _, p := range panes {
			n60 += len(p.cents)
		}
		check("60 panes × 1e4 merged", func(q float64) float64 { return mergedQuantile(panes, q) }, sorted60, n60)
		// The in-memory copies that sliding windows merge.
		var w work
		ring := make([]pane, len(panes))
		nring := 0
		for i, p := range panes {
			ring[i] = p
			ring[i].cents = compacted(p.cents, p.count, cfg.WindowCompression, &w)
			nring += len(ring[i].cents)
		}
		check(fmt.Sprintf("60 window copies (compression %g) merged", cfg.WindowCompression),
			func(q float64) float64 { return mergedQuantile(ring, q) }, sorted60, nring)

		// Count, errors-free sum, min and max are exact.
		var sum uint64
		for _, v := range vals {
			sum += uint64(v)
		}
		if one.count != uint64(len(vals)) || one.sum != sum || one.min != sorted[0] || one.max != sorted[len(sorted)-1] {
			t.Errorf("%s: summary count=%d sum=%d min=%d max=%d, want %d %d %d %d",
				d.name, one.count, one.sum, one.min, one.max, len(vals), sum, sorted[0], sorted[len(sorted)-1])
		}
		var weight uint64
		for _, c := range one.cents {
			weight += uint64(c.Weight)
		}
		if weight != one.count {
			t.Errorf("%s: centroid weight %d != count %d", d.name, weight, one.count)
		}
	}
	t.Logf("relative errors at compression %g, raw buffer limit %d:\n%s", cfg.Compression, cfg.RawBufferLimit, table.String())
}
