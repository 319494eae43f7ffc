package sink

import (
	"context"
	"errors"
	"hash/fnv"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

// converter buffers the rows of one topic. add converts one decoded batch
// whose message has index msg in the loop's buffer and returns the records
// it could not convert, leaving the others' rows; write inserts the rows
// and returns the records whose rows ClickHouse refused, having stored
// the others.
type converter interface {
	add(b *codec.Batch, msg int) []badRecord
	rows() int
	write(ctx context.Context, w *clickhouse.Writer) ([]badRecord, error)
	reset()
}

// badRecord is one record of a batch that cannot be stored: what the DLQ
// gets instead of the whole message.
type badRecord struct {
	msg  int    // index of its message in the loop's buffer
	kind string // log, metric, pane, resource_pane, alert
	rec  int    // index among the batch's records of its kind
	raw  []byte // the record as encoded in the batch (aliasing the message), or a one-record batch
	err  error
}

// newConverter returns the converter of topic (without prefix), or nil.
func newConverter(topic string) converter {
	switch topic {
	case kafka.TopicStats:
		return newStatsBuf()
	case kafka.TopicLogs:
		return &rowBuf[clickhouse.LogRow]{kind: "log", count: func(b *codec.Batch) int { return len(b.Logs) },
			conv: logRow, raw: func(b *codec.Batch, i int) []byte { return b.Logs[i] }, insert: (*clickhouse.Writer).WriteLogs}
	case kafka.TopicMetrics:
		return &rowBuf[clickhouse.MetricRow]{kind: "metric", count: func(b *codec.Batch) int { return len(b.Metrics) },
			conv: metricRow, raw: func(*codec.Batch, int) []byte { return nil }, encode: metricBatch, insert: (*clickhouse.Writer).WriteMetrics}
	case kafka.TopicAlerts:
		return &rowBuf[clickhouse.AlertRow]{kind: "alert", count: func(b *codec.Batch) int { return len(b.Alerts) },
			conv: alertRow, raw: func(b *codec.Batch, i int) []byte { return b.Alerts[i] }, insert: (*clickhouse.Writer).WriteAlerts}
	}
	return nil
}

// rowRef says where a buffered row came from.
type rowRef struct {
	msg, rec int
	raw      []byte
}

// rowBuf is a converter for rows of type R, made from the records of one
// kind in each batch.
type rowBuf[R any] struct {
	kind  string
	count func(b *codec.Batch) int
	// conv converts record i; skip means the record is not of this
	// buffer's kind (a rollup among panes) and is not an error.
	conv func(b *codec.Batch, i int, row *R) (skip bool, err error)
	// raw returns record i's encoded bytes, or nil when the batch holds it
	// decoded (metrics), in which case encode makes a one-record batch of
	// its row for the DLQ.
	raw    func(b *codec.Batch, i int) []byte
	encode func(row *R) []byte
	insert func(w *clickhouse.Writer, ctx context.Context, rows []R) error
	// quiet: bad records are reported by a sibling buffer over the same
	// records (rollups share the panes' records).
	quiet bool
	buf   []R
	refs  []rowRef
}

func (r *rowBuf[R]) add(b *codec.Batch, msg int) []badRecord {
	var bad []badRecord
	for i := range r.count(b) {
		var row R
		skip, err := false, b.BadRecord(r.kind, i)
		if err == nil {
			skip, err = r.conv(b, i, &row)
		}
		if err != nil {
			if !r.quiet {
				bad = append(bad, badRecord{msg: msg, kind: r.kind, rec: i, raw: r.raw(b, i), err: err})
			}
			continue
		}
		if skip {
			continue
		}
		r.buf = append(r.buf, row)
		r.refs = append(r.refs, rowRef{msg: msg, rec: i, raw: r.raw(b, i)})
	}
	return bad
}

func (r *rowBuf[R]) rows() int { return len(r.buf) }

// write inserts the rows. Rows the writer's checks refuse are reported
// after the others are stored; a permanent failure of the insert itself
// (the server refusing a value) is bisected down to the rows that cause
// it, so that every other row is stored. Re-inserting rows that an earlier
// chunk of the same write stored is harmless: every table replaces a row
// with the same key.
func (r *rowBuf[R]) write(ctx context.Context, w *clickhouse.Writer) ([]badRecord, error) {
	var bad []badRecord
	if err := r.isolate(ctx, w, 0, len(r.buf), &bad); err != nil {
		return nil, err
	}
	return bad, nil
}

func (r *rowBuf[R]) isolate(ctx context.Context, w *clickhouse.Writer, lo, hi int, bad *[]badRecord) error {
	if lo >= hi {
		return nil
	}
	err := r.insert(w, ctx, r.buf[lo:hi])
	var inv *clickhouse.InvalidRowsError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &inv):
		for _, re := range inv.Rows {
			*bad = append(*bad, r.badRow(lo+re.Index, re.Err))
		}
		return nil
	case errors.Is(err, clickhouse.ErrPermanent) && ctx.Err() == nil:
		if hi-lo == 1 {
			*bad = append(*bad, r.badRow(lo, err))
			return nil
		}
		mid := lo + (hi-lo)/2
		if err := r.isolate(ctx, w, lo, mid, bad); err != nil {
			return err
		}
		return r.isolate(ctx, w, mid, hi, bad)
	}
	return err
}

func (r *rowBuf[R]) badRow(i int, err error) badRecord {
	ref := r.refs[i]
	raw := ref.raw
	if raw == nil && r.encode != nil {
		raw = r.encode(&r.buf[i])
	}
	return badRecord{msg: ref.msg, kind: r.kind, rec: ref.rec, raw: raw, err: err}
}

// drop removes the trailing rows of message msg, the last one added.
func (r *rowBuf[R]) drop(msg int) {
	n := len(r.buf)
	for n > 0 && r.refs[n-1].msg == msg {
		n--
	}
	clear(r.buf[n:])
	r.buf = r.buf[:n]
	r.refs = r.refs[:n]
}

func (r *rowBuf[R]) reset() {
	clear(r.buf)
	r.buf = r.buf[:0]
	clear(r.refs)
	r.refs = r.refs[:0]
}

// statsBuf is the converter of the stats topic, whose batches carry call
// panes (call_panes), rollup panes (call_rollups) and resource panes
// (resource_panes).
type statsBuf struct {
	panes     rowBuf[clickhouse.PaneRow]
	rollups   rowBuf[clickhouse.PaneRow]
	resources rowBuf[clickhouse.ResourcePaneRow]
}

func newStatsBuf() *statsBuf {
	panes := func(b *codec.Batch) int { return len(b.Panes) }
	rawPane := func(b *codec.Batch, i int) []byte { return b.Panes[i] }
	return &statsBuf{
		panes:   rowBuf[clickhouse.PaneRow]{kind: "pane", count: panes, conv: paneRow(false), raw: rawPane, insert: (*clickhouse.Writer).WritePanes},
		rollups: rowBuf[clickhouse.PaneRow]{kind: "pane", count: panes, conv: paneRow(true), raw: rawPane, insert: (*clickhouse.Writer).WriteRollups, quiet: true},
		resources: rowBuf[clickhouse.ResourcePaneRow]{kind: "resource_pane", count: func(b *codec.Batch) int { return len(b.ResourcePanes) },
			conv: resourcePaneRow, raw: func(b *codec.Batch, i int) []byte { return b.ResourcePanes[i] }, insert: (*clickhouse.Writer).WriteResourcePanes},
	}
}

// statsPart is one kind of row of the stats topic.
type statsPart interface {
	converter
	drop(msg int)
}

func (s *statsBuf) parts() []statsPart { return []statsPart{&s.panes, &s.rollups, &s.resources} }

// add converts every kind of b; a broken pane is reported once (by the
// panes buffer) though both pane buffers read it.
func (s *statsBuf) add(b *codec.Batch, msg int) []badRecord {
	var bad []badRecord
	for _, p := range s.parts() {
		bad = append(bad, p.add(b, msg)...)
	}
	return bad
}

func (s *statsBuf) rows() int { return s.panes.rows() + s.rollups.rows() + s.resources.rows() }

func (s *statsBuf) write(ctx context.Context, w *clickhouse.Writer) ([]badRecord, error) {
	var bad []badRecord
	for _, p := range s.parts() {
		b, err := p.write(ctx, w)
		if err != nil {
			return nil, err
		}
		bad = append(bad, b...)
	}
	return bad, nil
}

func (s *statsBuf) reset() {
	for _, p := range s.parts() {
		p.reset()
	}
}

// labelsOf reads the four grouping labels of label set ls.
func labelsOf(b *codec.Batch, ls uint32) (system, app, group, idc string) {
	return b.Label(ls, schemas.LabelSystem), b.Label(ls, schemas.LabelApp),
		b.Label(ls, schemas.LabelGroup), b.Label(ls, schemas.LabelIDC)
}

// eventLabels reads the labels a log line or a sample is stored with
// from label set ls.
func eventLabels(b *codec.Batch, ls uint32) clickhouse.EventLabels {
	sys, app, grp, idc := labelsOf(b, ls)
	return clickhouse.EventLabels{System: sys, App: app, Group: grp, IDC: idc,
		Env: b.Label(ls, schemas.LabelEnv), Host: b.Label(ls, schemas.LabelHost),
		Namespace: b.Label(ls, schemas.LabelNamespace), Pod: b.Label(ls, schemas.LabelPod),
		Container: b.Label(ls, schemas.LabelContainer)}
}

// refsOK reports whether label set ls and symbol refs exist in b; Decode
// checks references of the flat events but not inside panes, logs and alerts
// beyond their structure, so a converter checks the ones it resolves.
func refsOK(b *codec.Batch, ls uint32, syms ...uint32) bool {
	if int(ls) >= b.NumLabelSets() {
		return false
	}
	for _, s := range syms {
		if int(s) >= len(b.Symbols) {
			return false
		}
	}
	return true
}

var errBadRef = codec.ErrBadReference

// paneRow returns the converter of one PaneStat into call_panes (rollup
// false) or call_rollups (rollup true); a pane of the other kind is
// skipped. Both check every pane, so a broken one is refused whichever
// kind it was meant to be.
func paneRow(rollup bool) func(b *codec.Batch, i int, row *clickhouse.PaneRow) (bool, error) {
	return func(b *codec.Batch, i int, row *clickhouse.PaneRow) (bool, error) {
		var p tpflowpb.PaneStat
		if err := proto.Unmarshal(b.Panes[i], &p); err != nil {
			return false, errors.Join(codec.ErrMalformed, err)
		}
		if !refsOK(b, p.Labels, p.Method) || len(p.CentroidMeans) != len(p.CentroidWeights) {
			return false, errBadRef
		}
		if p.Rollup != rollup {
			return true, nil
		}
		sys, app, grp, idc := labelsOf(b, p.Labels)
		*row = clickhouse.PaneRow{
			PaneStart:       time.UnixMilli(p.PaneStartUnixMs).UTC(),
			PaneSeconds:     uint32(max(p.PaneMs/1000, 1)),
			System:          sys,
			App:             app,
			Group:           grp,
			IDC:             idc,
			Method:          b.Symbol(p.Method),
			Count:           p.Count,
			Errors:          p.Errors,
			SumUs:           p.SumUs,
			MinUs:           p.MinUs,
			MaxUs:           p.MaxUs,
			P50Us:           p.P50Us,
			P90Us:           p.P90Us,
			P99Us:           p.P99Us,
			P999Us:          p.P999Us,
			CentroidMeans:   p.CentroidMeans,
			CentroidWeights: p.CentroidWeights,
			Version:         p.Version,
		}
		return false, nil
	}
}

// resourcePaneRow converts ResourcePane i of b.
func resourcePaneRow(b *codec.Batch, i int, row *clickhouse.ResourcePaneRow) (bool, error) {
	var p tpflowpb.ResourcePane
	if err := proto.Unmarshal(b.ResourcePanes[i], &p); err != nil {
		return false, errors.Join(codec.ErrMalformed, err)
	}
	if !refsOK(b, p.Labels, p.Name) {
		return false, errBadRef
	}
	sys, app, grp, idc := labelsOf(b, p.Labels)
	avg := 0.0
	if p.Count > 0 {
		avg = p.Sum / float64(p.Count)
	}
	*row = clickhouse.ResourcePaneRow{
		PaneStart:   time.UnixMilli(p.PaneStartUnixMs).UTC(),
		PaneSeconds: uint32(max(p.PaneMs/1000, 1)),
		System:      sys,
		App:         app,
		Group:       grp,
		IDC:         idc,
		Host:        b.Label(p.Labels, schemas.LabelHost),
		Container:   b.Label(p.Labels, schemas.LabelContainer),
		Name:        b.Symbol(p.Name),
		Count:       p.Count,
		Avg:         avg,
		Max:         p.Max,
		P95:         p.P95,
		Version:     p.Version,
	}
	return false, nil
}

// logRow converts LogEvent i of b.
func logRow(b *codec.Batch, i int, row *clickhouse.LogRow) (bool, error) {
	var ev tpflowpb.LogEvent
	if err := proto.Unmarshal(b.Logs[i], &ev); err != nil {
		return false, errors.Join(codec.ErrMalformed, err)
	}
	if !refsOK(b, ev.Labels, ev.Stream, ev.Level, ev.Source) {
		return false, errBadRef
	}
	*row = clickhouse.LogRow{
		TS:          time.Unix(0, ev.TsUnixNano).UTC(),
		EventLabels: eventLabels(b, ev.Labels),
		Stream:      b.Symbol(ev.Stream),
		Level:       b.Symbol(ev.Level),
		Message:     ev.Message,
		Source:      b.Symbol(ev.Source),
		SourceID:    ev.SourceId,
		Offset:      ev.Offset,
		Unparsed:    ev.Unparsed,
		Truncated:   ev.Truncated,
		Flags:       ev.Flags,
	}
	return false, nil
}

// metricRow converts MetricSample i of b; Decode has checked its
// references.
func metricRow(b *codec.Batch, i int, row *clickhouse.MetricRow) (bool, error) {
	m := &b.Metrics[i]
	kind := "gauge"
	if tpflowpb.MetricKind(m.Kind) == tpflowpb.MetricKind_METRIC_KIND_COUNTER {
		kind = "counter"
	}
	*row = clickhouse.MetricRow{
		TS:          time.UnixMilli(m.TsUnixMs).UTC(),
		EventLabels: eventLabels(b, m.Labels),
		Name:        b.Symbol(m.Name),
		Value:       m.Value,
		Kind:        kind,
	}
	return false, nil
}

// metricBatch encodes one metric row as a batch of its own, for the DLQ.
func metricBatch(r *clickhouse.MetricRow) []byte {
	var b codec.Builder
	ls := b.LabelSet([]schemas.Label{
		{Name: schemas.LabelSystem, Value: r.System}, {Name: schemas.LabelApp, Value: r.App},
		{Name: schemas.LabelGroup, Value: r.Group}, {Name: schemas.LabelIDC, Value: r.IDC},
		{Name: schemas.LabelEnv, Value: r.Env}, {Name: schemas.LabelHost, Value: r.Host},
		{Name: schemas.LabelNamespace, Value: r.Namespace}, {Name: schemas.LabelPod, Value: r.Pod},
		{Name: schemas.LabelContainer, Value: r.Container},
	})
	kind := tpflowpb.MetricKind_METRIC_KIND_GAUGE
	if r.Kind == "counter" {
		kind = tpflowpb.MetricKind_METRIC_KIND_COUNTER
	}
	b.AddMetric(codec.Metric{TsUnixMs: r.TS.UnixMilli(), Labels: ls, Name: b.Symbol(r.Name), Value: r.Value, Kind: uint8(kind)})
	return b.AppendTo(nil)
}

// alertRow converts Alert i of b.
func alertRow(b *codec.Batch, i int, row *clickhouse.AlertRow) (bool, error) {
	var a tpflowpb.Alert
	if err := proto.Unmarshal(b.Alerts[i], &a); err != nil {
		return false, errors.Join(codec.ErrMalformed, err)
	}
	if !refsOK(b, a.Labels) {
		return false, errBadRef
	}
	sys, app, grp, idc := labelsOf(b, a.Labels)
	*row = clickhouse.AlertRow{
		TS:          msTime(a.EvalUnixMs),
		Rule:        a.Rule,
		State:       alertState(a.State),
		Value:       a.Value,
		System:      sys,
		App:         app,
		Group:       grp,
		IDC:         idc,
		Fingerprint: fingerprint(a.Fingerprint),
		ActiveAt:    msTime(a.ActiveAtUnixMs),
		FiredAt:     msTime(a.FiredAtUnixMs),
		ResolvedAt:  msTime(a.ResolvedAtUnixMs),
	}
	ls := b.LabelSet(a.Labels)
	for i := 0; i+1 < len(ls); i += 2 {
		row.LabelNames = append(row.LabelNames, b.Symbol(ls[i]))
		row.LabelValues = append(row.LabelValues, b.Symbol(ls[i+1]))
	}
	for k, v := range a.Annotations {
		row.AnnotationNames = append(row.AnnotationNames, k)
		row.AnnotationValues = append(row.AnnotationValues, v)
	}
	return false, nil
}

func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func alertState(s tpflowpb.AlertState) string {
	switch s {
	case tpflowpb.AlertState_ALERT_STATE_INACTIVE:
		return "inactive"
	case tpflowpb.AlertState_ALERT_STATE_PENDING:
		return "pending"
	case tpflowpb.AlertState_ALERT_STATE_FIRING:
		return "firing"
	case tpflowpb.AlertState_ALERT_STATE_RESOLVED:
		return "resolved"
	}
	return "unspecified"
}

// fingerprint reads a hexadecimal fingerprint as Alertmanager writes them,
// and hashes any other text.
func fingerprint(s string) uint64 {
	if v, err := strconv.ParseUint(s, 16, 64); err == nil {
		return v
	}
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}
