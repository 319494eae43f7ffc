package codec

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

// Call is one decoded CallEvent. Series indexes Batch.Series.
type Call struct {
	TsUnixMs  int64
	Series    uint32
	LatencyUs uint32
	Status    uint32
	OK        bool
}

// Series is one decoded Series: Labels indexes the batch's label sets and
// Method is a symbol reference.
type Series struct {
	Labels, Method uint32
}

// Metric is one decoded MetricSample. Labels indexes the batch's label sets,
// Name is a symbol reference and Kind is a tpflowpb.MetricKind value.
type Metric struct {
	TsUnixMs int64
	Labels   uint32
	Name     uint32
	Value    float64
	Kind     uint8
}

// Batch is a decoded view of one EventBatch, filled by Decode.
//
// Batch aliases the buffer it was decoded from (see the package
// documentation); its slices are reused by the next Decode. The zero value is
// an empty batch ready for Decode. A Batch is not safe for concurrent
// mutation.
type Batch struct {
	// SchemaVersion is the batch's schema_version; after a successful
	// Decode it is always schemas.SchemaVersion.
	SchemaVersion uint32
	// Symbols is the string table; Symbols[0] is "". Decode makes it
	// non-empty, so reference 0 is always valid.
	Symbols []string
	// LabelRefs holds all label sets back to back as name, value symbol
	// pairs.
	LabelRefs []uint32
	// LabelOffsets has one entry more than there are label sets: label set
	// i is LabelRefs[LabelOffsets[i]:LabelOffsets[i+1]]. Decode makes at
	// least one (possibly empty) label set, so reference 0 is always valid.
	LabelOffsets []uint32
	// Series are the batch's (label set, method) pairs.
	Series []Series
	// Calls are the batch's call events in order.
	Calls []Call
	// Metrics are the batch's metric samples in order.
	Metrics []Metric
	// Logs, Panes and Alerts hold the encoded LogEvent, PaneStat and Alert
	// messages, each checked for wire structure and references. Unmarshal
	// one with proto.Unmarshal, or all with Full.
	Logs, Panes, Alerts [][]byte
	// ResourcePanes holds the encoded ResourcePane messages, checked like
	// Panes.
	ResourcePanes [][]byte
	// Producer names the process that built the batch.
	Producer string
	// BadRecords lists the records that failed their check, in kind and
	// index order, when decoded with DecodeOptions.KeepBadRecords; they
	// are still in Logs, Panes, Alerts and ResourcePanes.
	BadRecords []RecordError

	raw []byte // the whole encoded batch after a successful Decode
}

// Reset empties b, keeping the capacity of its slices, and drops its
// references into the last decoded buffer.
func (b *Batch) Reset() {
	b.SchemaVersion = 0
	clear(b.Symbols)
	b.Symbols = b.Symbols[:0]
	b.LabelRefs = b.LabelRefs[:0]
	b.LabelOffsets = b.LabelOffsets[:0]
	b.Series = b.Series[:0]
	b.Calls = b.Calls[:0]
	b.Metrics = b.Metrics[:0]
	clear(b.Logs)
	clear(b.Panes)
	clear(b.Alerts)
	clear(b.ResourcePanes)
	b.Logs = b.Logs[:0]
	b.Panes = b.Panes[:0]
	b.Alerts = b.Alerts[:0]
	b.ResourcePanes = b.ResourcePanes[:0]
	b.Producer = ""
	clear(b.BadRecords)
	b.BadRecords = b.BadRecords[:0]
	b.raw = nil
}

// Kinds of RecordError.Kind.
const (
	RecordLog          = "log"
	RecordPane         = "pane"
	RecordAlert        = "alert"
	RecordResourcePane = "resource_pane"
)

// RecordError is one record of a batch that failed its check.
type RecordError struct {
	Kind  string // RecordLog, RecordPane, RecordAlert or RecordResourcePane
	Index int    // among the batch's records of that kind
	Err   error  // wraps a sentinel of the package
}

// BadRecord returns the error of record i of kind, or nil if it passed
// its check.
func (b *Batch) BadRecord(kind string, i int) error {
	for _, r := range b.BadRecords {
		if r.Kind == kind && r.Index == i {
			return r.Err
		}
	}
	return nil
}

// Len returns the number of events in b: calls, metrics, logs, panes,
// alerts and resource panes.
func (b *Batch) Len() int {
	return len(b.Calls) + len(b.Metrics) + len(b.Logs) + len(b.Panes) + len(b.Alerts) + len(b.ResourcePanes)
}

// Symbol returns symbol ref, or "" if ref is out of range.
func (b *Batch) Symbol(ref uint32) string {
	if int(ref) < len(b.Symbols) {
		return b.Symbols[ref]
	}
	return ""
}

// NumLabelSets returns the number of label sets in b.
func (b *Batch) NumLabelSets() int {
	if len(b.LabelOffsets) == 0 {
		return 0
	}
	return len(b.LabelOffsets) - 1
}

// LabelSet returns label set i as name, value symbol reference pairs, or nil
// if i is out of range. The result aliases b.
func (b *Batch) LabelSet(i uint32) []uint32 {
	if int(i) >= b.NumLabelSets() {
		return nil
	}
	return b.LabelRefs[b.LabelOffsets[i]:b.LabelOffsets[i+1]]
}

// Label returns the value of the label called name in label set set, or "" if
// the set has no such label. It scans the set linearly (label sets are a
// handful of pairs) and does not allocate.
func (b *Batch) Label(set uint32, name string) string {
	refs := b.LabelSet(set)
	for i := 0; i+1 < len(refs); i += 2 {
		if b.Symbol(refs[i]) == name {
			return b.Symbol(refs[i+1])
		}
	}
	return ""
}

// errNotDecoded is returned by Full on a Batch that holds no decoded bytes.
var errNotDecoded = errors.New("batch holds no successfully decoded bytes")

// Full decodes the whole batch, logs, panes, alerts and resource panes
// included, with
// proto.Unmarshal from the bytes b was decoded from. The result shares no
// memory with those bytes. It fails with ErrMalformed where proto.Unmarshal
// fails (for example on invalid UTF-8), and with a plain error if b was not
// successfully decoded.
func (b *Batch) Full() (*tpflowpb.EventBatch, error) {
	if b.raw == nil {
		return nil, errNotDecoded
	}
	m := new(tpflowpb.EventBatch)
	if err := proto.Unmarshal(b.raw, m); err != nil {
		return nil, fmt.Errorf("full decode: %v: %w", err, ErrMalformed)
	}
	return m, nil
}
