package aggregator

import (
	"math"
	"time"
)

// Progress is the event-time bookkeeping of an engine fed by partitions:
// per partition the highest event time, when it last sent events, the last
// offset read and, per unpublished pane, the first offset that fed it; from
// these the global watermark and the offsets that are safe to commit (see
// DESIGN.md). The call and resource engines share it. Progress is not safe
// for concurrent use: its engine's lock guards it.
type Progress struct {
	lateMs    int64
	futureMs  int64
	idle      time.Duration
	parts     map[int32]*Partition
	watermark int64
}

// Partition is one partition's progress.
type Partition struct {
	maxTs    int64     // highest event time seen, unix ms
	lastSeen time.Time // wall clock of the last message with events
	last     int64     // offset of the last message read
	first    map[int64]int64
	// held is, per rollup bucket not yet published, the first offset of
	// this partition that fed it: its panes were published, but the
	// bucket's rollup was not (see DESIGN.md).
	held map[int64]int64
	// hwm is the partition's high-water mark (the offset the next
	// produced message gets) as last reported; -1 before any report.
	hwm int64
	// fetchedAt is the wall clock of the last fetch report (Fetched); zero
	// when the consumer reports high-water marks with messages only.
	fetchedAt time.Time
	// fetchingSince is when the current run of fetch reports began: the
	// first report after none for idle_timeout (or ever).
	fetchingSince time.Time
}

// markerSlack is how many offsets past the last message a partition may
// still have and count as caught up. Collectors write in transactions, and
// a read_committed consumer never sees the commit marker that each
// transaction ends with: after a producer's last commit the high-water mark
// is one past its marker, so the last readable message is at least two
// below it, and one more for every other producer that committed after it.
// Up to markerSlack such markers are taken for caught up; a stalled
// consumer with a backlog that small and silent for idle_timeout leaves its
// events to the late path, which merges them exactly (DESIGN.md).
const markerSlack = 16

// caughtUp reports whether the partition's consumer has read everything up
// to the last reported high-water mark, less the commit markers a
// read_committed consumer cannot see (or none was reported).
func (p *Partition) caughtUp() bool { return p.hwm < 0 || p.last+1+markerSlack >= p.hwm }

// NewProgress returns the progress of an engine configured by cfg.
func NewProgress(cfg Config) *Progress {
	return &Progress{
		lateMs:    cfg.AllowedLateness.Milliseconds(),
		futureMs:  cfg.FutureBound().Milliseconds(),
		idle:      cfg.IdleTimeout,
		parts:     make(map[int32]*Partition),
		watermark: math.MinInt64,
	}
}

// Read records that the message at offset was read from partition; with
// events it also marks the partition active at now. It returns the
// partition, for the message's events.
func (g *Progress) Read(partition int32, offset int64, now time.Time, events bool) *Partition {
	p := g.part(partition)
	p.last = offset
	if events {
		p.lastSeen = now
	}
	return p
}

func (g *Progress) part(partition int32) *Partition {
	p := g.parts[partition]
	if p == nil {
		p = &Partition{maxTs: math.MinInt64, last: -1, hwm: -1, first: make(map[int64]int64), held: make(map[int64]int64)}
		g.parts[partition] = p
	}
	return p
}

// HighWaterMark records the partition's high-water mark as reported with a
// message (kafka's Message.HighWaterMark): until the consumer has read up to
// it, the partition has a backlog and is never idle.
func (g *Progress) HighWaterMark(partition int32, hwm int64) {
	g.part(partition).hwm = hwm
}

// Fetched records a fetch response of the partition at now, with its
// high-water mark, whether or not it held messages. A consumer that calls
// it makes the partition idle only while such responses keep coming, and
// only once they have come for idle_timeout: while fetches fail, the
// partition holds the watermark back, and after they fail for
// idle_timeout, the backlog the broker held meanwhile has idle_timeout to
// arrive before the partition counts as idle again.
func (g *Progress) Fetched(partition int32, hwm int64, now time.Time) {
	p := g.part(partition)
	p.hwm = hwm
	if p.fetchingSince.IsZero() || now.Sub(p.fetchedAt) >= g.idle {
		p.fetchingSince = now
	}
	p.fetchedAt = now
}

// idleAt reports whether the partition is idle at now (see Advance).
func (p *Partition) idleAt(now time.Time, idle time.Duration) bool {
	if now.Sub(p.lastSeen) < idle || !p.caughtUp() {
		return false
	}
	return p.fetchedAt.IsZero() || now.Sub(p.fetchedAt) < idle && now.Sub(p.fetchingSince) >= idle
}

// Event records an event time of the partition.
func (p *Partition) Event(ts int64) {
	if ts > p.maxTs {
		p.maxTs = ts
	}
}

// Holds records that the message at offset holds an event of the pane
// starting at start, which is not published yet.
func (p *Partition) Holds(start, offset int64) {
	if _, ok := p.first[start]; !ok {
		p.first[start] = offset
	}
}

// Advance moves the watermark to the minimum over active partitions of
// their highest event time − lateness; idle partitions do not count, and
// when all are idle it follows the wall clock (if there is anything to
// finalise: a partition or open panes). A partition is idle when it sent
// no events for the idle time-out and its consumer is caught up: it has
// read up to the last reported high-water mark, and, if the consumer
// reports fetches (Fetched), the last one came within the idle time-out.
// A partition's highest event time counts at most up to the wall clock +
// the future tolerance, so the watermark never passes the wall clock +
// future tolerance − lateness (DESIGN.md, "Time model"). It never moves
// back, and it returns the watermark (math.MinInt64 before any event).
func (g *Progress) Advance(now time.Time, openPanes bool) int64 {
	nowMs := now.UnixMilli()
	ceil := SatAdd(nowMs, g.futureMs)
	wm := int64(math.MaxInt64)
	active, withEvents := 0, 0
	for _, p := range g.parts {
		if p.maxTs == math.MinInt64 {
			continue
		}
		withEvents++
		if p.idleAt(now, g.idle) {
			continue
		}
		active++
		wm = min(wm, SatSub(min(p.maxTs, ceil), g.lateMs))
	}
	if active == 0 {
		// Partitions known only from fetch reports hold nothing to
		// finalise: a consumer that has just started (its fetches answered
		// before their first records) must not move the watermark to the
		// wall clock ahead of the backlog it is about to read.
		if withEvents == 0 && !openPanes {
			return g.watermark
		}
		wm = SatSub(nowMs, g.lateMs)
	}
	if wm > g.watermark {
		g.watermark = wm
	}
	return g.watermark
}

// Watermark returns the watermark as of the last Advance.
func (g *Progress) Watermark() int64 { return g.watermark }

// Published forgets the first offsets of the pane starting at start: it is
// being published and holds no offset back any more.
func (g *Progress) Published(start int64) {
	for _, p := range g.parts {
		delete(p.first, start)
	}
}

// PublishedInto is Published for a pane whose events also go into the
// rollup bucket starting at bucket: its first offsets keep holding the
// commit back, now for the bucket, until Released(bucket).
func (g *Progress) PublishedInto(start, bucket int64) {
	for _, p := range g.parts {
		if off, ok := p.first[start]; ok {
			p.HoldsRollup(bucket, off)
			delete(p.first, start)
		}
	}
}

// HoldsRollup records that the message at offset holds an event of the
// rollup bucket starting at bucket, which is not published yet.
func (p *Partition) HoldsRollup(bucket, offset int64) {
	if cur, ok := p.held[bucket]; !ok || offset < cur {
		p.held[bucket] = offset
	}
}

// Released forgets the offsets held for the rollup bucket starting at
// bucket: its rollup is being published.
func (g *Progress) Released(bucket int64) {
	for _, p := range g.parts {
		delete(p.held, bucket)
	}
}

// Commit returns, per partition, the offset below which every message read
// is in published panes only.
func (g *Progress) Commit() map[int32]int64 {
	commit := make(map[int32]int64, len(g.parts))
	for id, p := range g.parts {
		c := p.last + 1
		for _, off := range p.first {
			c = min(c, off)
		}
		for _, off := range p.held {
			c = min(c, off)
		}
		commit[id] = c
	}
	return commit
}

// Remove forgets a partition, e.g. after it was revoked, so that it no
// longer holds the watermark back.
func (g *Progress) Remove(partition int32) { delete(g.parts, partition) }
