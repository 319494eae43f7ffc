package aggregator

import (
	"math"
	"time"
)

// The time model (DESIGN.md, "Time model"): every event time an engine
// takes is checked against one range before it touches a pane, a partition
// or the watermark; outside it the event is rejected with a reason and
// counted. Inside it every offset of a timestamp is saturating, so no value
// an event can carry wraps.

// MinValidTime and MaxValidTime bound the event times (unix ms) any engine
// accepts, whatever the wall clock: the stored pane start is a ClickHouse
// DateTime (unsigned seconds from 1970), and 2100-01-01 leaves every pane
// and rollup start, plus any lateness, grace or window, far inside it.
const (
	MinValidTime int64 = 0
	MaxValidTime int64 = 4102444800000 - 1 // 2099-12-31T23:59:59.999Z
)

// DefaultMaxFutureTolerance is the future tolerance used when
// Config.FutureTolerance is 0, unless a third of the allowed lateness is
// smaller.
const DefaultMaxFutureTolerance = 10 * time.Second

// Reason is why an event was rejected.
type Reason uint8

// The reasons an event is rejected. ReasonNone is an accepted event.
const (
	ReasonNone Reason = iota
	// ReasonTooOld: older than the wall clock − max_event_age, older than
	// any path (open pane, correction, late path) still takes.
	ReasonTooOld
	// ReasonTooFarFuture: ahead of the wall clock + future_tolerance.
	ReasonTooFarFuture
	// ReasonInvalidTime: outside [MinValidTime, MaxValidTime].
	ReasonInvalidTime
	// NumReasons is the number of reasons, ReasonNone included: the size
	// of arrays indexed by Reason.
	NumReasons
)

// String returns the reason's metric label.
func (r Reason) String() string {
	switch r {
	case ReasonTooOld:
		return "too_old"
	case ReasonTooFarFuture:
		return "too_far_future"
	case ReasonInvalidTime:
		return "invalid_time"
	}
	return "none"
}

// Reasons are the reasons an event may be rejected, in label order.
var Reasons = [...]Reason{ReasonTooOld, ReasonTooFarFuture, ReasonInvalidTime}

// TimeRange is the accepted event-time range [Lo, Hi] (unix ms, both
// inclusive) at one wall-clock instant.
type TimeRange struct {
	Lo, Hi int64
	now    int64
	future int64
}

// Range returns the accepted event-time range at the wall clock nowMs:
// [max(MinValidTime, now − max_event_age), min(MaxValidTime, now +
// future tolerance)]. A wall clock outside the valid range itself (a broken
// host clock) is clamped into it, so the range is never empty.
func (c Config) Range(nowMs int64) TimeRange {
	now := min(max(nowMs, MinValidTime), MaxValidTime)
	fut := c.FutureBound().Milliseconds()
	return TimeRange{
		Lo:     max(MinValidTime, SatSub(now, c.MaxEventAge.Milliseconds())),
		Hi:     min(MaxValidTime, SatAdd(now, fut)),
		now:    now,
		future: fut,
	}
}

// Check returns why ts is outside r and how far (ms, at least 1), or
// ReasonNone and 0.
func (r TimeRange) Check(ts int64) (Reason, int64) {
	switch {
	case ts < MinValidTime:
		return ReasonInvalidTime, SatSub(MinValidTime, ts)
	case ts > MaxValidTime:
		return ReasonInvalidTime, SatSub(ts, MaxValidTime)
	case ts > r.Hi:
		return ReasonTooFarFuture, ts - r.Hi
	case ts < r.Lo:
		return ReasonTooOld, r.Lo - ts
	}
	return ReasonNone, 0
}

// FutureBound returns the future tolerance in force: FutureTolerance, or
// when it is 0, a third of the allowed lateness capped at
// DefaultMaxFutureTolerance.
func (c Config) FutureBound() time.Duration {
	if c.FutureTolerance > 0 {
		return c.FutureTolerance
	}
	return min(DefaultMaxFutureTolerance, c.AllowedLateness/3)
}

// SatAdd returns a+b, saturated to the int64 range.
func SatAdd(a, b int64) int64 {
	s := a + b
	if (s > a) != (b > 0) {
		if b > 0 {
			return math.MaxInt64
		}
		return math.MinInt64
	}
	return s
}

// SatSub returns a−b, saturated to the int64 range.
func SatSub(a, b int64) int64 {
	s := a - b
	if (s < a) != (b > 0) {
		if b > 0 {
			return math.MinInt64
		}
		return math.MaxInt64
	}
	return s
}

// alignDown returns the start of the length-ms interval holding ts, for any
// ts: the result is ≤ ts and never wraps (for ts within one length of
// math.MinInt64 it saturates to math.MinInt64).
func alignDown(ts, length int64) int64 {
	r := ts % length
	if r < 0 {
		r += length
	}
	return SatSub(ts, r)
}

// rejectLogEvery is the least time between two log lines of one reason.
const rejectLogEvery = time.Minute

// rejectLog records rejected events: their distance in the metrics, and a
// log line per reason at most every rejectLogEvery, with an example and the
// number rejected since the previous line.
type rejectLog struct {
	last   [NumReasons]time.Time
	since  [NumReasons]int
	maxOff [NumReasons]int64
}

// note records one rejected event of partition at offset, dated ts, off by
// off ms for reason r.
func (l *rejectLog) note(e *Engine, r Reason, off int64, now time.Time, partition int32, offset, ts int64) {
	sec := float64(off) / 1000
	e.m.offByObs[r].Observe(sec)
	if off > l.maxOff[r] {
		l.maxOff[r] = off
		e.m.offByMaxG[r].Set(sec)
	}
	l.since[r]++
	if !l.last[r].IsZero() && now.Sub(l.last[r]) < rejectLogEvery && now.Sub(l.last[r]) >= 0 {
		return
	}
	e.log.Warn("rejected events outside the accepted time range", "reason", r.String(),
		"count", l.since[r], "example_ts_ms", ts, "off_by", time.Duration(min(off, math.MaxInt64/int64(time.Millisecond)))*time.Millisecond,
		"partition", partition, "offset", offset)
	l.last[r] = now
	l.since[r] = 0
}
