package aggregator

import (
	"math"
	"slices"
	"time"
)

// RollupLength is the length of a rollup bucket: every key's final panes
// are also merged into one rollup pane per 5 minutes (see DESIGN.md). The
// readers of call_rollups (dashboards, the query API) rely on this length.
const RollupLength = 5 * time.Minute

// rollup is one key's rollup bucket: the merge of its final panes, at the
// rollup compression, and whether it was emitted and changed since.
type rollup struct {
	pane
	emitted bool
	dirty   bool // changed by a late event since it was emitted
}

// absorb merges the final pane f (its summary and digest) into the rollup
// pane r, compressing the merged digest to delta. r's centroid slice is
// reused; f is not retained.
func (r *pane) absorb(f *pane, delta float64, w *work) {
	r.count += f.count
	r.errors += f.errors
	r.sum += f.sum
	r.min = min(r.min, f.min)
	r.max = max(r.max, f.max)
	w.cents = mergeSorted(w.cents[:0], r.cents, f.cents)
	w.cents = recompress(w.cents, float64(r.count), delta)
	r.cents = append(r.cents[:0], w.cents...)
}

// newRollupPane returns an empty rollup pane starting at start.
func newRollupPane(start int64) pane {
	return pane{start: start, min: math.MaxUint32}
}

// MergeRollup merges the final panes ps of one key into the rollup pane of
// the bucket of length d starting at start, at compression delta, exactly
// as the engine builds it: panes in the order given, each merged into the
// running digest and compressed. It is for tools that build rollups of
// stored panes (benchmarks, back-fills); ps must all lie in the bucket.
func MergeRollup(ps []PaneStat, start int64, d time.Duration, delta float64) PaneStat {
	var w work
	r := newRollupPane(start)
	for i := range ps {
		f := pane{
			start: ps[i].Start, count: ps[i].Count, errors: ps[i].Errors, sum: ps[i].SumUs,
			min: ps[i].MinUs, max: ps[i].MaxUs, cents: ps[i].Centroids,
		}
		r.absorb(&f, delta, &w)
	}
	var k Key
	if len(ps) > 0 {
		k = ps[0].Key
	}
	return paneStat(k, &r, d.Milliseconds(), false, true, slices.Clone(r.cents))
}
