package aggregator

import (
	"math"
	"math/big"
	"testing"
	"time"
)

// FuzzEngineModel drives an engine (shipped defaults) with random
// partitions, offsets, out-of-order and late events, clock jumps, idle
// gaps, restarts from the committed offsets and extreme timestamps, and
// checks it against a brute-force reference: every event ends up exactly
// once in a published pane or in the late output (merged into the stored
// pane, de-duplicated by its (partition, offset, index)), or is rejected
// with the reason the reference gives; never silently gone, never twice.
//
// The store is modelled as ClickHouse's replacing merge (highest version
// per key and pane start) plus the late path's merge. One case is exempt
// from "never gone", the one DESIGN.md records: an event accepted for the
// first time by an engine restarted after its pane was published (the
// fresh engine cannot know the pane is stored); for such panes only "never
// twice" is checked.
func FuzzEngineModel(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 10, 20, 6, 1, 0, 1, 2, 3, 4, 5, 6, 7, 3})
	f.Add([]byte{0, 0, 3, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 5, 200, 6, 7, 3, 1, 2, 3, 0, 9, 9, 9, 6})
	f.Add([]byte{1, 2, 3, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 5, 255, 6, 7, 0, 2, 1, 1, 16, 200, 1, 6, 7, 3})
	f.Add([]byte{2, 3, 3, 7, 1, 1, 8, 1, 1, 4, 1, 1, 6, 7, 2, 6, 7, 1, 5, 0, 9, 250, 2, 6})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1200 { // 300 operations use at most ~1 200 bytes
			t.Skip()
		}
		runEngineModel(t, data)
	})
}

type fuzzID struct {
	part int32
	off  int64
	idx  int
}

type fuzzEvent struct {
	key, ts   int64 // key index, event time
	lat       uint32
	accepted  bool // not rejected at some ingest
	lastRej   bool // rejected at its latest ingest
	firstInc  int  // incarnation of its first acceptance
	lateTaken bool // merged by the late path
}

type fuzzPane struct {
	key   Key
	start int64
}

type fuzzModel struct {
	t      *testing.T
	cfg    Config
	data   []byte
	clk    *clock
	maxNow int64
	e      *Engine
	inc    int
	log    [4][][]*fuzzEvent
	ids    map[*fuzzEvent]fuzzID
	commit [4]int64
	store  map[fuzzPane]uint64 // stored count (= version) per pane
	pubInc map[fuzzPane]int    // incarnation that first published a pane
	exempt map[fuzzPane]bool
}

var fuzzKeys = [...]Key{kA, kB, {System: "s", App: "x", Group: "g", IDC: "i", Method: "m"}}

func (m *fuzzModel) next() int64 {
	if len(m.data) == 0 {
		return 0
	}
	b := m.data[0]
	m.data = m.data[1:]
	return int64(b)
}

func runEngineModel(t *testing.T, data []byte) {
	m := &fuzzModel{t: t, cfg: DefaultConfig(), data: data, clk: &clock{t: t0},
		ids: map[*fuzzEvent]fuzzID{}, store: map[fuzzPane]uint64{}, pubInc: map[fuzzPane]int{}, exempt: map[fuzzPane]bool{}}
	m.maxNow = t0.UnixMilli()
	m.start()
	for ops := 0; len(m.data) > 0 && ops < 300; ops++ {
		switch op := m.next() % 8; op {
		case 0, 1, 2, 3:
			m.produce(int32(m.next() % 4))
		case 4:
			m.advance(time.Duration(m.next()) * 100 * time.Millisecond)
		case 5:
			m.advance(time.Duration(m.next()) * time.Second)
		case 6:
			m.flush()
		case 7:
			switch m.next() % 4 {
			case 0: // idle gap
				m.advance(2*m.cfg.IdleTimeout + time.Duration(m.next())*time.Second)
				m.flush()
			case 1: // the clock jumps back
				m.clk.t = m.clk.t.Add(-time.Duration(m.next()%30) * time.Second)
			case 2: // the clock jumps ahead
				m.advance(time.Hour)
			case 3:
				m.restart()
			}
		}
	}
	m.advance(24 * time.Hour)
	m.flush()
	m.flush()
	m.check()
}

func (m *fuzzModel) start() {
	e, err := New(m.cfg, WithClock(m.clk.now))
	if err != nil {
		m.t.Fatal(err)
	}
	m.e = e
}

func (m *fuzzModel) advance(d time.Duration) {
	m.clk.t = m.clk.t.Add(d)
	m.maxNow = max(m.maxNow, m.clk.t.UnixMilli())
}

// ts draws an event time around the clock, or an extreme one.
func (m *fuzzModel) ts() int64 {
	now := m.clk.t.UnixMilli()
	tol := m.cfg.FutureBound().Milliseconds()
	switch k := m.next() % 16; k {
	case 0:
		return math.MinInt64
	case 1:
		return math.MaxInt64
	case 2:
		return 0
	case 3:
		return 86_400_000 // 1970-01-02
	case 4:
		return time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	case 5:
		return now + tol + 1 + m.next()*1000
	case 6:
		return now - m.cfg.MaxEventAge.Milliseconds() - 1 - m.next()*1000
	case 7:
		return math.MinInt64 + m.next()
	case 8:
		return math.MaxInt64 - m.next()
	case 9:
		return now - m.next()*m.next()*100 // up to ~1.8 h late
	default:
		return now - m.next()*300 + m.next()%10*1000 // mostly on time, up to 9 s ahead
	}
}

func (m *fuzzModel) produce(p int32) {
	n := 1 + m.next()%4
	var msg []*fuzzEvent
	for range n {
		msg = append(msg, &fuzzEvent{key: m.next() % 3, ts: m.ts(), lat: uint32(1 + m.next()), firstInc: -1})
	}
	off := int64(len(m.log[p]))
	m.log[p] = append(m.log[p], msg)
	for i, ev := range msg {
		m.ids[ev] = fuzzID{p, off, i}
	}
	m.ingest(p, off)
}

// reason is the reference: the accepted range computed with big integers
// from the documented bounds, not with the engine's code.
func (m *fuzzModel) reason(ts int64) Reason {
	now := big.NewInt(m.clk.t.UnixMilli())
	x := big.NewInt(ts)
	lo := new(big.Int).Sub(now, big.NewInt(m.cfg.MaxEventAge.Milliseconds()))
	hi := new(big.Int).Add(now, big.NewInt(m.cfg.FutureBound().Milliseconds()))
	switch {
	case ts < 0 || ts > MaxValidTime:
		return ReasonInvalidTime
	case x.Cmp(hi) > 0:
		return ReasonTooFarFuture
	case x.Cmp(lo) < 0:
		return ReasonTooOld
	}
	return ReasonNone
}

func (m *fuzzModel) paneOf(ev *fuzzEvent) fuzzPane {
	return fuzzPane{fuzzKeys[ev.key], ev.ts - ev.ts%m.cfg.Pane.Milliseconds()}
}

func (m *fuzzModel) ingest(p int32, off int64) {
	msg := m.log[p][off]
	evs := make([]ev, len(msg))
	var want [NumReasons]int
	for i, x := range msg {
		evs[i] = ev{fuzzKeys[x.key], x.ts, x.lat, true}
		r := m.reason(x.ts)
		want[r]++
		x.lastRej = r != ReasonNone
		if r == ReasonNone {
			if x.firstInc < 0 {
				x.firstInc = m.inc
				if inc, ok := m.pubInc[m.paneOf(x)]; ok && inc < m.inc {
					m.exempt[m.paneOf(x)] = true
				}
			}
			x.accepted = true
		}
	}
	m.e.HighWaterMark(p, int64(len(m.log[p])))
	st := m.e.Ingest(p, off, batchOf(evs...))
	for _, r := range Reasons {
		if st.Rejected[r] != want[r] {
			m.t.Fatalf("message %d/%d: %d rejected as %s, the reference says %d (stats %+v)", p, off, st.Rejected[r], r, want[r], st)
		}
	}
	if n := st.Accepted + st.Late + st.LateOut + st.RejectedTotal(); n != len(msg) {
		m.t.Fatalf("message %d/%d: stats %+v account for %d of %d events", p, off, st, n, len(msg))
	}
}

func (m *fuzzModel) flush() {
	r := m.e.FlushAll()
	for _, ps := range r.Panes {
		if ps.Start < MinValidTime || ps.Start > MaxValidTime {
			m.t.Fatalf("pane of %v published with start %d", ps.Key, ps.Start)
		}
		if ps.Rollup {
			continue
		}
		id := fuzzPane{ps.Key, ps.Start}
		if _, ok := m.pubInc[id]; !ok {
			m.pubInc[id] = m.inc
		}
		if ps.Version > m.store[id] {
			m.store[id] = ps.Version
		}
	}
	for _, le := range r.Late {
		msgs := m.log[le.Partition]
		if le.Offset < 0 || le.Offset >= int64(len(msgs)) || le.Index < 0 || le.Index >= len(msgs[le.Offset]) {
			m.t.Fatalf("late event %+v names no produced event", le)
		}
		x := msgs[le.Offset][le.Index]
		if x.ts != le.TsUnixMs || fuzzKeys[x.key] != le.Key || x.lat != le.LatencyUs {
			m.t.Fatalf("late event %+v is not the produced one (%+v)", le, *x)
		}
		if x.lateTaken {
			continue // a re-delivery: the late path de-duplicates it
		}
		x.lateTaken = true
		id := m.paneOf(x)
		if _, ok := m.pubInc[id]; !ok {
			m.pubInc[id] = m.inc
		}
		m.store[id]++
	}
	for p, off := range r.Commit {
		if off > int64(len(m.log[p])) {
			m.t.Fatalf("commit %d of partition %d beyond its %d messages", off, p, len(m.log[p]))
		}
		if off >= 0 {
			m.commit[p] = off
		}
	}
	wm, _ := m.e.Watermark()
	if lim := m.maxNow + m.cfg.FutureBound().Milliseconds() - m.cfg.AllowedLateness.Milliseconds(); wm != math.MinInt64 && wm > lim {
		m.t.Fatalf("watermark %d passes the wall clock + future tolerance − lateness (%d)", wm, lim)
	}
}

// restart publishes and commits, then replays every partition from its
// committed offset into a fresh engine, the partitions interleaved.
func (m *fuzzModel) restart() {
	m.flush()
	m.inc++
	m.start()
	next := m.commit
	for more := true; more; {
		more = false
		for p := range int32(4) {
			if next[p] < int64(len(m.log[p])) {
				m.ingest(p, next[p])
				next[p]++
				more = true
			}
		}
	}
}

func (m *fuzzModel) check() {
	lo, hi := map[fuzzPane]uint64{}, map[fuzzPane]uint64{}
	for _, part := range m.log {
		for _, msg := range part {
			for _, x := range msg {
				if !x.accepted {
					continue
				}
				id := m.paneOf(x)
				hi[id]++
				if !x.lastRej {
					lo[id]++
				}
			}
		}
	}
	for id, got := range m.store {
		if got > hi[id] {
			m.t.Fatalf("pane %v@%d holds %d events, only %d were ever accepted: counted twice", id.key.Method, id.start, got, hi[id])
		}
	}
	for id, want := range lo {
		if m.exempt[id] {
			continue
		}
		if got := m.store[id]; got < want {
			m.t.Fatalf("pane %v@%d holds %d events, %d were accepted: events silently gone", id.key.Method, id.start, got, want)
		}
	}
}
