// Package resource turns resource metric samples (CPU, memory) into
// per-container event-time tumbling panes with count, sum, max and an exact
// 95th percentile, for the resource statistics rolled up system → app →
// group/IDC.
//
// It follows the pane and watermark rules of package aggregator (same Config:
// pane length, allowed lateness, grace, idle time-out, key cap), but a pane
// keeps its samples raw: a container reports a handful of samples per pane,
// so the exact percentile costs less than a digest would. See DESIGN.md in
// this folder.
package resource

import (
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

// OtherContainer is the prefix of the containers that samples of keys
// beyond the key cap fold into, per (system, app, group, idc, metric name):
// aggregator.OverflowMethod of the partition they were read from.
const OtherContainer = aggregator.OtherMethod

// Key identifies one resource series: one metric of one container.
type Key struct {
	System, App, Group, IDC, Host, Container, Name string
}

// Pane is one final pane of one key, ready to publish. Its identity is
// (Key, Start); a higher Version replaces a lower one. Version is the
// pane's sample count, for the reasons aggregator.PaneStat gives.
type Pane struct {
	Key        Key
	Start      int64 // unix ms, aligned to PaneMs
	PaneMs     int64
	Version    uint64
	Count      uint64
	Sum        float64 // summed in ascending order, so a pane's content fixes it
	Max        float64
	P95        float64 // nearest rank: the smallest sample ≥ 95 % of the samples
	Correction bool    // a re-publication caused by late samples
}

// Avg returns Sum / Count, or 0 for an empty pane.
func (p *Pane) Avg() float64 {
	if p.Count == 0 {
		return 0
	}
	return p.Sum / float64(p.Count)
}

// IngestStats counts what Ingest did with a batch's samples.
type IngestStats struct {
	Accepted, Late, Overflow, Counters int
	// Rejected counts, per reason, the samples outside the accepted time
	// range of aggregator's time model, and as too_old the samples whose
	// pane's grace is over: resources have no late path (DESIGN.md).
	Rejected [aggregator.NumReasons]int
}

// keyState holds one key's open panes and the final panes still within the
// grace for corrections.
type keyState struct {
	key   Key
	other bool                // a fold key of the key cap
	open  map[int64][]float64 // pane start -> samples
	final map[int64][]float64 // pane start -> sorted samples
	// corrected are final pane starts changed since the last Flush.
	corrected []int64
}

// Engine aggregates metric samples into resource panes. Engine is safe for
// concurrent use.
type Engine struct {
	cfg     aggregator.Config
	paneMs  int64
	graceMs int64
	now     func() time.Time
	log     *slog.Logger
	m       *metrics

	mu        sync.Mutex
	keys      map[Key]*keyState
	progress  *aggregator.Progress
	pending   map[int64][]*keyState // pane start -> keys with that pane open
	corrected []*keyState
	finalEnd  int64
	watermark int64
	labels    []labelKey // per-batch label set resolution, reused
}

type labelKey struct {
	done bool
	key  Key // without Name
}

// Option configures an Engine.
type Option func(*Engine)

// WithClock sets the wall clock, used for idle partitions and the future
// guard.
func WithClock(now func() time.Time) Option { return func(e *Engine) { e.now = now } }

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.log = l } }

// WithRegisterer registers the engine's metrics with r.
func WithRegisterer(r prometheus.Registerer) Option {
	return func(e *Engine) { e.m.register(r) }
}

// New returns an Engine for a valid cfg. Of cfg it uses Pane,
// AllowedLateness, Grace, IdleTimeout and MaxKeys, so that resource panes
// line up with call panes.
func New(cfg aggregator.Config, opts ...Option) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid resource aggregator config: %w", err)
	}
	e := &Engine{
		cfg:       cfg,
		paneMs:    cfg.Pane.Milliseconds(),
		graceMs:   cfg.Grace.Milliseconds(),
		now:       time.Now,
		log:       slog.New(slog.DiscardHandler),
		m:         newMetrics(),
		keys:      make(map[Key]*keyState),
		progress:  aggregator.NewProgress(cfg),
		pending:   make(map[int64][]*keyState),
		finalEnd:  math.MinInt64,
		watermark: math.MinInt64,
	}
	for _, o := range opts {
		o(e)
	}
	return e, nil
}

// Config returns the engine's configuration.
func (e *Engine) Config() aggregator.Config { return e.cfg }

func (e *Engine) paneStart(ts int64) int64 {
	r := ts % e.paneMs
	if r < 0 {
		r += e.paneMs
	}
	return aggregator.SatSub(ts, r)
}

// Ingest aggregates the metric samples of b, read from partition at offset.
// Counter samples are skipped and counted: a pane of a counter's raw values
// means nothing, its rate is for the producer to compute. Ingest does not
// retain b or anything that aliases it.
func (e *Engine) Ingest(partition int32, offset int64, b *codec.Batch) IngestStats {
	var st IngestStats
	nowT := e.now()
	rng := e.cfg.Range(nowT.UnixMilli())
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.progress.Read(partition, offset, nowT, len(b.Metrics) > 0)
	if len(b.Metrics) == 0 {
		return st
	}
	n := b.NumLabelSets()
	e.labels = slices.Grow(e.labels[:0], n)[:n]
	clear(e.labels)
	for i := range b.Metrics {
		s := &b.Metrics[i]
		if tpflowpb.MetricKind(s.Kind) == tpflowpb.MetricKind_METRIC_KIND_COUNTER {
			st.Counters++
			continue
		}
		ts := s.TsUnixMs
		if ts < rng.Lo || ts > rng.Hi {
			r, _ := rng.Check(ts)
			st.Rejected[r]++
			continue
		}
		lk := &e.labels[s.Labels]
		if !lk.done {
			lk.done = true
			lk.key = Key{
				System: b.Label(s.Labels, schemas.LabelSystem), App: b.Label(s.Labels, schemas.LabelApp),
				Group: b.Label(s.Labels, schemas.LabelGroup), IDC: b.Label(s.Labels, schemas.LabelIDC),
				Host: b.Label(s.Labels, schemas.LabelHost), Container: b.Label(s.Labels, schemas.LabelContainer),
			}
		}
		k := lk.key
		k.Name = b.Symbol(s.Name)
		ks, other := e.keyFor(k, partition)
		if other {
			st.Overflow++
		}
		start := e.paneStart(ts)
		if start+e.paneMs <= e.finalEnd {
			e.late(ks, start, s.Value, &st)
			continue
		}
		p.Holds(start, offset)
		vals, ok := ks.open[start]
		if !ok {
			e.pending[start] = append(e.pending[start], ks)
		}
		ks.open[start] = append(vals, s.Value)
		p.Event(ts)
		st.Accepted++
	}
	e.m.samples.Add(float64(st.Accepted))
	e.m.late.Add(float64(st.Late))
	for _, r := range aggregator.Reasons {
		if st.Rejected[r] > 0 {
			e.m.rejected.WithLabelValues(r.String()).Add(float64(st.Rejected[r]))
		}
	}
	e.m.overflow.Add(float64(st.Overflow))
	e.m.counters.Add(float64(st.Counters))
	e.m.liveKeys.Set(float64(len(e.keys)))
	return st
}

// keyFor returns the state of k, creating it; beyond the key cap it returns
// the fold key of k and true.
func (e *Engine) keyFor(k Key, partition int32) (*keyState, bool) {
	if ks := e.keys[k]; ks != nil {
		return ks, ks.other
	}
	other := false
	if len(e.keys) >= e.cfg.MaxKeys {
		k = Key{System: k.System, App: k.App, Group: k.Group, IDC: k.IDC, Container: aggregator.OverflowMethod(partition), Name: k.Name}
		if ks := e.keys[k]; ks != nil {
			return ks, true
		}
		other = true
	}
	// The batch's strings alias its buffer: copy them into the key.
	k = Key{
		System: clone(k.System), App: clone(k.App), Group: clone(k.Group), IDC: clone(k.IDC),
		Host: clone(k.Host), Container: clone(k.Container), Name: clone(k.Name),
	}
	ks := &keyState{key: k, other: other, open: make(map[int64][]float64), final: make(map[int64][]float64)}
	e.keys[k] = ks
	return ks, other
}

func clone(s string) string {
	if s == "" {
		return ""
	}
	return string([]byte(s))
}

// late adds a sample whose pane is final to the kept pane within the grace;
// after it the sample is rejected as too_old. A resource pane's p95 is the
// exact nearest rank of its raw samples, which the stored pane no longer
// holds, so no late path can merge a sample into it exactly (DESIGN.md).
func (e *Engine) late(ks *keyState, start int64, v float64, st *IngestStats) {
	if aggregator.SatAdd(start, e.paneMs+e.graceMs) <= e.watermark {
		st.Rejected[aggregator.ReasonTooOld]++
		return
	}
	st.Late++
	// A key without samples in that pane gets a new one, published as a
	// correction all the same.
	ks.final[start] = append(ks.final[start], v)
	if len(ks.corrected) == 0 {
		e.corrected = append(e.corrected, ks)
	}
	if !slices.Contains(ks.corrected, start) {
		ks.corrected = append(ks.corrected, start)
	}
}

// RemovePartition forgets a partition, e.g. after it was revoked, so that it
// no longer holds the watermark back. Its open panes stay open.
func (e *Engine) RemovePartition(partition int32) {
	e.mu.Lock()
	e.progress.Remove(partition)
	e.mu.Unlock()
}

// Flush advances the watermark, finalises every pane it has passed and
// returns them, with pending corrections, in pane-start order. commit holds,
// per partition, the offset up to which (exclusive) every sample is in a
// pane returned now or before: once the returned panes are published,
// committing these offsets loses nothing.
func (e *Engine) Flush() (panes []Pane, commit map[int32]int64) {
	nowT := e.now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if wm := e.progress.Advance(nowT, len(e.pending) > 0); wm > e.watermark {
		e.watermark = wm
		e.m.watermarkLag.Set(float64(nowT.UnixMilli()-wm) / 1000)
	}
	for _, ks := range e.corrected {
		slices.Sort(ks.corrected)
		for _, start := range ks.corrected {
			vals := ks.final[start]
			slices.Sort(vals)
			panes = append(panes, e.pane(ks, start, vals, true))
		}
		ks.corrected = ks.corrected[:0]
	}
	e.corrected = e.corrected[:0]

	newEnd := e.paneStart(e.watermark)
	if e.watermark == math.MinInt64 {
		newEnd = math.MinInt64
	}
	if newEnd > e.finalEnd {
		starts := make([]int64, 0, len(e.pending))
		for s := range e.pending {
			if s+e.paneMs <= newEnd {
				starts = append(starts, s)
			}
		}
		slices.Sort(starts)
		for _, s := range starts {
			for _, ks := range e.pending[s] {
				vals := ks.open[s]
				delete(ks.open, s)
				vals = append(ks.final[s], vals...)
				slices.Sort(vals)
				ks.final[s] = vals
				panes = append(panes, e.pane(ks, s, vals, false))
			}
			delete(e.pending, s)
			e.progress.Published(s)
		}
		e.finalEnd = newEnd
		e.trim()
	}
	commit = e.progress.Commit()
	e.m.panes.Add(float64(len(panes)))
	e.m.liveKeys.Set(float64(len(e.keys)))
	return panes, commit
}

// pane summarises the sorted samples vals of ks at start.
func (e *Engine) pane(ks *keyState, start int64, vals []float64, correction bool) Pane {
	p := Pane{Key: ks.key, Start: start, PaneMs: e.paneMs, Version: uint64(len(vals)), Count: uint64(len(vals)), Correction: correction}
	if len(vals) == 0 {
		return p
	}
	for _, v := range vals {
		p.Sum += v
	}
	p.Max = vals[len(vals)-1]
	p.P95 = vals[nearestRank(len(vals), 95)]
	return p
}

// nearestRank returns the index in n sorted values of the pct-th percentile
// by the nearest-rank method: ceil(pct·n/100) − 1, in integers so that no
// rounding moves it.
func nearestRank(n, pct int) int {
	return max((pct*n+99)/100-1, 0)
}

// trim drops final panes past their grace and keys with nothing left.
func (e *Engine) trim() {
	cut := e.finalEnd - e.graceMs - e.paneMs
	for k, ks := range e.keys {
		for s := range ks.final {
			if s < cut && !slices.Contains(ks.corrected, s) {
				delete(ks.final, s)
			}
		}
		if len(ks.open) == 0 && len(ks.final) == 0 && len(ks.corrected) == 0 {
			delete(e.keys, k)
		}
	}
}

// Watermark returns the watermark (unix ms) and the end of the last final
// pane; both are math.MinInt64 before the first flush with samples.
func (e *Engine) Watermark() (watermark, finalEnd int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.watermark, e.finalEnd
}

// LiveKeys returns the number of keys held.
func (e *Engine) LiveKeys() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.keys)
}

// HighWaterMark records the high-water mark of partition reported with its
// latest message: a partition with a backlog never counts as idle (see
// aggregator.Progress).
func (e *Engine) HighWaterMark(partition int32, hwm int64) {
	e.mu.Lock()
	e.progress.HighWaterMark(partition, hwm)
	e.mu.Unlock()
}

// Fetched records a fetch response of partition, with or without messages,
// and its high-water mark: a consumer that reports every fetch makes its
// partitions idle only while fetches succeed (see aggregator.Progress).
func (e *Engine) Fetched(partition int32, hwm int64) {
	now := e.now()
	e.mu.Lock()
	e.progress.Fetched(partition, hwm, now)
	e.mu.Unlock()
}
