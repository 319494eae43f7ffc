package aggregator

import (
	"math"
	"slices"
)

// openPane accumulates one key's events for one pane that is not final yet.
//
// The hot path is one append of a 4-byte latency plus a few counters: the
// digest is built once, from exact sorted input, when the pane closes. Only
// a pane whose buffer reaches the raw buffer limit folds the buffer into a
// partial digest early, so memory per open pane stays bounded.
type openPane struct {
	start  int64 // unix ms, aligned to the pane length
	count  uint64
	errors uint64
	sum    uint64 // µs; exact
	min    uint32
	max    uint32
	vals   []uint32 // raw latencies not yet in the partial digest
	part   *partial // the partial digest; nil until the buffer first overflows
}

// partial is the digest an open pane folds its raw buffer into when the
// buffer reaches the raw buffer limit: rare, so it lives apart from the
// open pane and the key state stays small.
type partial struct {
	cents  []Centroid // sorted
	folded uint64     // weight in cents
}

func (p *openPane) reset(start int64) {
	p.start = start
	p.count, p.errors, p.sum = 0, 0, 0
	p.min, p.max = math.MaxUint32, 0
	p.vals = p.vals[:0]
	p.part = nil
}

// add records one event. It is the aggregator's innermost loop.
func (p *openPane) add(latencyUs uint32, ok bool) {
	p.count++
	if !ok {
		p.errors++
	}
	p.sum += uint64(latencyUs)
	if latencyUs < p.min {
		p.min = latencyUs
	}
	if latencyUs > p.max {
		p.max = latencyUs
	}
	p.vals = append(p.vals, latencyUs)
}

// work is reusable scratch memory for folding and closing panes.
type work struct {
	cents  []Centroid
	u32    []uint32
	gather []uint32 // a rollup's raw values (Engine.gather)
}

// fold moves the raw buffer into the partial digest.
func (p *openPane) fold(delta float64, w *work) {
	if len(p.vals) == 0 {
		return
	}
	w.u32 = sortUint32(p.vals, w.u32)
	if p.part == nil {
		p.part = &partial{cents: compressSorted(nil, p.vals, delta)}
	} else {
		pt := p.part
		chunk := compressSorted(w.cents[:0], p.vals, delta)
		merged := mergeSorted(make([]Centroid, 0, len(pt.cents)+len(chunk)), pt.cents, chunk)
		w.cents = chunk
		pt.cents = recompress(merged, float64(pt.folded)+float64(len(p.vals)), delta)
	}
	p.part.folded += uint64(len(p.vals))
	p.vals = p.vals[:0]
}

// pane is a final pane: its summary and digest. Its centroids are sorted by
// mean and owned by the pane. A pane of the window ring holds instead, while
// small, its exact values (raw, sorted; cents nil): 4 bytes a value instead
// of a centroid's 8, and exact quantiles (ringPane).
type pane struct {
	start  int64 // unix ms
	count  uint64
	errors uint64
	sum    uint64
	min    uint32
	max    uint32
	cents  []Centroid
	raw    []uint32
}

// ringRawPer is how many values per unit of window compression a ring pane
// keeps raw: up to 4 × window_compression values (200 by default) the raw
// values take no more memory than the pane's window digest would.
const ringRawPer = 4

// ringPane returns the copy of the final pane f that the window ring keeps:
// its exact values when f's digest is all single values and there are at
// most ringRawPer × delta of them, else its digest re-compressed to delta.
// f is not retained.
func ringPane(f pane, delta float64, w *work) pane {
	if float64(f.count) <= ringRawPer*delta && uint64(len(f.cents)) == f.count {
		raw := make([]uint32, len(f.cents))
		ok := true
		for i, c := range f.cents {
			raw[i], ok = singletonValue(c)
			if !ok {
				break
			}
		}
		if ok {
			f.cents, f.raw = nil, raw
			return f
		}
	}
	f.cents = compacted(f.cents, f.count, delta, w)
	f.raw = nil
	return f
}

// appendCentroids appends f's digest to dst: its centroids, or its raw
// values as single-value centroids.
func (f *pane) appendCentroids(dst []Centroid) []Centroid {
	if f.raw == nil {
		return append(dst, f.cents...)
	}
	for _, v := range f.raw {
		dst = append(dst, Centroid{Mean: float32(v), Weight: 1})
	}
	return dst
}

// digestCopy returns a copy of f's digest that the caller owns.
func (f *pane) digestCopy() []Centroid {
	return f.appendCentroids(make([]Centroid, 0, len(f.cents)+len(f.raw)))
}

// close turns p into a final pane at compression delta. p's buffers stay
// with p for reuse.
func (p *openPane) close(delta float64, w *work) pane {
	out := pane{
		start: p.start, count: p.count, errors: p.errors,
		sum: p.sum, min: p.min, max: p.max,
	}
	if p.part == nil {
		// The common case: compress the sorted buffer straight into an
		// exactly sized slice; the open pane keeps no digest memory.
		w.u32 = sortUint32(p.vals, w.u32)
		w.cents = compressSorted(w.cents[:0], p.vals, delta)
		out.cents = slices.Clone(w.cents)
		return out
	}
	p.fold(delta, w)
	out.cents = slices.Clone(p.part.cents)
	return out
}

// compacted returns a copy of cs, of total weight n, re-compressed to delta
// in an exactly sized slice.
func compacted(cs []Centroid, n uint64, delta float64, w *work) []Centroid {
	w.cents = append(w.cents[:0], cs...)
	w.cents = recompress(w.cents, float64(n), delta)
	return slices.Clone(w.cents)
}

// addLate folds one late event into a final pane, for a correction. A raw
// pane stays raw up to ringRawPer × delta values.
func (f *pane) addLate(latencyUs uint32, ok bool, delta float64) {
	f.count++
	if !ok {
		f.errors++
	}
	f.sum += uint64(latencyUs)
	f.min = min(f.min, latencyUs)
	f.max = max(f.max, latencyUs)
	if f.raw != nil || f.cents == nil {
		if float64(len(f.raw)+1) <= ringRawPer*delta {
			i, _ := slices.BinarySearch(f.raw, latencyUs)
			f.raw = slices.Insert(f.raw, i, latencyUs)
			return
		}
		f.cents, f.raw = f.digestCopy(), nil
	}
	c := Centroid{Mean: float32(latencyUs), Weight: 1}
	i, _ := slices.BinarySearchFunc(f.cents, c, func(a, b Centroid) int {
		if a.Mean < b.Mean {
			return -1
		}
		if a.Mean > b.Mean {
			return 1
		}
		return 0
	})
	f.cents = slices.Insert(f.cents, i, c)
	if float64(len(f.cents)) > 8*delta {
		f.cents = recompress(f.cents, float64(f.count), delta)
	}
}

// Quantile returns the q-quantile of the pane's values.
func (f *pane) quantile(q float64) float64 {
	if len(f.raw) > 0 {
		// Exact: the nearest-rank value, as quantile gives for singletons.
		rank := max(1, int(math.Ceil(q*float64(len(f.raw)))))
		return float64(f.raw[min(rank, len(f.raw))-1])
	}
	return quantile(f.cents, float64(f.min), float64(f.max), q)
}
