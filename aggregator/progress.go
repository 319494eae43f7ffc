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
}

// NewProgress returns the progress of an engine configured by cfg.
func NewProgress(cfg Config) *Progress {
	return &Progress{
		lateMs:    cfg.AllowedLateness.Milliseconds(),
		idle:      cfg.IdleTimeout,
		parts:     make(map[int32]*Partition),
		watermark: math.MinInt64,
	}
}

// Read records that the message at offset was read from partition; with
// events it also marks the partition active at now. It returns the
// partition, for the message's events.
func (g *Progress) Read(partition int32, offset int64, now time.Time, events bool) *Partition {
	p := g.parts[partition]
	if p == nil {
		p = &Partition{maxTs: math.MinInt64, last: -1, first: make(map[int64]int64), held: make(map[int64]int64)}
		g.parts[partition] = p
	}
	p.last = offset
	if events {
		p.lastSeen = now
	}
	return p
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
// their highest event time − lateness; partitions idle for the idle time-out
// do not count, and when all are idle it follows the wall clock (if there
// is anything to finalise: a partition or open panes). It never moves back,
// and it returns the watermark (math.MinInt64 before any event).
func (g *Progress) Advance(now time.Time, openPanes bool) int64 {
	wm := int64(math.MaxInt64)
	active := 0
	for _, p := range g.parts {
		if p.maxTs == math.MinInt64 || now.Sub(p.lastSeen) >= g.idle {
			continue
		}
		active++
		wm = min(wm, p.maxTs-g.lateMs)
	}
	if active == 0 {
		if len(g.parts) == 0 && !openPanes {
			return g.watermark
		}
		wm = now.UnixMilli() - g.lateMs
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
