package late

import (
	"math"
	"slices"
	"time"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/aggregator/backfill"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
)

// VersionBit is set in the version of every row the late merger writes.
// The aggregator's versions are event counts, far below it, so a pane the
// aggregator publishes again (a replay after a restart, which holds at
// most a part of the pane) never replaces a row the late path merged into;
// among merged rows the count decides, and it grows with every merge.
const VersionBit = uint64(1) << 62

// minPaneStart and maxPaneStart bound the pane starts ClickHouse's
// DateTime can store (unix ms).
const (
	minPaneStart = int64(0)
	maxPaneStart = int64(math.MaxUint32) * 1000
)

// floorTo returns the start of the length-long interval (ms) holding ts,
// and false when it does not fit a stored pane start.
func floorTo(ts, length int64) (int64, bool) {
	if ts < minPaneStart || ts >= maxPaneStart {
		return 0, false
	}
	return ts - ts%length, true
}

// acc collects the late events of one stored pane of one message, in the
// order of the message.
type acc struct {
	key     aggregator.Key
	startMs int64
	evs     []accEvent
}

type accEvent struct {
	lat       uint32
	ok        bool
	partition int32
	offset    int64
}

// fresh returns the events of a not yet in a row with the late mark
// partition/offset (-1, -1: none): an event read from the mark's calls
// partition at or below its offset is in the row already. It also returns
// the mark of the row once they are merged.
func (a *acc) fresh(partition int32, offset int64) (evs []accEvent, mp int32, mo int64) {
	mp, mo = partition, offset
	for _, e := range a.evs {
		if e.partition == partition && e.offset <= offset {
			continue
		}
		evs = append(evs, e)
		mp, mo = e.partition, e.offset
	}
	return evs, mp, mo
}

// eventsPane returns the pane of evs of key k, of length lengthMs: exact
// singleton centroids (equal latencies share one).
func eventsPane(k aggregator.Key, startMs, lengthMs int64, evs []accEvent) aggregator.PaneStat {
	lats := make([]uint32, len(evs))
	var errs uint64
	for i, e := range evs {
		lats[i] = e.lat
		if !e.ok {
			errs++
		}
	}
	slices.Sort(lats)
	ps := aggregator.PaneStat{Key: k, Start: startMs, PaneMs: lengthMs, Count: uint64(len(lats)), Errors: errs,
		MinUs: lats[0], MaxUs: lats[len(lats)-1]}
	for _, v := range lats {
		ps.SumUs += uint64(v)
		if n := len(ps.Centroids); n > 0 && ps.Centroids[n-1].Mean == float32(v) {
			ps.Centroids[n-1].Weight++
			continue
		}
		ps.Centroids = append(ps.Centroids, aggregator.Centroid{Mean: float32(v), Weight: 1})
	}
	return ps
}

// storedPane returns the pane of a stored row.
func storedPane(k aggregator.Key, r *clickhouse.MergedPane) aggregator.PaneStat {
	ps := aggregator.PaneStat{
		Key: k, Start: r.PaneStart.UnixMilli(), PaneMs: int64(r.PaneSeconds) * 1000,
		Count: r.Count, Errors: r.Errors, SumUs: uint64(math.Round(r.SumUs)),
		MinUs: clampU32(r.MinUs), MaxUs: clampU32(r.MaxUs),
	}
	ps.Centroids = make([]aggregator.Centroid, 0, len(r.CentroidMeans))
	for i, m := range r.CentroidMeans {
		if i >= len(r.CentroidWeights) {
			break
		}
		if w := math.Round(r.CentroidWeights[i]); w >= 1 {
			ps.Centroids = append(ps.Centroids, aggregator.Centroid{Mean: float32(m), Weight: uint32(min(w, math.MaxUint32))})
		}
	}
	return ps
}

func clampU32(f float64) uint32 {
	switch {
	case !(f > 0):
		return 0
	case f >= math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(math.Round(f))
}

// merge returns the row that holds stored (when ok) and evs, events of a's
// pane, with the late mark partition/offset, at compression delta.
func merge(stored *clickhouse.MergedPane, ok bool, a *acc, evs []accEvent, lengthMs int64, delta float64, partition int32, offset int64) clickhouse.MergedPane {
	fresh := eventsPane(a.key, a.startMs, lengthMs, evs)
	ps := []aggregator.PaneStat{fresh}
	if ok {
		ps = []aggregator.PaneStat{storedPane(a.key, stored), fresh}
	}
	m := aggregator.MergeRollup(ps, a.startMs, time.Duration(lengthMs)*time.Millisecond, delta)
	// The merged pane is stored as any pane is (backfill.RowOf), with the
	// late path's version bit and mark.
	row := clickhouse.MergedPane{PaneRow: backfill.RowOf(m), LatePartition: partition, LateOffset: offset}
	row.Version = VersionBit | m.Count
	return row
}
