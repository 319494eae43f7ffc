package aggregator

import (
	"bytes"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestTimeRangeCheck(t *testing.T) {
	cfg := DefaultConfig()
	now := t0.UnixMilli()
	rng := cfg.Range(now)
	tol := cfg.FutureBound().Milliseconds()
	age := cfg.MaxEventAge.Milliseconds()
	y2999 := time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	for _, c := range []struct {
		name  string
		ts    int64
		want  Reason
		offBy int64
	}{
		{"now", now, ReasonNone, 0},
		{"at the future tolerance", now + tol, ReasonNone, 0},
		{"past the future tolerance", now + tol + 1, ReasonTooFarFuture, 1},
		{"nine minutes ahead", now + 9*60_000, ReasonTooFarFuture, 9*60_000 - tol},
		{"at the max age", now - age, ReasonNone, 0},
		{"past the max age", now - age - 1, ReasonTooOld, 1},
		{"zero", 0, ReasonTooOld, now - age},
		{"1970", 86_400_000, ReasonTooOld, now - age - 86_400_000},
		{"2999", y2999, ReasonInvalidTime, y2999 - MaxValidTime},
		{"-1", -1, ReasonInvalidTime, 1},
		{"min int64", math.MinInt64, ReasonInvalidTime, math.MaxInt64},
		{"max int64", math.MaxInt64, ReasonInvalidTime, math.MaxInt64 - MaxValidTime},
	} {
		r, off := rng.Check(c.ts)
		if r != c.want || off != c.offBy {
			t.Errorf("%s: Check(%d) = %s off by %d, want %s off by %d", c.name, c.ts, r, off, c.want, c.offBy)
		}
	}
	// A host clock far outside the valid range still gives a valid range.
	for _, n := range []int64{math.MinInt64, -5, math.MaxInt64} {
		rg := cfg.Range(n)
		if rg.Lo < MinValidTime || rg.Hi > MaxValidTime || rg.Lo > rg.Hi {
			t.Errorf("Range(%d) = [%d, %d]", n, rg.Lo, rg.Hi)
		}
	}
}

func TestSaturatingArithmetic(t *testing.T) {
	for _, c := range []struct{ a, b, sum, diff int64 }{
		{math.MaxInt64, 1, math.MaxInt64, math.MaxInt64 - 1},
		{math.MinInt64, -1, math.MinInt64, math.MinInt64 + 1},
		{math.MinInt64, 30_000, math.MinInt64 + 30_000, math.MinInt64},
		{math.MaxInt64, -30_000, math.MaxInt64 - 30_000, math.MaxInt64},
		{0, math.MinInt64, math.MinInt64, math.MaxInt64},
		{-1, math.MinInt64, math.MinInt64, math.MaxInt64},
		{5, 3, 8, 2},
	} {
		if got := SatAdd(c.a, c.b); got != c.sum {
			t.Errorf("SatAdd(%d, %d) = %d, want %d", c.a, c.b, got, c.sum)
		}
		if got := SatSub(c.a, c.b); got != c.diff {
			t.Errorf("SatSub(%d, %d) = %d, want %d", c.a, c.b, got, c.diff)
		}
	}
	for _, ts := range []int64{math.MinInt64, math.MinInt64 + 3, -1, 0, 9_999, math.MaxInt64} {
		s := alignDown(ts, 10_000)
		if s > ts || (s != math.MinInt64 && ts-s >= 10_000) {
			t.Errorf("alignDown(%d) = %d", ts, s)
		}
	}
}

// TestRejectedEventsAreCountedAndLogged: a batch with events outside the
// range keeps its other events; each rejected one is counted under its
// reason with its distance, and logged at most once a minute per reason.
func TestRejectedEventsAreCountedAndLogged(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	clk := &clock{t: t0}
	cfg := DefaultConfig()
	e, err := New(cfg, WithClock(clk.now), WithRegisterer(reg), WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	now := t0.UnixMilli()
	st := e.Ingest(3, 7, batchOf(
		ev{kA, now, 1, true}, ev{kA, math.MinInt64, 1, true}, ev{kA, now + 9*60_000, 1, true},
		ev{kA, now - 1, 1, true}, ev{kA, now - 30*24*3600*1000, 1, true}, ev{kA, math.MaxInt64, 1, true}))
	want := IngestStats{Accepted: 2}
	want.Rejected[ReasonInvalidTime] = 2
	want.Rejected[ReasonTooFarFuture] = 1
	want.Rejected[ReasonTooOld] = 1
	if st != want {
		t.Fatalf("stats %+v, want %+v", st, want)
	}
	for r, n := range map[Reason]float64{ReasonInvalidTime: 2, ReasonTooFarFuture: 1, ReasonTooOld: 1} {
		if got := testutil.ToFloat64(e.m.rejected[r]); got != n {
			t.Errorf("rejected_events_total{reason=%q} = %v, want %v", r, got, n)
		}
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, mf := range mfs {
		if mf.GetName() == "tpflow_aggregate_rejected_off_by_seconds" {
			for _, m := range mf.Metric {
				n += m.GetHistogram().GetSampleCount()
			}
		}
	}
	if n != 4 {
		t.Errorf("off_by histogram holds %d events, want 4", n)
	}
	wantFut := float64(9*60_000-cfg.FutureBound().Milliseconds()) / 1000
	if got := testutil.ToFloat64(e.m.offByMaxG[ReasonTooFarFuture]); got != wantFut {
		t.Errorf("off_by max (too_far_future) = %v s, want %v", got, wantFut)
	}
	// One line per reason; the same reasons again within a minute log
	// nothing more, after a minute once more with the count since.
	if got := strings.Count(logs.String(), "rejected events"); got != 3 {
		t.Fatalf("%d log lines, want one per reason (3):\n%s", got, logs.String())
	}
	if !strings.Contains(logs.String(), "reason=too_far_future") || !strings.Contains(logs.String(), "partition=3 offset=7") {
		t.Errorf("log lines lack the reason or the example's place:\n%s", logs.String())
	}
	clk.t = t0.Add(30 * time.Second)
	e.Ingest(3, 8, batchOf(ev{kA, math.MinInt64, 1, true}))
	if got := strings.Count(logs.String(), "rejected events"); got != 3 {
		t.Fatalf("%d log lines after a second batch within a minute, want still 3", got)
	}
	clk.t = t0.Add(61 * time.Second)
	e.Ingest(3, 9, batchOf(ev{kA, math.MinInt64, 1, true}))
	// The line counts the rejections since the previous one: the second
	// invalid event of the first batch and those of both later batches.
	if got := strings.Count(logs.String(), "reason=invalid_time count=3"); got != 1 {
		t.Fatalf("no throttled line with the count since the last one:\n%s", logs.String())
	}
}

func TestFutureToleranceMustBeBelowLateness(t *testing.T) {
	cfg := DefaultConfig()
	cfg.FutureTolerance = cfg.AllowedLateness
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "future_tolerance") || !strings.Contains(err.Error(), "smaller than allowed_lateness") {
		t.Fatalf("future_tolerance = allowed_lateness: %v, want an error naming future_tolerance", err)
	}
	if _, err := New(cfg); err == nil {
		t.Fatal("New accepted future_tolerance = allowed_lateness")
	}
	cfg.FutureTolerance = cfg.AllowedLateness - time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg = DefaultConfig()
	if got := cfg.FutureBound(); got != 10*time.Second || got >= cfg.AllowedLateness {
		t.Errorf("default future bound %s, want 10s (< lateness %s)", got, cfg.AllowedLateness)
	}
	cfg.AllowedLateness = 3 * time.Second
	if got := cfg.FutureBound(); got != time.Second {
		t.Errorf("future bound for 3s lateness %s, want 1s", got)
	}
	cfg = DefaultConfig()
	cfg.MaxEventAge = cfg.Grace
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "max_event_age") {
		t.Errorf("max_event_age = grace: %v, want an error", err)
	}
}

// TestWatermarkNeverPassesWallClock: events at the very edge of the future
// tolerance, on every partition, keep the watermark below the wall clock,
// so an honest event now is never late, and a clock that jumps back does
// not let an old maximum pull the watermark ahead.
func TestWatermarkNeverPassesWallClock(t *testing.T) {
	e, clk := newTestEngine(t, nil)
	tol := e.cfg.FutureBound().Milliseconds()
	for s := int64(0); s < 100; s++ {
		clk.t = t0.Add(time.Duration(s) * time.Second)
		now := clk.t.UnixMilli()
		for p := int32(0); p < 4; p++ {
			e.Ingest(p, s, batchOf(ev{kB, now + tol, 1, true}))
		}
		e.Flush()
		if wm, _ := e.Watermark(); wm > now+tol-e.lateMs {
			t.Fatalf("watermark %d past now + tolerance − lateness %d", wm, now+tol-e.lateMs)
		}
		if st := e.Ingest(9, s, batchOf(ev{kA, now, 1, true})); st.Accepted != 1 {
			t.Fatalf("an honest event at the wall clock was not accepted: %+v", st)
		}
	}
}

// TestLateBeyondGraceGoesToTheLateOutput: an event whose pane's grace has
// ended comes out of FlushAll with what the late path needs, in the same
// result as the commit that passes it.
func TestLateBeyondGraceGoesToTheLateOutput(t *testing.T) {
	e, clk := newTestEngine(t, nil)
	base := t0.UnixMilli()
	clk.t = t0.Add(10 * time.Minute)
	e.Ingest(0, 0, batchOf(ev{kA, base + 10*60_000, 5, true}))
	e.FlushAll()
	b := batchOf(ev{kA, base + 10*60_000, 6, true}, ev{kB, base + 1_000, 77, false})
	b.Calls[1].Status = 503
	st := e.Ingest(0, 1, b)
	if st.LateOut != 1 || st.Accepted != 1 {
		t.Fatalf("stats %+v, want one accepted and one for the late output", st)
	}
	res := e.FlushAll()
	want := LateEvent{Key: kB, TsUnixMs: base + 1_000, LatencyUs: 77, Status: 503, OK: false, Partition: 0, Offset: 1, Index: 1}
	if len(res.Late) != 1 || res.Late[0] != want {
		t.Fatalf("late output %+v, want [%+v]", res.Late, want)
	}
	if again := e.FlushAll(); len(again.Late) != 0 {
		t.Fatalf("late event returned twice: %+v", again.Late)
	}
	// Flush, for callers without a late path, drops and counts them.
	e.Ingest(0, 2, batchOf(ev{kB, base + 2_000, 1, true}))
	e.Flush()
	if got := testutil.ToFloat64(e.m.lateDropped); got != 1 {
		t.Errorf("late_dropped_events_total = %v, want 1", got)
	}
}

// TestIdleNeedsCaughtUpAndFetching: a silent partition stops holding the
// watermark back only once its consumer read up to the high-water mark,
// and, for a consumer that reports fetches, while fetches keep succeeding.
func TestIdleNeedsCaughtUpAndFetching(t *testing.T) {
	e, clk := newTestEngine(t, nil)
	base := t0.UnixMilli()
	idle := e.cfg.IdleTimeout
	e.Fetched(0, 1)
	e.Ingest(0, 0, batchOf(ev{kA, base, 1, true}))
	// Fetches succeed and bring nothing: idle after the time-out.
	for s := time.Duration(0); s <= idle+time.Second; s += time.Second {
		clk.t = t0.Add(s)
		e.Fetched(0, 1)
	}
	e.Flush()
	if wm, _ := e.Watermark(); wm != clk.t.UnixMilli()-e.lateMs {
		t.Fatalf("caught-up, fetching, silent partition: watermark %d, want the wall clock − lateness %d", wm, clk.t.UnixMilli()-e.lateMs)
	}
	// Partition 1: fetches stop (a broker outage); it must hold the
	// watermark however long it lasts.
	e2, clk2 := newTestEngine(t, nil)
	e2.Fetched(1, 1)
	e2.Ingest(1, 0, batchOf(ev{kA, base, 1, true}))
	clk2.t = t0.Add(3 * idle)
	e2.Flush()
	if wm, _ := e2.Watermark(); wm != base-e2.lateMs {
		t.Fatalf("partition whose fetches stopped: watermark %d, want its events − lateness %d", wm, base-e2.lateMs)
	}
	// Fetches resume and show a backlog: still not idle.
	e2.Fetched(1, 50)
	clk2.t = t0.Add(4 * idle)
	e2.Flush()
	if wm, _ := e2.Watermark(); wm != base-e2.lateMs {
		t.Fatalf("partition with a backlog: watermark %d, want %d", wm, base-e2.lateMs)
	}
	// Fetches resume after an outage and find the partition caught up:
	// the backlog the broker held may still be on its way, so the
	// partition is idle only once fetches have succeeded for idle_timeout.
	e3, clk3 := newTestEngine(t, nil)
	e3.Fetched(2, 1)
	e3.Ingest(2, 0, batchOf(ev{kA, base, 1, true}))
	back := t0.Add(3 * idle)
	for s := time.Duration(0); s < idle; s += time.Second {
		clk3.t = back.Add(s)
		e3.Fetched(2, 1)
		e3.Flush()
		if wm, _ := e3.Watermark(); wm != base-e3.lateMs {
			t.Fatalf("%s after fetches resumed: watermark %d, want its events − lateness %d", s, wm, base-e3.lateMs)
		}
	}
	clk3.t = back.Add(idle)
	e3.Fetched(2, 1)
	e3.Flush()
	if wm, _ := e3.Watermark(); wm != clk3.t.UnixMilli()-e3.lateMs {
		t.Fatalf("idle_timeout of fetches after the outage: watermark %d, want the wall clock − lateness %d", wm, clk3.t.UnixMilli()-e3.lateMs)
	}
}

// TestFetchReportsBeforeRecordsDoNotMoveTheWatermark: a consumer that has
// just started hears fetch responses (with no high-water mark yet) before
// its first records arrive; the backlog it then reads, dated an hour back,
// must be on time, not late.
func TestFetchReportsBeforeRecordsDoNotMoveTheWatermark(t *testing.T) {
	e, clk := newTestEngine(t, nil)
	idle := e.cfg.IdleTimeout
	for s := time.Duration(0); s <= 2*idle; s += time.Second {
		clk.t = t0.Add(s)
		for p := int32(0); p < 4; p++ {
			e.Fetched(p, -1)
		}
		e.Flush()
	}
	if wm, _ := e.Watermark(); wm != math.MinInt64 {
		t.Fatalf("fetch reports alone moved the watermark to %d", wm)
	}
	hourBack := clk.t.Add(-time.Hour).UnixMilli()
	e.Ingest(0, 0, batchOf(ev{kA, hourBack, 1, true}))
	res := e.FlushAll()
	if len(res.Late) != 0 {
		t.Fatalf("the backlog's first event went to the late path: %+v", res.Late)
	}
	if wm, _ := e.Watermark(); wm != hourBack-e.lateMs {
		t.Fatalf("watermark %d after the backlog's first event, want its time − lateness %d", wm, hourBack-e.lateMs)
	}
}
