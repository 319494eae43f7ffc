package aggregator

import (
	"math"
	"slices"
)

// Centroid is one cluster of a t-digest: the mean of Weight values.
//
// Means are float32: latencies are whole microseconds below 2^32, and a
// float32 keeps them to 6e-8 relative, far inside the 1 % accuracy budget,
// while halving the memory of the per-key pane rings (see DESIGN.md).
type Centroid struct {
	Mean   float32
	Weight uint32
}

// maxWeight is the largest weight a centroid centred at cumulative rank
// position center (0..n) may have: 4·n·q·(1−q)/δ, the classic t-digest size
// bound, which keeps centroids near both tails small (singletons at the
// extreme tails) so that TP99 and TP999 stay accurate.
func maxWeight(center, n, delta float64) float64 {
	q := center / n
	return 4 * n * q * (1 - q) / delta
}

// compressSorted appends to dst the centroids of the sorted values vals at
// compression delta and returns it. The input is exact, so the digest is as
// good as a one-pass t-digest can be. Equal values are not merged beyond the
// size bound: a centroid of weight above one is read as a spread of values,
// and small panes stay all singletons, so their quantiles are exact.
func compressSorted(dst []Centroid, vals []uint32, delta float64) []Centroid {
	return compressSortedFrom(dst, vals, 0, float64(len(vals)), delta)
}

// compressSortedFrom is compressSorted for a run of sorted values that
// starts after before values of a sorted set of n: each centroid is bound
// by its position in the whole set.
func compressSortedFrom(dst []Centroid, vals []uint32, before, n, delta float64) []Centroid {
	i := 0
	for i < len(vals) {
		start := i
		sum := float64(vals[i])
		i++
		for i < len(vals) {
			w := float64(i - start + 1)
			if w > maxWeight(before+float64(start)+w/2, n, delta) {
				break
			}
			sum += float64(vals[i])
			i++
		}
		w := i - start
		dst = append(dst, Centroid{Mean: float32(sum / float64(w)), Weight: uint32(w)})
	}
	return dst
}

// recompress merges adjacent centroids of the sorted list cs in place under
// the size bound for their total weight n and returns the shortened list.
func recompress(cs []Centroid, n, delta float64) []Centroid {
	return recompressFrom(cs, 0, n, delta)
}

// recompressFrom is recompress for a run of centroids that starts after
// weight before of a digest of total weight n.
func recompressFrom(cs []Centroid, before, n, delta float64) []Centroid {
	if len(cs) == 0 {
		return cs
	}
	out := cs[:0]
	cur := cs[0]
	curSum := float64(cur.Mean) * float64(cur.Weight)
	// before is the weight of the centroids already written to out, and of
	// the digest's centroids ahead of cs.
	for _, c := range cs[1:] {
		w := float64(cur.Weight) + float64(c.Weight)
		if w <= maxWeight(before+w/2, n, delta) {
			cur.Weight += c.Weight
			curSum += float64(c.Mean) * float64(c.Weight)
			continue
		}
		cur.Mean = float32(curSum / float64(cur.Weight))
		before += float64(cur.Weight)
		out = append(out, cur)
		cur = c
		curSum = float64(c.Mean) * float64(c.Weight)
	}
	cur.Mean = float32(curSum / float64(cur.Weight))
	return append(out, cur)
}

// mergeSorted appends the merge of the sorted lists a and b to dst.
func mergeSorted(dst, a, b []Centroid) []Centroid {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if b[j].Mean < a[i].Mean {
			dst = append(dst, b[j])
			j++
		} else {
			dst = append(dst, a[i])
			i++
		}
	}
	dst = append(dst, a[i:]...)
	return append(dst, b[j:]...)
}

// sortCentroids sorts cs by mean.
func sortCentroids(cs []Centroid) {
	slices.SortFunc(cs, func(a, b Centroid) int {
		switch {
		case a.Mean < b.Mean:
			return -1
		case a.Mean > b.Mean:
			return 1
		}
		return 0
	})
}

// quantile returns the q-quantile of the sorted centroid list cs whose
// values lie in [lo, hi], as the nearest-rank value (the ⌈q·n⌉-th smallest)
// where the centroids around it are singletons, and by linear interpolation
// between centroid centres where they are not. It is computed once over all
// centroids, however many digests they came from: merging by re-compression
// first loses accuracy at the tails.
func quantile(cs []Centroid, lo, hi float64, q float64) float64 {
	if len(cs) == 0 {
		return math.NaN()
	}
	var n float64
	for _, c := range cs {
		n += float64(c.Weight)
	}
	rank := math.Ceil(q * n)
	if rank < 1 {
		rank = 1
	}
	// The target is the centre of the rank-th value: rank−0.5 on the
	// cumulative weight axis, where a singleton centroid's centre lies.
	t := rank - 0.5
	cum := 0.0
	prevCenter, prevMean := 0.0, lo
	for i, c := range cs {
		w := float64(c.Weight)
		center := cum + w/2
		if t <= center {
			if i == 0 {
				if w == 1 || t >= center {
					return float64(c.Mean)
				}
				// Between the minimum (at 0.5) and the first centre.
				return interpolate(0.5, lo, center, float64(c.Mean), t)
			}
			prev := cs[i-1]
			// Values of a singleton are exact; inside a heavier centroid
			// the values spread around its mean.
			if prev.Weight == 1 && c.Weight == 1 {
				return float64(c.Mean)
			}
			return interpolate(prevCenter, prevMean, center, float64(c.Mean), t)
		}
		cum += w
		prevCenter, prevMean = center, float64(c.Mean)
	}
	last := cs[len(cs)-1]
	if last.Weight == 1 {
		return float64(last.Mean)
	}
	return interpolate(prevCenter, prevMean, n-0.5, hi, t)
}

func interpolate(x0, y0, x1, y1, x float64) float64 {
	if x1 <= x0 {
		return y1
	}
	f := (x - x0) / (x1 - x0)
	if f < 0 {
		f = 0
	} else if f > 1 {
		f = 1
	}
	return y0 + f*(y1-y0)
}
