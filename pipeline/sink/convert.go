package sink

import (
	"context"
	"errors"
	"hash/fnv"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/codec"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

// converter buffers the rows of one topic. add converts one decoded batch
// whose message has index msg in the loop's buffer; write inserts the rows
// and returns the message indexes of rows the schema refused.
type converter interface {
	add(b *codec.Batch, msg int) error
	rows() int
	write(ctx context.Context, w *clickhouse.Writer) (badMsgs []int, err error)
	reset()
}

// newConverter returns the converter of topic (without prefix), or nil.
func newConverter(topic string) converter {
	switch topic {
	case kafka.TopicStats:
		return newStatsBuf()
	case kafka.TopicLogs:
		return &rowBuf[clickhouse.LogRow]{conv: logsOf, insert: (*clickhouse.Writer).WriteLogs}
	case kafka.TopicMetrics:
		return &rowBuf[clickhouse.MetricRow]{conv: metricsOf, insert: (*clickhouse.Writer).WriteMetrics}
	case kafka.TopicAlerts:
		return &rowBuf[clickhouse.AlertRow]{conv: alertsOf, insert: (*clickhouse.Writer).WriteAlerts}
	}
	return nil
}

// rowBuf is a converter for rows of type R.
type rowBuf[R any] struct {
	conv   func(dst []R, b *codec.Batch) ([]R, error)
	insert func(w *clickhouse.Writer, ctx context.Context, rows []R) error
	buf    []R
	msgOf  []int // message index of each row
}

func (r *rowBuf[R]) add(b *codec.Batch, msg int) error {
	n := len(r.buf)
	out, err := r.conv(r.buf, b)
	if err != nil {
		clear(out[n:])
		r.buf = out[:n]
		return err
	}
	r.buf = out
	for range len(out) - n {
		r.msgOf = append(r.msgOf, msg)
	}
	return nil
}

func (r *rowBuf[R]) rows() int { return len(r.buf) }

// drop removes the trailing rows of message msg, the last one added.
func (r *rowBuf[R]) drop(msg int) {
	n := len(r.buf)
	for n > 0 && r.msgOf[n-1] == msg {
		n--
	}
	clear(r.buf[n:])
	r.buf = r.buf[:n]
	r.msgOf = r.msgOf[:n]
}

func (r *rowBuf[R]) write(ctx context.Context, w *clickhouse.Writer) ([]int, error) {
	if len(r.buf) == 0 {
		return nil, nil
	}
	err := r.insert(w, ctx, r.buf)
	var inv *clickhouse.InvalidRowsError
	if errors.As(err, &inv) {
		bad := make([]int, 0, len(inv.Rows))
		for _, re := range inv.Rows {
			bad = append(bad, r.msgOf[re.Index])
		}
		return bad, nil
	}
	return nil, err
}

func (r *rowBuf[R]) reset() {
	clear(r.buf)
	r.buf = r.buf[:0]
	r.msgOf = r.msgOf[:0]
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
	return &statsBuf{
		panes:     rowBuf[clickhouse.PaneRow]{conv: paneRows(false), insert: (*clickhouse.Writer).WritePanes},
		rollups:   rowBuf[clickhouse.PaneRow]{conv: paneRows(true), insert: (*clickhouse.Writer).WriteRollups},
		resources: rowBuf[clickhouse.ResourcePaneRow]{conv: resourcePanesOf, insert: (*clickhouse.Writer).WriteResourcePanes},
	}
}

// statsPart is one kind of row of the stats topic.
type statsPart interface {
	converter
	drop(msg int)
}

func (s *statsBuf) parts() []statsPart { return []statsPart{&s.panes, &s.rollups, &s.resources} }

// add converts every kind of b, or none: a batch that fails leaves no rows
// of any kind behind, as the DLQ gets the whole message.
func (s *statsBuf) add(b *codec.Batch, msg int) error {
	parts := s.parts()
	for i, p := range parts {
		if err := p.add(b, msg); err != nil {
			for _, done := range parts[:i] {
				done.drop(msg)
			}
			return err
		}
	}
	return nil
}

func (s *statsBuf) rows() int { return s.panes.rows() + s.rollups.rows() + s.resources.rows() }

func (s *statsBuf) write(ctx context.Context, w *clickhouse.Writer) ([]int, error) {
	var bad []int
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

// paneRows returns the converter of b's PaneStats that are rollups
// (rollup) or panes (!rollup). Both converters check every PaneStat, so a
// bad one fails the batch whichever kind it is.
func paneRows(rollup bool) func(dst []clickhouse.PaneRow, b *codec.Batch) ([]clickhouse.PaneRow, error) {
	return func(dst []clickhouse.PaneRow, b *codec.Batch) ([]clickhouse.PaneRow, error) {
		return panesOf(dst, b, rollup)
	}
}

// panesOf converts the PaneStats of b whose rollup flag is rollup.
func panesOf(dst []clickhouse.PaneRow, b *codec.Batch, rollup bool) ([]clickhouse.PaneRow, error) {
	var p tpflowpb.PaneStat
	for _, raw := range b.Panes {
		if err := proto.Unmarshal(raw, &p); err != nil {
			return dst, errors.Join(codec.ErrMalformed, err)
		}
		if !refsOK(b, p.Labels, p.Method) || len(p.CentroidMeans) != len(p.CentroidWeights) {
			return dst, errBadRef
		}
		if p.Rollup != rollup {
			continue
		}
		sys, app, grp, idc := labelsOf(b, p.Labels)
		dst = append(dst, clickhouse.PaneRow{
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
		})
		p.CentroidMeans, p.CentroidWeights = nil, nil // owned by the row now
	}
	return dst, nil
}

// resourcePanesOf converts the ResourcePanes of b.
func resourcePanesOf(dst []clickhouse.ResourcePaneRow, b *codec.Batch) ([]clickhouse.ResourcePaneRow, error) {
	var p tpflowpb.ResourcePane
	for _, raw := range b.ResourcePanes {
		if err := proto.Unmarshal(raw, &p); err != nil {
			return dst, errors.Join(codec.ErrMalformed, err)
		}
		if !refsOK(b, p.Labels, p.Name) {
			return dst, errBadRef
		}
		sys, app, grp, idc := labelsOf(b, p.Labels)
		avg := 0.0
		if p.Count > 0 {
			avg = p.Sum / float64(p.Count)
		}
		dst = append(dst, clickhouse.ResourcePaneRow{
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
		})
	}
	return dst, nil
}

// logsOf converts the LogEvents of b.
func logsOf(dst []clickhouse.LogRow, b *codec.Batch) ([]clickhouse.LogRow, error) {
	var ev tpflowpb.LogEvent
	for _, raw := range b.Logs {
		if err := proto.Unmarshal(raw, &ev); err != nil {
			return dst, errors.Join(codec.ErrMalformed, err)
		}
		if !refsOK(b, ev.Labels, ev.Stream, ev.Level, ev.Source) {
			return dst, errBadRef
		}
		sys, app, grp, idc := labelsOf(b, ev.Labels)
		dst = append(dst, clickhouse.LogRow{
			TS:        time.Unix(0, ev.TsUnixNano).UTC(),
			System:    sys,
			App:       app,
			Group:     grp,
			IDC:       idc,
			Env:       b.Label(ev.Labels, schemas.LabelEnv),
			Host:      b.Label(ev.Labels, schemas.LabelHost),
			Namespace: b.Label(ev.Labels, schemas.LabelNamespace),
			Pod:       b.Label(ev.Labels, schemas.LabelPod),
			Container: b.Label(ev.Labels, schemas.LabelContainer),
			Stream:    b.Symbol(ev.Stream),
			Level:     b.Symbol(ev.Level),
			Message:   ev.Message,
			Source:    b.Symbol(ev.Source),
			SourceID:  ev.SourceId,
			Offset:    ev.Offset,
			Unparsed:  ev.Unparsed,
			Truncated: ev.Truncated,
		})
	}
	return dst, nil
}

// metricsOf converts the MetricSamples of b.
func metricsOf(dst []clickhouse.MetricRow, b *codec.Batch) ([]clickhouse.MetricRow, error) {
	for _, m := range b.Metrics {
		sys, app, grp, idc := labelsOf(b, m.Labels)
		kind := "gauge"
		if tpflowpb.MetricKind(m.Kind) == tpflowpb.MetricKind_METRIC_KIND_COUNTER {
			kind = "counter"
		}
		dst = append(dst, clickhouse.MetricRow{
			TS:        time.UnixMilli(m.TsUnixMs).UTC(),
			System:    sys,
			App:       app,
			Group:     grp,
			IDC:       idc,
			Env:       b.Label(m.Labels, schemas.LabelEnv),
			Host:      b.Label(m.Labels, schemas.LabelHost),
			Namespace: b.Label(m.Labels, schemas.LabelNamespace),
			Pod:       b.Label(m.Labels, schemas.LabelPod),
			Container: b.Label(m.Labels, schemas.LabelContainer),
			Name:      b.Symbol(m.Name),
			Value:     m.Value,
			Kind:      kind,
		})
	}
	return dst, nil
}

// alertsOf converts the Alerts of b.
func alertsOf(dst []clickhouse.AlertRow, b *codec.Batch) ([]clickhouse.AlertRow, error) {
	var a tpflowpb.Alert
	for _, raw := range b.Alerts {
		if err := proto.Unmarshal(raw, &a); err != nil {
			return dst, errors.Join(codec.ErrMalformed, err)
		}
		if !refsOK(b, a.Labels) {
			return dst, errBadRef
		}
		sys, app, grp, idc := labelsOf(b, a.Labels)
		row := clickhouse.AlertRow{
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
		dst = append(dst, row)
	}
	return dst, nil
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
