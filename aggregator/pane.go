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
	vals   []uint32   // raw latencies not yet in cents
	cents  []Centroid // partial digest, sorted; nil until the buffer first overflows
	folded uint64     // weight in cents
}

func (p *openPane) reset(start int64) {
	p.start = start
	p.count, p.errors, p.sum, p.folded = 0, 0, 0, 0
	p.min, p.max = math.MaxUint32, 0
	p.vals = p.vals[:0]
	p.cents = p.cents[:0]
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
	cents []Centroid
	u32   []uint32
}

// fold moves the raw buffer into the partial digest.
func (p *openPane) fold(delta float64, w *work) {
	if len(p.vals) == 0 {
		return
	}
	w.u32 = sortUint32(p.vals, w.u32)
	if p.folded == 0 {
		p.cents = compressSorted(p.cents[:0], p.vals, delta)
	} else {
		chunk := compressSorted(w.cents[:0], p.vals, delta)
		merged := mergeSorted(make([]Centroid, 0, len(p.cents)+len(chunk)), p.cents, chunk)
		w.cents = chunk
		p.cents = recompress(merged, float64(p.folded)+float64(len(p.vals)), delta)
	}
	p.folded += uint64(len(p.vals))
	p.vals = p.vals[:0]
}

// pane is a final pane: its summary and digest. Its centroids are sorted by
// mean and owned by the pane.
type pane struct {
	start  int64 // unix ms
	count  uint64
	errors uint64
	sum    uint64
	min    uint32
	max    uint32
	cents  []Centroid
}

// close turns p into a final pane at compression delta. p's buffers stay
// with p for reuse.
func (p *openPane) close(delta float64, w *work) pane {
	out := pane{
		start: p.start, count: p.count, errors: p.errors,
		sum: p.sum, min: p.min, max: p.max,
	}
	if p.folded == 0 {
		// The common case: compress the sorted buffer straight into an
		// exactly sized slice; the open pane keeps no digest memory.
		w.u32 = sortUint32(p.vals, w.u32)
		w.cents = compressSorted(w.cents[:0], p.vals, delta)
		out.cents = slices.Clone(w.cents)
		return out
	}
	p.fold(delta, w)
	out.cents = slices.Clone(p.cents)
	return out
}

// compacted returns a copy of cs, of total weight n, re-compressed to delta
// in an exactly sized slice.
func compacted(cs []Centroid, n uint64, delta float64, w *work) []Centroid {
	w.cents = append(w.cents[:0], cs...)
	w.cents = recompress(w.cents, float64(n), delta)
	return slices.Clone(w.cents)
}

// addLate folds one late event into a final pane, for a correction.
func (f *pane) addLate(latencyUs uint32, ok bool, delta float64) {
	f.count++
	if !ok {
		f.errors++
	}
	f.sum += uint64(latencyUs)
	f.min = min(f.min, latencyUs)
	f.max = max(f.max, latencyUs)
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
	return quantile(f.cents, float64(f.min), float64(f.max), q)
}
