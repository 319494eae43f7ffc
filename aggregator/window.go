package aggregator

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Window is the one window type: the statistics of the final panes of one
// key over a sliding window (Window, Windows: Key says which), or of the
// merge of many keys (MergeKeys: Key is zero, Keys says how many).
// Percentiles are computed once over the merged centroids of every pane it
// covers, never averaged. Its JSON form is the one /api/v1/windows serves
// (window_json.go).
type Window struct {
	Key           Key   // the key; zero for a merge of keys
	Start, End    int64 // unix ms; the window is [Start, End)
	Panes         int   // panes with events
	Count, Errors uint64
	SumUs         uint64
	MinUs, MaxUs  uint32
	P50, P90      float64 // µs
	P99, P999     float64 // µs
	QPS           float64 // Count / window length in seconds
	ErrorRate     float64 // Errors / Count
	AvgUs         float64
	Keys          int // keys merged
}

// Window returns key's statistics over the window of length d ending at the
// end of the last final pane. ok is false when the key has no event in it.
func (e *Engine) Window(k Key, d time.Duration) (ws Window, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.idBuf = appendKeyID(e.idBuf[:0], k)
	ks, _ := e.lookup()
	if ks == nil {
		return ws, false
	}
	acc := e.newAcc(d)
	acc.add(ks)
	return WithKey(acc.finish(), k), acc.ws.Count > 0
}

// MergeKeys merges the windows of every key for which match returns true, for
// example all methods of one app: TP is computed over the union of their
// centroids.
//
// The centroids are copied under the engine's lock and the quantiles
// computed after it is released.
func (e *Engine) MergeKeys(match func(Key) bool, d time.Duration) Window {
	e.mu.Lock()
	acc := e.newAcc(d)
	acc.cents = nil // not the engine's scratch: used unlocked
	e.each(func(ks *keyState) {
		if match(ks.key) {
			acc.add(ks)
		}
	})
	e.mu.Unlock()
	return acc.finish()
}

// Length is the window's length, End - Start.
func (w Window) Length() time.Duration { return time.Duration(w.End-w.Start) * time.Millisecond }

// WithKey returns w as the window of key k.
func WithKey(w Window, k Key) Window {
	w.Key = k
	return w
}

// Windows returns the window of length d of every key for which match
// returns true (every key when match is nil) that has events in it. It
// holds the engine's lock only to list the keys and, windowsChunk keys at a
// time, to copy their panes' centroids; the quantiles are computed with the
// lock released, so ingestion goes on during a query over many keys.
func (e *Engine) Windows(match func(Key) bool, d time.Duration) []Window {
	e.mu.Lock()
	var keys []*keyState
	e.each(func(ks *keyState) {
		if match == nil || match(ks.key) {
			keys = append(keys, ks)
		}
	})
	e.mu.Unlock()
	var out []Window
	accs := make([]windowAcc, 0, min(len(keys), windowsChunk))
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), windowsChunk)]
		keys = keys[len(chunk):]
		accs = accs[:0]
		e.mu.Lock()
		for _, ks := range chunk {
			// A key trimmed since it was listed has an empty ring.
			acc := e.newAcc(d)
			acc.cents = nil // not the engine's scratch: used unlocked
			acc.add(ks)
			if acc.ws.Count > 0 {
				acc.key = ks.key
				accs = append(accs, *acc)
			}
		}
		e.mu.Unlock()
		if testHookWindowsUnlocked != nil {
			testHookWindowsUnlocked()
		}
		for i := range accs {
			out = append(out, WithKey(accs[i].finish(), accs[i].key))
		}
	}
	return out
}

// windowsChunk is how many keys Windows copies per lock.
const windowsChunk = 256

// testHookWindowsUnlocked, when set by a test, runs while Windows computes
// quantiles with the lock released.
var testHookWindowsUnlocked func()

type windowAcc struct {
	ws    Window
	cents []Centroid
	key   Key
}

func (e *Engine) newAcc(d time.Duration) *windowAcc {
	end := e.finalEnd
	if end == math.MinInt64 {
		end = 0
	}
	return &windowAcc{
		ws:    Window{Start: end - d.Milliseconds(), End: end, MinUs: math.MaxUint32},
		cents: e.work.cents[:0],
	}
}

func (a *windowAcc) add(ks *keyState) {
	used := false
	for i := range ks.ring {
		p := &ks.ring[i]
		if p.start < a.ws.Start || p.start >= a.ws.End || p.count == 0 {
			continue
		}
		used = true
		a.ws.Panes++
		a.ws.Count += p.count
		a.ws.Errors += p.errors
		a.ws.SumUs += p.sum
		a.ws.MinUs = min(a.ws.MinUs, p.min)
		a.ws.MaxUs = max(a.ws.MaxUs, p.max)
		a.cents = p.appendCentroids(a.cents)
	}
	if used {
		a.ws.Keys++
	}
}

func (a *windowAcc) finish() Window {
	ws := a.ws
	if ws.Count == 0 {
		ws.MinUs = 0
		return ws
	}
	sortCentroids(a.cents)
	lo, hi := float64(ws.MinUs), float64(ws.MaxUs)
	ws.P50 = quantile(a.cents, lo, hi, 0.5)
	ws.P90 = quantile(a.cents, lo, hi, 0.9)
	ws.P99 = quantile(a.cents, lo, hi, 0.99)
	ws.P999 = quantile(a.cents, lo, hi, 0.999)
	secs := float64(ws.End-ws.Start) / 1000
	ws.QPS = float64(ws.Count) / secs
	ws.ErrorRate = float64(ws.Errors) / float64(ws.Count)
	ws.AvgUs = float64(ws.SumUs) / float64(ws.Count)
	return ws
}

// ErrPaneLength is returned by AddFinal for a pane whose length is not the
// engine's.
var ErrPaneLength = errors.New("pane length differs from the engine's")

// ErrRejected is returned by AddFinal for a pane whose start is outside the
// accepted time range (DESIGN.md, "Time model"); RejectedError says why.
var ErrRejected = errors.New("pane start outside the accepted time range")

// RejectedError is the error of a pane AddFinal rejected: its reason and
// distance (ms) outside the accepted range.
type RejectedError struct {
	Reason Reason
	OffBy  int64
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("%v: %s by %dms", ErrRejected, e.Reason, e.OffBy)
}

// Unwrap returns ErrRejected.
func (e *RejectedError) Unwrap() error { return ErrRejected }

// AddFinal puts a final pane computed elsewhere (read back from the stats
// topic) into the key's windows, so that an engine can serve windows and
// rollups of panes it did not aggregate itself, as the alert role does.
//
// It applies the time model to the pane's start, against the engine's wall
// clock: a pane starting outside the accepted range is rejected with a
// *RejectedError (so one far-future pane cannot move the window edge past
// every real pane). Redelivered panes are de-duplicated by (key, start,
// version): a pane replaces a lower version of itself and is ignored
// otherwise, also when the key cap folds several keys into one (each
// folded key's latest version counts once). Panes older than the windows
// and the grace are ignored. The window edge moves to the end of the newest
// pane added. AddFinal does not retain ps.
func (e *Engine) AddFinal(ps PaneStat) error {
	if ps.PaneMs != e.paneMs || ps.Start%e.paneMs != 0 {
		return fmt.Errorf("cannot add pane of %v at %d: %w (%d ms)", ps.Key, ps.Start, ErrPaneLength, e.paneMs)
	}
	nowT := e.now()
	if r, off := e.cfg.Range(nowT.UnixMilli()).Check(ps.Start); r != ReasonNone {
		e.m.rejected[r].Inc()
		e.mu.Lock()
		e.rejects.note(e, r, off, nowT, -1, -1, ps.Start)
		e.mu.Unlock()
		return fmt.Errorf("cannot add pane of %v at %d: %w", ps.Key, ps.Start, &RejectedError{Reason: r, OffBy: off})
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	end := ps.Start + e.paneMs
	if e.finalEnd != math.MinInt64 && end <= SatSub(e.finalEnd, e.retainMs) {
		return nil
	}
	src := string(appendKeyID(nil, ps.Key))
	e.otherName = OtherMethod // this engine's own fold keys, if its cap is hit
	ks := e.keyFor(ps.Key)
	f := ringPane(pane{
		start: ps.Start, count: ps.Count, errors: ps.Errors, sum: ps.SumUs, min: ps.MinUs, max: ps.MaxUs,
		cents: ps.Centroids,
	}, e.cfg.WindowCompression, &e.work)
	i, found := slices.BinarySearchFunc(ks.ring, ps.Start, func(p pane, s int64) int { return cmpInt64(p.start, s) })
	switch {
	case ks.other:
		// Panes of several keys folded by the key cap: each key's latest
		// version counts once, and the ring pane is their merge.
		if ks.folds == nil {
			ks.folds = make(map[int64]map[string]foldPart)
		}
		parts := ks.folds[ps.Start]
		if parts == nil {
			parts = make(map[string]foldPart)
			ks.folds[ps.Start] = parts
		}
		if old, ok := parts[src]; ok && old.version >= ps.Version {
			break
		}
		parts[src] = foldPart{version: ps.Version, p: f}
		m := pane{start: ps.Start, min: math.MaxUint32}
		for _, fp := range parts {
			m = mergePanes(m, fp.p, e.cfg.WindowCompression)
		}
		if found {
			e.unhold(ks, &ks.ring[i])
			ks.ring[i] = m
		} else {
			ks.ring = slices.Insert(ks.ring, i, m)
		}
	case !found:
		ks.ring = slices.Insert(ks.ring, i, f)
	case ps.Version > ks.ring[i].count:
		e.unhold(ks, &ks.ring[i])
		ks.ring[i] = f
	}
	e.scheduleRing(ks, ps.Start)
	if end > e.finalEnd {
		e.finalEnd = end
		e.trim()
	}
	e.m.liveKeys.Set(float64(e.nkeys))
	return nil
}

// foldPart is one folded key's pane in a fold key's ring pane (AddFinal).
type foldPart struct {
	version uint64
	p       pane
}
