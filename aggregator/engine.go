// Package aggregator turns method-call events into per-key TP percentiles,
// traffic and latency over event-time tumbling panes and sliding windows.
//
// See DESIGN.md in this folder for the invariants: when a pane is final,
// when offsets may be committed, and why a pane may be published again.
package aggregator

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
)

// OtherMethod is the prefix of the methods that events of keys beyond the
// key cap fold into: OtherMethod + "/p" + the partition they were read from
// (OverflowMethod), so that the overflow panes of different members, which
// read different partitions, never share an identity in storage.
const OtherMethod = "__other__"

// OverflowMethod returns the overflow method of events read from partition.
func OverflowMethod(partition int32) string {
	return OtherMethod + "/p" + strconv.FormatInt(int64(partition), 10)
}

// IsOverflow reports whether method is an overflow method.
func IsOverflow(method string) bool {
	return method == OtherMethod || strings.HasPrefix(method, OtherMethod+"/p")
}

// Key identifies one aggregation series.
type Key struct {
	System, App, Group, IDC, Method string
}

// PaneStat is one final pane of one key, ready to publish. Its identity is
// (Key, Start); a higher Version replaces a lower one. Version is the pane's
// event count: a pane only ever grows, so a correction always outranks what
// it corrects, and a partial pane rebuilt from a replay after a restart
// never outranks the complete one already stored (see DESIGN.md).
type PaneStat struct {
	Key        Key
	Start      int64 // unix ms, aligned to PaneMs
	PaneMs     int64
	Version    uint64
	Count      uint64
	Errors     uint64
	SumUs      uint64
	MinUs      uint32
	MaxUs      uint32
	P50, P90   float64 // µs
	P99, P999  float64 // µs
	Centroids  []Centroid
	Correction bool // a re-publication caused by late events
	// Rollup marks a rollup pane: the merge of the key's panes over a
	// bucket of Config.Rollup (PaneMs is that length). Rollups are stored
	// apart (call_rollups) and are not panes of any sliding window.
	Rollup bool
}

// IngestStats counts what Ingest did with a batch's calls. Every call is
// counted once in Accepted (into an open pane), Late (a correction within
// the grace), LateOut (beyond the grace: handed to the late output) or
// Rejected; Overflow counts the accepted or late calls of fold keys.
type IngestStats struct {
	Accepted, Late, LateOut, Overflow int
	// Rejected counts, per Reason, the calls outside the accepted time
	// range (DESIGN.md, "Time model"); Rejected[ReasonNone] is unused.
	Rejected [NumReasons]int
}

// RejectedTotal returns the number of rejected calls.
func (s IngestStats) RejectedTotal() int {
	n := 0
	for _, r := range Reasons {
		n += s.Rejected[r]
	}
	return n
}

// LateEvent is a call whose pane's grace had ended when it arrived. The
// engine no longer owns that pane (DESIGN.md, "Owners of a pane"): the late
// path does. Owner: the aggregate role publishes these (aggregator/aggregate)
// and the store side merges them into the stored pane and rollup; the
// engine only hands them out, from the FlushAll that returns the commit
// offsets passing them, so they must be published before that commit.
// (Partition, Offset, Index) identifies the call across re-deliveries.
type LateEvent struct {
	Key       Key
	TsUnixMs  int64
	LatencyUs uint32
	Status    uint32
	OK        bool
	Partition int32
	Offset    int64
	Index     int // position of the call in its batch
	// Rollup says the event's rollup bucket is past the grace too, so the
	// late path merges it into the stored rollup as well; otherwise the
	// engine added it to the bucket it still holds.
	Rollup bool
}

// FlushResult is what FlushAll returns: the final panes (corrections and
// rollups included), the late events to hand to the late path, and the
// offsets that may be committed once both are published.
type FlushResult struct {
	Panes  []PaneStat
	Late   []LateEvent
	Commit map[int32]int64
}

// keyState is one key's panes. The fields the hot path touches come first
// and the ID is stored inline when short, so that recognising a key and
// finding its open pane touch as few cache lines as possible.
type keyState struct {
	idLen  int
	idArr  [inlineID]byte      // the ID when idLen <= inlineID
	idLong string              // the ID otherwise
	next   *keyState           // next key with the same hash
	open   [openSlots]openPane // indexed by Engine.slot
	other  bool                // a fold key of the key cap: every event is an overflow
	key    Key
	more   map[int64]*openPane // open panes whose slot was taken; rare
	ring   []pane              // final panes, ascending by start
	// corrected marks ring panes changed by late events since last flush.
	corrected []int64
	// rolls are the rollup buckets being built or open to corrections,
	// ascending by start.
	rolls []rollup
	// folds are, for a fold key fed by AddFinal, per ring pane start the
	// pane of each folded key, by key ID: redeliveries replace, not add.
	folds map[int64]map[string]foldPart
	// due is the final edge from which trimming may next change the key:
	// it is queued under it in Engine.trimDue while queued is set.
	due    int64
	queued bool
}

const inlineID = 80

// openSlots is the most open panes a key holds inline, in the same
// allocation as the key: the default 10 s pane and 30 s lateness use all
// 6 (lateness/pane + 3).
const openSlots = 6

func (ks *keyState) idIs(id []byte) bool {
	if ks.idLen != len(id) {
		return false
	}
	if ks.idLen <= inlineID {
		return string(ks.idArr[:ks.idLen]) == string(id)
	}
	return ks.idLong == string(id)
}

// Engine aggregates calls into panes and windows. Engine is safe for
// concurrent use.
type Engine struct {
	cfg      Config
	paneMs   int64
	lateMs   int64
	graceMs  int64
	retainMs int64  // how far behind the final edge ring panes are kept
	slots    uint64 // open-pane slots in use per key, at most openSlots
	now      func() time.Time
	log      *slog.Logger
	m        *metrics

	mu         sync.Mutex
	keys       map[uint64]*keyState // by hash of the key ID; collisions chain
	progress   *Progress
	pending    map[int64][]*keyState // pane start -> keys with that pane open
	corrected  []*keyState           // keys with corrections to publish
	finalEnd   int64                 // every pane ending at or before this is final
	watermark  int64
	resolved   []*keyState // per-batch series resolution, reused
	idBuf      []byte
	work       work
	seed       maphash.Seed
	nkeys      int
	labelCache []labelKey // per-batch label set resolution, reused
	otherFolds uint64

	rollMs      int64                 // rollup bucket length; 0: off
	holdOK      bool                  // ring panes may hold values for their bucket (rollup.held)
	rollPending map[int64][]*keyState // bucket start -> keys whose rollup is not emitted
	rollDirty   []*keyState           // keys with an emitted rollup changed by late events

	// trimDue queues the keys by the final edge from which trimming may
	// change them (keyState.due), so a flush trims only those.
	trimDue   map[int64][]*keyState
	trimSpare []*keyState // a processed list of trimDue, for reuse

	lateOut    []LateEvent // beyond the grace, for the next FlushAll
	otherName  string      // the overflow method of the batch being ingested
	otherNames map[int32]string
	rejects    rejectLog
}

// Option configures an Engine.
type Option func(*Engine)

// WithClock sets the wall clock, used for idle partitions and the accepted
// time range. Tests inject a fake one.
func WithClock(now func() time.Time) Option { return func(e *Engine) { e.now = now } }

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.log = l } }

// WithRegisterer registers the engine's metrics with r, named with
// DefaultMetricsPrefix.
func WithRegisterer(r prometheus.Registerer) Option { return WithMetrics(r, DefaultMetricsPrefix) }

// WithMetrics registers the engine's metrics with r, each named prefix +
// its name, for a role other than the aggregate role that runs an engine.
func WithMetrics(r prometheus.Registerer, prefix string) Option {
	return func(e *Engine) {
		e.m = newMetrics(prefix)
		e.m.register(r)
	}
}

// New returns an Engine for a valid cfg.
func New(cfg Config, opts ...Option) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid aggregator config: %w", err)
	}
	e := &Engine{
		cfg:     cfg,
		paneMs:  cfg.Pane.Milliseconds(),
		lateMs:  cfg.AllowedLateness.Milliseconds(),
		graceMs: cfg.Grace.Milliseconds(),
		now:     time.Now,
		log:     slog.New(slog.DiscardHandler),
		m:       newMetrics(DefaultMetricsPrefix),
		keys:    make(map[uint64]*keyState),
		seed:    maphash.MakeSeed(),
		pending: make(map[int64][]*keyState),
		rollMs:  cfg.Rollup.Milliseconds(),

		rollPending: make(map[int64][]*keyState),
		trimDue:     make(map[int64][]*keyState),
		otherNames:  make(map[int32]string),
	}
	e.retainMs = max(slices.Max(cfg.Windows).Milliseconds(), e.graceMs+e.paneMs)
	if e.rollMs > 0 {
		// The ring holds the raw values of a bucket's small panes until
		// the bucket is emitted (rollup.held), which needs up to 64 panes
		// a bucket.
		e.retainMs = max(e.retainMs, e.rollMs)
		e.holdOK = e.rollMs/e.paneMs <= 64
	}
	// Slots for the panes open at once: lateness/pane + 3, at most
	// openSlots; more go to the per-key map.
	e.slots = uint64(min(max(e.lateMs/e.paneMs+3, 1), openSlots))
	e.finalEnd = math.MinInt64
	e.watermark = math.MinInt64
	e.progress = NewProgress(cfg)
	for _, o := range opts {
		o(e)
	}
	return e, nil
}

// Config returns the engine's configuration.
func (e *Engine) Config() Config { return e.cfg }

// slot returns the open-pane slot of the pane starting at start.
func (e *Engine) slot(start int64) int64 { return int64(uint64(start/e.paneMs) % e.slots) }

// paneStart returns the start of ts's pane; it never wraps (alignDown).
func (e *Engine) paneStart(ts int64) int64 { return alignDown(ts, e.paneMs) }

// Ingest aggregates the calls of b, read from partition at offset. It does
// not retain b or anything that aliases it.
func (e *Engine) Ingest(partition int32, offset int64, b *codec.Batch) IngestStats {
	var st IngestStats
	if len(b.Calls) == 0 {
		e.mu.Lock()
		e.progress.Read(partition, offset, e.now(), false)
		e.mu.Unlock()
		return st
	}
	nowT := e.now()
	rng := e.cfg.Range(nowT.UnixMilli())
	lo, hi := rng.Lo, rng.Hi
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.progress.Read(partition, offset, nowT, true)
	e.otherName = e.otherNames[partition]
	if e.otherName == "" {
		e.otherName = OverflowMethod(partition)
		e.otherNames[partition] = e.otherName
	}
	e.resolve(b)
	limit := e.cfg.RawBufferLimit
	maxTs := int64(math.MinInt64)
	// The pane of the previous event: consecutive events mostly share it,
	// which saves the two divisions of aligning a time to a pane.
	curStart, curEnd, curSlot := int64(math.MinInt64), int64(math.MinInt64), int64(0)
	curLate := false
	for i := range b.Calls {
		c := &b.Calls[i]
		ts := c.TsUnixMs
		if ts < lo || ts > hi {
			// Outside the time model's range (DESIGN.md): rejected, and
			// nothing below (pane starts, the partition's maximum) sees it.
			r, off := rng.Check(ts)
			st.Rejected[r]++
			e.rejects.note(e, r, off, nowT, partition, offset, ts)
			continue
		}
		if ts >= curEnd || ts < curStart {
			curStart = e.paneStart(ts)
			curEnd = curStart + e.paneMs
			curSlot = e.slot(curStart)
			curLate = curEnd <= e.finalEnd
			if !curLate {
				p.Holds(curStart, offset)
			}
		}
		ks := e.resolved[c.Series]
		if ks.other {
			st.Overflow++
		}
		if curLate {
			e.late(ks, curStart, c, &st, p, offset, i, partition)
			continue
		}
		op := &ks.open[curSlot]
		if op.start != curStart {
			op = e.openPaneFor(ks, curStart, op)
		}
		op.add(c.LatencyUs, c.OK)
		if limit > 0 && len(op.vals) >= limit {
			op.fold(e.cfg.Compression, &e.work)
		}
		maxTs = max(maxTs, ts)
		st.Accepted++
	}
	p.Event(maxTs)
	e.m.eventsIn.Add(float64(st.Accepted))
	if st.Late > 0 {
		e.m.late.Add(float64(st.Late))
	}
	if st.LateOut > 0 {
		e.m.lateOut.Add(float64(st.LateOut))
	}
	for _, r := range Reasons {
		if st.Rejected[r] > 0 {
			e.m.rejected[r].Add(float64(st.Rejected[r]))
		}
	}
	if st.Overflow > 0 {
		e.m.overflow.Add(float64(st.Overflow))
	}
	e.m.liveKeys.Set(float64(e.nkeys))
	return st
}

// labelKey is a batch label set's key labels, resolved once per batch.
type labelKey struct {
	done                    bool
	system, app, group, idc string
}

// resolve maps every series of b to its key state, once per batch; each
// label set's key labels are looked up once.
func (e *Engine) resolve(b *codec.Batch) {
	e.resolved = e.resolved[:0]
	n := b.NumLabelSets()
	if cap(e.labelCache) < n {
		e.labelCache = make([]labelKey, n)
	}
	e.labelCache = e.labelCache[:n]
	clear(e.labelCache)
	for _, s := range b.Series {
		lk := &e.labelCache[s.Labels]
		if !lk.done {
			lk.done = true
			refs := b.LabelSet(s.Labels)
			for i := 0; i+1 < len(refs); i += 2 {
				switch b.Symbol(refs[i]) {
				case schemas.LabelSystem:
					lk.system = b.Symbol(refs[i+1])
				case schemas.LabelApp:
					lk.app = b.Symbol(refs[i+1])
				case schemas.LabelGroup:
					lk.group = b.Symbol(refs[i+1])
				case schemas.LabelIDC:
					lk.idc = b.Symbol(refs[i+1])
				}
			}
		}
		k := Key{System: lk.system, App: lk.app, Group: lk.group, IDC: lk.idc, Method: b.Symbol(s.Method)}
		e.resolved = append(e.resolved, e.keyFor(k))
	}
}

// lookup returns the key state whose ID is e.idBuf, and the ID's hash.
func (e *Engine) lookup() (*keyState, uint64) {
	h := maphash.Bytes(e.seed, e.idBuf)
	for ks := e.keys[h]; ks != nil; ks = ks.next {
		if ks.idIs(e.idBuf) {
			return ks, h
		}
	}
	return nil, h
}

// keyFor returns the state of k, creating it (with copies of k's strings,
// which may alias a message buffer) or folding it into OtherMethod when the
// key cap is reached.
func (e *Engine) keyFor(k Key) *keyState {
	e.idBuf = appendKeyID(e.idBuf[:0], k)
	ks, h := e.lookup()
	if ks != nil {
		return ks
	}
	other := false
	if e.nkeys >= e.cfg.MaxKeys {
		other = true
		e.otherFolds++
		e.m.overflowKeys.Inc()
		k.Method = e.otherName
		e.idBuf = appendKeyID(e.idBuf[:0], k)
		if ks, h = e.lookup(); ks != nil {
			return ks
		}
		// The fold keys themselves are capped too: past twice the cap,
		// everything shares one key.
		if e.nkeys >= 2*e.cfg.MaxKeys {
			k = Key{System: OtherMethod, App: OtherMethod, Group: OtherMethod, IDC: OtherMethod, Method: e.otherName}
			e.idBuf = appendKeyID(e.idBuf[:0], k)
			if ks, h = e.lookup(); ks != nil {
				return ks
			}
		}
	}
	ks = &keyState{
		idLen: len(e.idBuf),
		next:  e.keys[h],
		key:   Key{System: clone(k.System), App: clone(k.App), Group: clone(k.Group), IDC: clone(k.IDC), Method: clone(k.Method)},
		other: other,
	}
	if len(e.idBuf) <= inlineID {
		copy(ks.idArr[:], e.idBuf)
	} else {
		ks.idLong = string(e.idBuf)
	}
	for i := range ks.open {
		ks.open[i].start = math.MinInt64
	}
	e.keys[h] = ks
	e.nkeys++
	// A key may end up with nothing (every event rejected): the next trim
	// looks at it.
	e.scheduleTrim(ks, SatAdd(e.finalEnd, 1))
	return ks
}

func clone(s string) string {
	if s == "" {
		return ""
	}
	return string([]byte(s))
}

// appendKeyID appends k's identity: each label length-prefixed, so that no
// label value can make two keys collide.
func appendKeyID(dst []byte, k Key) []byte {
	for _, v := range [...]string{k.System, k.App, k.Group, k.IDC, k.Method} {
		dst = binary.AppendUvarint(dst, uint64(len(v)))
		dst = append(dst, v...)
	}
	return dst
}

// openPaneFor returns the open pane of ks starting at start, opening it;
// slot is the pane's slot, which does not hold it.
//
// Invariant (one pane per key and start): a key has at most one open pane
// per start, either in its slot or in more, never both; so Flush emits each
// (key, pane start) at most once. A pane parked in more stays there until
// it closes, even once its slot frees: opening the slot for the same start
// would split the pane in two emissions. Flush checks this in tests
// (checkInvariants).
func (e *Engine) openPaneFor(ks *keyState, start int64, slot *openPane) *openPane {
	if x := ks.more[start]; x != nil {
		return x
	}
	if slot.start != math.MinInt64 {
		// The slot holds another open pane: the watermark is held back
		// far enough that more panes are open than slots.
		if ks.more == nil {
			ks.more = make(map[int64]*openPane)
		}
		x := &openPane{}
		x.reset(start)
		ks.more[start] = x
		e.pending[start] = append(e.pending[start], ks)
		return x
	}
	slot.reset(start)
	e.pending[start] = append(e.pending[start], ks)
	return slot
}

// late handles an event whose pane is already final: within the grace it
// corrects the pane, beyond it it goes to the late output. Both are
// counted.
func (e *Engine) late(ks *keyState, start int64, c *codec.Call, st *IngestStats, p *Partition, offset int64, index int, partition int32) {
	if SatAdd(start, e.paneMs+e.graceMs) <= e.watermark {
		st.LateOut++
		roll := e.rollMs > 0 && SatAdd(e.rollStart(start), e.rollMs+e.graceMs) <= e.watermark
		if e.rollMs > 0 && !roll {
			e.rollLate(ks, start, c, p, offset, nil)
		}
		e.lateOut = append(e.lateOut, LateEvent{
			Key: ks.key, TsUnixMs: c.TsUnixMs, LatencyUs: c.LatencyUs, Status: c.Status, OK: c.OK,
			Partition: partition, Offset: offset, Index: index, Rollup: roll,
		})
		return
	}
	st.Late++
	i, found := slices.BinarySearchFunc(ks.ring, start, func(p pane, s int64) int {
		return cmpInt64(p.start, s)
	})
	if !found {
		ks.ring = slices.Insert(ks.ring, i, pane{start: start, min: math.MaxUint32})
		e.scheduleRing(ks, start)
	}
	if e.rollMs > 0 {
		e.rollLate(ks, start, c, p, offset, &ks.ring[i])
	}
	ks.ring[i].addLate(c.LatencyUs, c.OK, e.cfg.WindowCompression)
	if !slices.Contains(ks.corrected, start) {
		if len(ks.corrected) == 0 {
			e.corrected = append(e.corrected, ks)
		}
		ks.corrected = append(ks.corrected, start)
	}
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// RemovePartition forgets a partition, e.g. after it was revoked, so that it
// no longer holds the watermark back. Its open panes stay open.
func (e *Engine) RemovePartition(partition int32) {
	e.mu.Lock()
	e.progress.Remove(partition)
	e.mu.Unlock()
}

// Flush is FlushAll for a caller without a late path: the late events are
// dropped and counted (late_dropped_events_total).
func (e *Engine) Flush() (panes []PaneStat, commit map[int32]int64) {
	r := e.FlushAll()
	if len(r.Late) > 0 {
		e.m.lateDropped.Add(float64(len(r.Late)))
	}
	return r.Panes, r.Commit
}

// FlushLate is FlushAll with its result spread over three values.
func (e *Engine) FlushLate() (panes []PaneStat, commit map[int32]int64, late []LateEvent) {
	r := e.FlushAll()
	return r.Panes, r.Commit, r.Late
}

// FlushAll advances the watermark, finalises every pane it has passed and
// returns them, with pending corrections, in pane-start order, followed by
// the rollups (Rollup set) whose buckets became final or were corrected,
// and the late events taken since the last flush. Commit holds, per
// partition, the offset up to which (exclusive) every event is in a pane
// and a rollup that is returned now or was returned before, or in a late
// event returned now or before: once the returned panes and late events
// are published, committing these offsets loses nothing.
func (e *Engine) FlushAll() FlushResult {
	nowT := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	var panes []PaneStat
	e.watermark = e.progress.Advance(nowT, len(e.pending) > 0)
	// Corrections first: they belong to older panes.
	for _, ks := range e.corrected {
		for _, start := range ks.corrected {
			i, found := slices.BinarySearchFunc(ks.ring, start, func(p pane, s int64) int { return cmpInt64(p.start, s) })
			if !found {
				continue
			}
			panes = append(panes, e.stat(ks, &ks.ring[i], true, ks.ring[i].digestCopy()))
		}
		ks.corrected = ks.corrected[:0]
	}
	e.corrected = e.corrected[:0]

	newEnd := e.paneStart(e.watermark) // panes ending at or before this are final
	if e.watermark == math.MinInt64 {
		newEnd = math.MinInt64
	}
	advanced := newEnd > e.finalEnd
	if advanced {
		starts := make([]int64, 0, len(e.pending))
		for s := range e.pending {
			if SatAdd(s, e.paneMs) <= newEnd {
				starts = append(starts, s)
			}
		}
		slices.Sort(starts)
		// One PaneStat per closing pane: grown once, not by doubling.
		n := 0
		for _, s := range starts {
			n += len(e.pending[s])
		}
		panes = slices.Grow(panes, n)
		for _, s := range starts {
			for _, ks := range e.pending[s] {
				op := ks.openAt(s, e)
				if op == nil {
					continue
				}
				f := op.close(e.cfg.Compression, &e.work)
				e.release(ks, op)
				i, found := slices.BinarySearchFunc(ks.ring, s, func(p pane, x int64) int { return cmpInt64(p.start, x) })
				if found {
					// A late event created the pane first: merge.
					if e.rollMs > 0 {
						e.unhold(ks, &ks.ring[i])
						e.rollAdd(ks, &f, false)
					}
					ks.ring[i] = mergePanes(ks.ring[i], f, e.cfg.WindowCompression)
					panes = append(panes, e.stat(ks, &ks.ring[i], false, ks.ring[i].digestCopy()))
					continue
				}
				// The emitted pane owns the full digest; the ring keeps a
				// smaller one for windows (see DESIGN.md).
				panes = append(panes, e.stat(ks, &f, false, f.cents))
				rp := ringPane(f, e.cfg.WindowCompression, &e.work)
				if e.rollMs > 0 {
					e.rollAdd(ks, &f, rp.raw != nil)
				}
				ks.ring = slices.Insert(ks.ring, i, rp)
				e.scheduleRing(ks, s)
			}
			delete(e.pending, s)
			if e.rollMs > 0 {
				e.progress.PublishedInto(s, e.rollStart(s))
			} else {
				e.progress.Published(s)
			}
		}
		e.finalEnd = newEnd
	}
	if e.rollMs > 0 {
		// Before the trim: the ring holds values of the buckets emitted now.
		panes = e.emitRollups(panes)
	}
	if advanced {
		e.trim()
	}
	if checkInvariants {
		checkOneEmission(panes)
	}
	commit := e.progress.Commit()
	late := e.lateOut
	e.lateOut = nil
	e.m.panesEmitted.Add(float64(len(panes)))
	e.m.liveKeys.Set(float64(e.nkeys))
	if e.watermark != math.MinInt64 {
		e.m.watermarkLag.Set(float64(nowT.UnixMilli()-e.watermark) / 1000)
	}
	return FlushResult{Panes: panes, Late: late, Commit: commit}
}

// checkInvariants turns on the checks of invariants that cost time on the
// hot path; tests set it.
var checkInvariants = false

// checkOneEmission panics if one Flush returned two panes (or two rollups)
// of one key and start: the invariant of openPaneFor.
func checkOneEmission(panes []PaneStat) {
	type id struct {
		k      Key
		start  int64
		rollup bool
	}
	seen := make(map[id]bool, len(panes))
	for i := range panes {
		x := id{panes[i].Key, panes[i].Start, panes[i].Rollup}
		if seen[x] {
			panic(fmt.Sprintf("BUG: pane %+v start %d emitted twice by one Flush", x.k, x.start))
		}
		seen[x] = true
	}
}

// openAt returns the open pane of ks at start, or nil.
func (ks *keyState) openAt(start int64, e *Engine) *openPane {
	op := &ks.open[e.slot(start)]
	if op.start == start {
		return op
	}
	return ks.more[start]
}

// release frees an open pane's slot, keeping small buffers for reuse and
// letting big ones go so a burst does not pin memory.
func (e *Engine) release(ks *keyState, op *openPane) {
	if x := ks.more[op.start]; x == op {
		delete(ks.more, op.start)
		return
	}
	op.start = math.MinInt64
	if cap(op.vals) > 4096 {
		op.vals = nil
	}
	op.part = nil
}

// trim drops ring panes older than the retention, rollups past the grace
// and keys with nothing left. It looks only at the keys queued for the
// current final edge or an earlier one (scheduleTrim): every other key
// has nothing to drop.
func (e *Engine) trim() {
	var due []int64
	for t := range e.trimDue {
		if t <= e.finalEnd {
			due = append(due, t)
		}
	}
	slices.Sort(due)
	for _, t := range due {
		list := e.trimDue[t]
		delete(e.trimDue, t)
		for _, ks := range list {
			// A key queued again for an earlier edge has a newer entry.
			if ks.queued && ks.due == t {
				ks.queued = false
				e.trimKey(ks)
			}
		}
		clear(list)
		e.trimSpare = list[:0]
	}
	if checkInvariants {
		e.checkTrimmed()
	}
}

// trimKey drops what ks holds past the retention and deletes ks if nothing
// is left; otherwise it queues ks for its next trim.
func (e *Engine) trimKey(ks *keyState) {
	cut := SatSub(e.finalEnd, e.retainMs)
	n := 0
	for n < len(ks.ring) && ks.ring[n].start < cut {
		n++
	}
	if n > 0 {
		for j := range n {
			e.unhold(ks, &ks.ring[j])
		}
		ks.ring = slices.Delete(ks.ring, 0, n)
	}
	for st := range ks.folds {
		if st < cut {
			delete(ks.folds, st)
		}
	}
	if e.rollMs > 0 {
		ks.trimRolls(SatSub(e.finalEnd, e.rollMs+e.graceMs))
	}
	if len(ks.ring) == 0 && len(ks.corrected) == 0 && len(ks.rolls) == 0 && !ks.hasOpen() {
		e.nkeys--
		e.unlink(ks)
		return
	}
	if t, ok := e.nextTrim(ks); ok {
		e.scheduleTrim(ks, t)
	}
}

// nextTrim returns the final edge from which trimKey may next change ks,
// if any: the expiry of its oldest ring pane or fold, of each rollup
// (the next trim for one not emitted or changed since, as the old edge
// has passed), or the next trim for a key held only by corrections. A key
// held only by open panes needs none: closing them queues it.
func (e *Engine) nextTrim(ks *keyState) (int64, bool) {
	t, ok := int64(math.MaxInt64), false
	if len(ks.ring) > 0 {
		t, ok = SatAdd(ks.ring[0].start, e.retainMs+1), true
	}
	for st := range ks.folds {
		t, ok = min(t, SatAdd(st, e.retainMs+1)), true
	}
	next := SatAdd(e.finalEnd, 1)
	for i := range ks.rolls {
		r := &ks.rolls[i]
		rt := SatAdd(r.start, e.rollMs+e.graceMs)
		if (!r.emitted || r.dirty) && rt < next {
			rt = next
		}
		t, ok = min(t, rt), true
	}
	if !ok && len(ks.corrected) > 0 {
		t, ok = next, true
	}
	return t, ok
}

// scheduleTrim queues ks for the first trim at a final edge of t or later,
// unless it is queued for an earlier one.
func (e *Engine) scheduleTrim(ks *keyState, t int64) {
	if ks.queued && ks.due <= t {
		return
	}
	ks.queued, ks.due = true, t
	l, ok := e.trimDue[t]
	if !ok {
		l, e.trimSpare = e.trimSpare, nil
	}
	e.trimDue[t] = append(l, ks)
}

// scheduleRing queues ks for the expiry of its ring pane starting at start.
func (e *Engine) scheduleRing(ks *keyState, start int64) {
	e.scheduleTrim(ks, SatAdd(start, e.retainMs+1))
}

// unlink removes ks from the key table.
func (e *Engine) unlink(ks *keyState) {
	var h uint64
	if ks.idLen <= inlineID {
		h = maphash.Bytes(e.seed, ks.idArr[:ks.idLen])
	} else {
		h = maphash.String(e.seed, ks.idLong)
	}
	var prev *keyState
	for x := e.keys[h]; x != nil; prev, x = x, x.next {
		if x != ks {
			continue
		}
		switch {
		case prev != nil:
			prev.next = x.next
		case x.next != nil:
			e.keys[h] = x.next
		default:
			delete(e.keys, h)
		}
		return
	}
}

// checkTrimmed panics if a key holds something a trim at the current final
// edge drops, or is not queued for when it will: the invariant of trimDue.
func (e *Engine) checkTrimmed() {
	cut := SatSub(e.finalEnd, e.retainMs)
	e.each(func(ks *keyState) {
		bad := len(ks.ring) > 0 && ks.ring[0].start < cut
		for st := range ks.folds {
			bad = bad || st < cut
		}
		for _, r := range ks.rolls {
			bad = bad || (r.emitted && !r.dirty && r.start <= SatSub(e.finalEnd, e.rollMs+e.graceMs))
		}
		bad = bad || (len(ks.ring) == 0 && len(ks.corrected) == 0 && len(ks.rolls) == 0 && !ks.hasOpen())
		if t, ok := e.nextTrim(ks); ok && (!ks.queued || ks.due > t) {
			bad = true
		}
		if bad {
			panic(fmt.Sprintf("BUG: key %+v not trimmed or not queued at final edge %d", ks.key, e.finalEnd))
		}
	})
}

// each calls f for every key.
func (e *Engine) each(f func(*keyState)) {
	for _, head := range e.keys {
		for ks := head; ks != nil; ks = ks.next {
			f(ks)
		}
	}
}

func (ks *keyState) hasOpen() bool {
	if len(ks.more) > 0 {
		return true
	}
	for i := range ks.open {
		if ks.open[i].start != math.MinInt64 {
			return true
		}
	}
	return false
}

func mergePanes(a, b pane, delta float64) pane {
	out := pane{
		start: a.start,
		count: a.count + b.count, errors: a.errors + b.errors, sum: a.sum + b.sum,
		min: min(a.min, b.min), max: max(a.max, b.max),
	}
	out.cents = recompress(mergeSorted(nil, a.digestCopy(), b.digestCopy()), float64(out.count), delta)
	return out
}

// stat summarises f; the PaneStat gets cents, which the caller hands over.
func (e *Engine) stat(ks *keyState, f *pane, correction bool, cents []Centroid) PaneStat {
	return paneStat(ks.key, f, e.paneMs, correction, false, cents)
}

// paneStat summarises the pane f of key k, of length lengthMs; the
// PaneStat gets cents, which the caller hands over.
func paneStat(k Key, f *pane, lengthMs int64, correction, rollup bool, cents []Centroid) PaneStat {
	return PaneStat{
		Key: k, Start: f.start, PaneMs: lengthMs, Version: f.count,
		Count: f.count, Errors: f.errors, SumUs: f.sum, MinUs: f.min, MaxUs: f.max,
		P50: f.quantile(0.5), P90: f.quantile(0.9), P99: f.quantile(0.99), P999: f.quantile(0.999),
		Centroids:  cents,
		Correction: correction,
		Rollup:     rollup,
	}
}

// Watermark returns the global watermark (unix ms) and the end of the last
// final pane; both are math.MinInt64 before the first flush with events.
func (e *Engine) Watermark() (watermark, finalEnd int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.watermark, e.finalEnd
}

// LiveKeys returns the number of keys held.
func (e *Engine) LiveKeys() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.nkeys
}

// HighWaterMark records the high-water mark of partition reported with its
// latest message (kafka's Message.HighWaterMark): a partition whose consumer
// has not read up to it has a backlog and never counts as idle, so the
// watermark does not follow the wall clock past the backlog's events.
func (e *Engine) HighWaterMark(partition int32, hwm int64) {
	e.mu.Lock()
	e.progress.HighWaterMark(partition, hwm)
	e.mu.Unlock()
}

// Fetched records a fetch response of partition, with or without messages,
// and its high-water mark. A consumer that calls it after every fetch makes
// its partitions idle only while fetches succeed (see Progress.Advance).
func (e *Engine) Fetched(partition int32, hwm int64) {
	now := e.now()
	e.mu.Lock()
	e.progress.Fetched(partition, hwm, now)
	e.mu.Unlock()
}
