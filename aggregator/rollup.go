package aggregator

import (
	"math"
	"slices"
	"time"

	"github.com/tpflow/tpflow/schemas/codec"
)

// RollupLength is the length of a rollup bucket: every key's final panes
// are also merged into one rollup pane per 5 minutes (see DESIGN.md). The
// readers of call_rollups (dashboards, the query API) rely on this length.
const RollupLength = 5 * time.Minute

// rollupHold is how much finer than rollup_compression a bucket's digest is
// kept while it is built: the emitted digest is compressed once, from the
// finer one, and keeps the finer centroids around the anchor quantiles.
const rollupHold = 4

// rollupAnchors are the quantiles dashboards, alerts and reports ask for.
// Around each one's rank the emitted digest keeps the centroids of the
// finer digest (singletons in the tails), so that a rollup read alone
// gives them as exactly as its panes did; anchorMargin is how many ranks
// on either side are kept too. See DESIGN.md for the measured effect.
var rollupAnchors = [...]float64{0.5, 0.9, 0.99, 0.999}

const anchorMargin = 2

// rollupRawLimit is how many raw values an engine's rollup bucket keeps in
// its own buffer (late events, and panes whose values the ring does not
// hold for it) before it folds them into its digest (rollup.bound): below
// it the raw values (4 bytes each) take less memory than the digest at
// rollupHold × the rollup compression (about 8 bytes a value while most
// values are singletons). MergeRollup, which holds a bucket's panes
// anyway, never folds before the end, as the engine's emission does not
// fold the values the ring held (DESIGN.md, "Rollups").
const rollupRawLimit = 1024

// rollup is one key's rollup bucket: its summary, the raw values of the
// panes merged into it that were all singletons (a small pane's digest is
// its sorted values), the digest (at rollupHold × the rollup compression)
// of the rest, and whether it was emitted and changed since.
//
// In the engine, a bucket not yet emitted does not copy the values of its
// small panes: their window ring copies hold them raw until the emission
// (held), which gathers them (Engine.gather). A ring pane that stops being
// raw, or leaves the ring, first hands its values to the bucket
// (Engine.unhold).
type rollup struct {
	pane             // summary; cents is the folded digest, sorted
	vals    []uint32 // raw values not in cents, in no order
	folded  uint64   // weight in cents
	held    uint64   // bit i: the ring pane i panes after start holds its values for the bucket
	emitted bool
	dirty   bool // changed by a late event since it was emitted
}

// singletonValue reports whether c is one exact µs value, and which.
func singletonValue(c Centroid) (uint32, bool) {
	m := c.Mean
	if c.Weight != 1 || !(m >= 0 && m < 1<<32) {
		return 0, false
	}
	v := uint32(m)
	return v, float32(v) == m
}

// absorb merges the final pane f (its summary and digest) into the bucket,
// at compression delta (the rollup compression × rollupHold): an
// all-singleton digest adds its values to the raw buffer, any other merges
// into the folded digest. f is not retained.
func (r *rollup) absorb(f *pane, delta float64, w *work) {
	r.addSummary(f)
	n := len(r.vals)
	for _, c := range f.cents {
		v, ok := singletonValue(c)
		if !ok {
			r.vals = r.vals[:n]
			r.mergeDigest(f.cents, delta, w)
			return
		}
		r.vals = append(r.vals, v)
	}
}

// addSummary adds f's count, errors, sum, minimum and maximum.
func (r *rollup) addSummary(f *pane) {
	r.count += f.count
	r.errors += f.errors
	r.sum += f.sum
	r.min = min(r.min, f.min)
	r.max = max(r.max, f.max)
}

// eventPane is the one-event pane of a late event, for addSummary.
func eventPane(latencyUs uint32, ok bool) pane {
	p := pane{count: 1, sum: uint64(latencyUs), min: latencyUs, max: latencyUs}
	if !ok {
		p.errors = 1
	}
	return p
}

// bound folds the raw values into the digest once they reach
// rollupRawLimit: the engine's bound on a bucket's raw buffer, which late
// events fill.
func (r *rollup) bound(delta float64, w *work) {
	if len(r.vals) >= rollupRawLimit {
		r.fold(delta, w)
	}
}

// mergeDigest merges the sorted digest cs into the folded digest.
func (r *rollup) mergeDigest(cs []Centroid, delta float64, w *work) {
	var wt uint64
	for _, c := range cs {
		wt += uint64(c.Weight)
	}
	r.folded += wt
	w.cents = mergeSorted(w.cents[:0], r.cents, cs)
	w.cents = recompress(w.cents, float64(r.folded), delta)
	r.cents = append(r.cents[:0], w.cents...)
}

// fold moves the raw values into the folded digest.
func (r *rollup) fold(delta float64, w *work) {
	if len(r.vals) == 0 {
		return
	}
	w.u32 = sortUint32(r.vals, w.u32)
	chunk := compressSorted(nil, r.vals, delta)
	r.vals = r.vals[:0]
	r.mergeDigest(chunk, delta, w)
}

// stat returns the bucket's rollup pane of key k, of length lengthMs, with
// its digest (of the raw values vals, which it reorders, and the folded
// digest) anchored and compressed to delta (the rollup compression). While
// nothing is folded the digest is the exact sorted values: the quantiles
// are read off them and the anchors kept are exact values
// (anchoredSorted); else the raw values are compressed at rollupHold ×
// delta and merged into the folded digest first.
func (r *rollup) stat(k Key, lengthMs int64, correction bool, vals []uint32, delta float64, w *work) PaneStat {
	p := r.pane
	w.u32 = sortUint32(vals, w.u32)
	if r.folded == 0 {
		p.raw = vals
		return paneStat(k, &p, lengthMs, correction, true, anchoredSorted(vals, delta))
	}
	if len(vals) > 0 {
		r.mergeDigest(compressSorted(nil, vals, delta*rollupHold), delta*rollupHold, w)
	}
	r.vals = r.vals[:0]
	p.cents = r.cents
	return paneStat(k, &p, lengthMs, correction, true, anchored(p.cents, p.count, delta))
}

// emit is stat for the engine's emission of the bucket, after which the
// bucket holds only what it published: the emitted digest, into which late
// events within the grace are merged for the correction, as the late path
// merges them into the stored rollup after it (DESIGN.md, "Rollups").
func (e *Engine) emit(ks *keyState, r *rollup, correction bool) PaneStat {
	ps := r.stat(ks.key, e.rollMs, correction, e.gather(ks, r), e.cfg.RollupCompression, &e.work)
	r.cents = append(r.cents[:0:0], ps.Centroids...)
	r.folded, r.vals, r.held = r.count, nil, 0
	return ps
}

// gather returns, in the engine's scratch, the raw values of bucket r of ks:
// its own and those its ring panes hold for it.
func (e *Engine) gather(ks *keyState, r *rollup) []uint32 {
	vals := append(e.work.gather[:0], r.vals...)
	if r.held != 0 {
		for i := range ks.ring {
			p := &ks.ring[i]
			if p.start >= r.start && p.start < r.start+e.rollMs && r.held&e.heldBit(p.start) != 0 {
				vals = append(vals, p.raw...)
			}
		}
	}
	e.work.gather = vals
	return vals
}

// heldBit is the bit of rollup.held of the pane starting at start.
func (e *Engine) heldBit(start int64) uint64 {
	return 1 << uint64((start-e.rollStart(start))/e.paneMs)
}

// rollFind returns ks's rollup bucket starting at b, or nil.
func (ks *keyState) rollFind(b int64) *rollup {
	i, found := slices.BinarySearchFunc(ks.rolls, b, func(r rollup, x int64) int { return cmpInt64(r.start, x) })
	if !found {
		return nil
	}
	return &ks.rolls[i]
}

// unhold hands the raw values of ring pane rp of ks to its rollup bucket if
// the ring holds them for it: before rp stops being raw, is replaced or
// leaves the ring.
func (e *Engine) unhold(ks *keyState, rp *pane) {
	if e.rollMs == 0 {
		return
	}
	r := ks.rollFind(e.rollStart(rp.start))
	if r == nil || r.held&e.heldBit(rp.start) == 0 {
		return
	}
	r.held &^= e.heldBit(rp.start)
	r.vals = append(r.vals, rp.raw...)
	r.bound(e.cfg.RollupCompression*rollupHold, &e.work)
}

// newRollup returns an empty rollup bucket starting at start.
func newRollup(start int64) rollup {
	return rollup{pane: pane{start: start, min: math.MaxUint32}}
}

// anchored returns the digest cs, of total weight n, compressed to delta
// except for the centroids that cover a rank within anchorMargin of an
// anchor quantile's rank (⌈q·n⌉, the nearest rank), which are kept as they
// are. The centroids between anchors are compressed under the size bound
// of their position in the whole digest.
func anchored(cs []Centroid, n uint64, delta float64) []Centroid {
	out := make([]Centroid, 0, min(len(cs), int(2*delta)+32))
	if n == 0 {
		return append(out, cs...)
	}
	var ranks [len(rollupAnchors)]uint64
	for i, q := range rollupAnchors {
		ranks[i] = max(1, uint64(math.Ceil(q*float64(n))))
	}
	var seg []Centroid
	var cum, segBefore uint64
	flush := func() {
		out = append(out, recompressFrom(seg, float64(segBefore), float64(n), delta)...)
		seg = seg[:0]
	}
	for _, c := range cs {
		lo, hi := cum+1, cum+uint64(c.Weight)
		keep := false
		for _, r := range ranks {
			if hi+anchorMargin >= r && lo <= r+anchorMargin {
				keep = true
				break
			}
		}
		if keep {
			flush()
			out = append(out, c)
			segBefore = hi
		} else {
			seg = append(seg, c)
		}
		cum = hi
	}
	flush()
	return out
}

// anchoredSorted is anchored for a digest of single values, the sorted
// values vals, without building their centroids: the values within
// anchorMargin ranks of an anchor's rank are kept as they are, the runs
// between compressed to delta under the size bound of their position.
func anchoredSorted(vals []uint32, delta float64) []Centroid {
	n := len(vals)
	out := make([]Centroid, 0, min(n, int(2*delta)+32))
	next := 0 // index of the first value not yet written
	for _, q := range rollupAnchors {
		rank := max(1, int(math.Ceil(q*float64(n))))
		lo, hi := max(rank-1-anchorMargin, next), min(rank-1+anchorMargin, n-1)
		if lo > hi {
			continue
		}
		out = compressSortedFrom(out, vals[next:lo], float64(next), float64(n), delta)
		for _, v := range vals[lo : hi+1] {
			out = append(out, Centroid{Mean: float32(v), Weight: 1})
		}
		next = hi + 1
	}
	return compressSortedFrom(out, vals[next:], float64(next), float64(n), delta)
}

// MergeRollup merges the final panes ps of one key into the rollup pane of
// the bucket of length d starting at start, at compression delta, exactly
// as the engine builds it: panes in the order given, the values of
// all-singleton panes kept raw (up to rollupRawLimit) and the others merged
// into a running digest; the whole is anchored and compressed to delta at
// the end. It
// is for tools that build rollups of stored panes (benchmarks, back-fills);
// ps must all lie in the bucket.
func MergeRollup(ps []PaneStat, start int64, d time.Duration, delta float64) PaneStat {
	var w work
	r := newRollup(start)
	for i := range ps {
		f := pane{
			start: ps[i].Start, count: ps[i].Count, errors: ps[i].Errors, sum: ps[i].SumUs,
			min: ps[i].MinUs, max: ps[i].MaxUs, cents: ps[i].Centroids,
		}
		r.absorb(&f, delta*rollupHold, &w)
	}
	var k Key
	if len(ps) > 0 {
		k = ps[0].Key
	}
	return r.stat(k, d.Milliseconds(), false, r.vals, delta, &w)
}

// rollStart returns the start of the rollup bucket holding time ts.
func (e *Engine) rollStart(ts int64) int64 {
	r := ts % e.rollMs
	if r < 0 {
		r += e.rollMs
	}
	return ts - r
}

// rollAt returns ks's rollup bucket starting at b, creating it (and
// queueing it for emission) when it does not exist.
func (e *Engine) rollAt(ks *keyState, b int64) *rollup {
	i, found := slices.BinarySearchFunc(ks.rolls, b, func(r rollup, x int64) int { return cmpInt64(r.start, x) })
	if !found {
		ks.rolls = slices.Insert(ks.rolls, i, newRollup(b))
		e.rollPending[b] = append(e.rollPending[b], ks)
		e.scheduleTrim(ks, SatAdd(b, e.rollMs+e.graceMs))
	}
	return &ks.rolls[i]
}

// rollAdd merges the just finalised pane f of ks into its rollup bucket;
// held says f's ring copy keeps f's values raw, for the bucket to gather
// at its emission.
func (e *Engine) rollAdd(ks *keyState, f *pane, held bool) {
	r := e.rollAt(ks, e.rollStart(f.start))
	if held && e.holdOK && !r.emitted {
		r.addSummary(f)
		r.held |= e.heldBit(f.start)
		return
	}
	r.absorb(f, e.cfg.RollupCompression*rollupHold, &e.work)
	r.bound(e.cfg.RollupCompression*rollupHold, &e.work)
}

// rollLate adds a late event, read from partition p at offset, of ks's
// final pane starting at start to the pane's rollup bucket; rp is the ring
// pane the event is about to be added to (nil beyond the pane's grace). A
// bucket not emitted yet holds the offset back until it is; an emitted one
// is re-emitted as a correction by the next Flush, which also returns the
// commit offsets that pass the event.
func (e *Engine) rollLate(ks *keyState, start int64, c *codec.Call, p *Partition, offset int64, rp *pane) {
	b := e.rollStart(start)
	r := e.rollAt(ks, b)
	ev := eventPane(c.LatencyUs, c.OK)
	keep := false // the ring pane keeps the value for the bucket
	if rp != nil && e.holdOK && !r.emitted && (rp.raw != nil || rp.cents == nil) {
		bit := e.heldBit(start)
		switch {
		case float64(len(rp.raw)+1) > ringRawPer*e.cfg.WindowCompression:
			e.unhold(ks, rp) // rp is about to become a digest
		case r.held&bit != 0 || rp.count == 0:
			keep = true
			r.held |= bit
		}
	}
	r.addSummary(&ev)
	if !keep {
		r.vals = append(r.vals, c.LatencyUs)
		r.bound(e.cfg.RollupCompression*rollupHold, &e.work)
	}
	if !r.emitted {
		p.HoldsRollup(b, offset)
		return
	}
	if !r.dirty {
		r.dirty = true
		e.rollDirty = append(e.rollDirty, ks)
	}
}

// emitRollups appends to panes the corrections of emitted rollups and the
// rollups of every bucket that the final edge has passed, and releases the
// offsets those buckets held.
func (e *Engine) emitRollups(panes []PaneStat) []PaneStat {
	for _, ks := range e.rollDirty {
		for i := range ks.rolls {
			if r := &ks.rolls[i]; r.dirty {
				r.dirty = false
				panes = append(panes, e.emit(ks, r, true))
				e.m.rollupsEmitted.Inc()
			}
		}
	}
	e.rollDirty = e.rollDirty[:0]
	var ready []int64
	for b := range e.rollPending {
		if b+e.rollMs <= e.finalEnd {
			ready = append(ready, b)
		}
	}
	slices.Sort(ready)
	n := 0
	for _, b := range ready {
		n += len(e.rollPending[b])
	}
	panes = slices.Grow(panes, n)
	for _, b := range ready {
		for _, ks := range e.rollPending[b] {
			i, found := slices.BinarySearchFunc(ks.rolls, b, func(r rollup, x int64) int { return cmpInt64(r.start, x) })
			if !found || ks.rolls[i].emitted {
				continue
			}
			r := &ks.rolls[i]
			r.emitted = true
			panes = append(panes, e.emit(ks, r, false))
			e.m.rollupsEmitted.Inc()
		}
		delete(e.rollPending, b)
		e.progress.Released(b)
	}
	return panes
}

// trimRolls drops the emitted, unchanged rollups of buckets ending at or
// before cut: late events can no longer reach them.
func (ks *keyState) trimRolls(cut int64) {
	n := 0
	for _, r := range ks.rolls {
		if r.emitted && !r.dirty && r.start <= cut {
			continue
		}
		ks.rolls[n] = r
		n++
	}
	clear(ks.rolls[n:])
	ks.rolls = ks.rolls[:n]
}
