package codec

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

// Builder accumulates events and encodes them as one EventBatch.
//
// Symbols, label sets and series are interned per batch. The zero value is an
// empty builder ready for use; Reset starts the next batch and keeps every
// buffer's capacity. A Builder is not safe for concurrent use.
//
// Builder retains the strings passed to Symbol, LabelSet and Series until
// Reset: do not pass strings that alias reusable memory (such as a decoded
// Batch's Symbols) without strings.Clone. It does not retain the label slices
// or the messages passed to AddLog, AddPane, AddAlert and AddResourcePane.
//
// Passing a reference that this Builder did not hand out (a series, label set
// or symbol index out of range) is a programming error and panics.
type Builder struct {
	producer string

	symbols  []string
	symIndex map[string]uint32

	labelRefs    []uint32
	labelOffsets []uint32 // label set i is labelRefs[labelOffsets[i]:labelOffsets[i+1]]
	labelIndex   map[string]uint32

	series      []Series
	seriesIndex map[Series]uint32

	calls   []Call
	metrics []Metric

	// other holds the logs, panes, alerts and resource panes, each already
	// encoded with its field tag and length, in the order they were added.
	other                             []byte
	nlogs, npanes, nalerts, nresource int

	size int // exact encoded size of everything but producer and version

	scratch []schemas.Label
	key     []byte
}

// init makes the zero Builder usable: symbol 0 is "".
func (b *Builder) init() {
	if b.symIndex != nil {
		return
	}
	b.symIndex = make(map[string]uint32)
	b.labelIndex = make(map[string]uint32)
	b.seriesIndex = make(map[Series]uint32)
	b.addSymbol("", "")
	b.labelOffsets = append(b.labelOffsets[:0], 0)
}

// Reset empties b for the next batch, keeping the capacity of its buffers.
func (b *Builder) Reset() {
	if b.symIndex == nil {
		b.init()
		return
	}
	b.producer = ""
	clear(b.symbols)
	b.symbols = b.symbols[:0]
	clear(b.symIndex)
	b.labelRefs = b.labelRefs[:0]
	b.labelOffsets = append(b.labelOffsets[:0], 0)
	clear(b.labelIndex)
	b.series = b.series[:0]
	clear(b.seriesIndex)
	b.calls = b.calls[:0]
	b.metrics = b.metrics[:0]
	b.other = b.other[:0]
	b.nlogs, b.npanes, b.nalerts, b.nresource = 0, 0, 0, 0
	b.size = 0
	b.addSymbol("", "")
}

// SetProducer sets the name of the process that builds the batch; invalid
// UTF-8 is replaced with U+FFFD.
func (b *Builder) SetProducer(p string) {
	if !utf8.ValidString(p) {
		p = strings.ToValidUTF8(p, "\uFFFD")
	}
	b.producer = p
}

// Len returns the number of events added since the last Reset.
func (b *Builder) Len() int {
	return len(b.calls) + len(b.metrics) + b.nlogs + b.npanes + b.nalerts + b.nresource
}

// Size returns the number of bytes AppendTo will append, so that producers can
// cut batches at a target size.
func (b *Builder) Size() int {
	b.init()
	n := b.size + 1 + protowire.SizeVarint(schemas.SchemaVersion)
	if b.producer != "" {
		n += fieldSize(len(b.producer))
	}
	return n
}

// fieldSize is the encoded size of a one-byte tag, a length and n bytes.
func fieldSize(n int) int { return 1 + protowire.SizeVarint(uint64(n)) + n }

func (b *Builder) addSymbol(key, s string) uint32 {
	i := uint32(len(b.symbols))
	b.symbols = append(b.symbols, s)
	b.symIndex[key] = i
	b.size += fieldSize(len(s))
	return i
}

// Symbol interns s and returns its symbol reference; Symbol("") is 0.
// Invalid UTF-8 is replaced with U+FFFD so that every Protobuf reader accepts
// the batch.
func (b *Builder) Symbol(s string) uint32 {
	b.init()
	if i, ok := b.symIndex[s]; ok {
		return i
	}
	if len(b.symbols) >= math.MaxUint32 {
		panic("BUG: codec: more than 2^32-1 symbols in one batch")
	}
	if !utf8.ValidString(s) {
		v := strings.ToValidUTF8(s, "\uFFFD")
		if i, ok := b.symIndex[v]; ok {
			b.symIndex[s] = i
			return i
		}
		i := b.addSymbol(v, v)
		b.symIndex[s] = i
		return i
	}
	return b.addSymbol(s, s)
}

// LabelSet interns the label set made of labels, sorted by name, and returns
// its index. Labels with the same name are all kept, in their given order. The
// empty set is a valid label set.
func (b *Builder) LabelSet(labels []schemas.Label) uint32 {
	b.init()
	b.scratch = append(b.scratch[:0], labels...)
	slices.SortStableFunc(b.scratch, func(x, y schemas.Label) int { return cmp.Compare(x.Name, y.Name) })
	b.key = b.key[:0]
	for _, l := range b.scratch {
		b.key = binary.LittleEndian.AppendUint32(b.key, b.Symbol(l.Name))
		b.key = binary.LittleEndian.AppendUint32(b.key, b.Symbol(l.Value))
	}
	clear(b.scratch)
	if i, ok := b.labelIndex[string(b.key)]; ok {
		return i
	}
	i := uint32(len(b.labelOffsets) - 1)
	packed := 0
	for k := 0; k < len(b.key); k += 4 {
		r := binary.LittleEndian.Uint32(b.key[k:])
		b.labelRefs = append(b.labelRefs, r)
		packed += protowire.SizeVarint(uint64(r))
	}
	b.labelOffsets = append(b.labelOffsets, uint32(len(b.labelRefs)))
	b.labelIndex[string(b.key)] = i
	b.size += fieldSize(labelSetBodySize(packed))
	return i
}

func labelSetBodySize(packed int) int {
	if packed == 0 {
		return 0
	}
	return fieldSize(packed)
}

func (b *Builder) numLabelSets() uint32 { return uint32(len(b.labelOffsets) - 1) }

func (b *Builder) mustLabelSet(what string, i uint32) {
	if i >= b.numLabelSets() {
		panic(fmt.Sprintf("BUG: codec: %s refers to label set %d, builder has %d", what, i, b.numLabelSets()))
	}
}

func (b *Builder) mustSymbol(what string, i uint32) {
	if int(i) >= len(b.symbols) {
		panic(fmt.Sprintf("BUG: codec: %s refers to symbol %d, builder has %d", what, i, len(b.symbols)))
	}
}

// Series interns the (label set, method) pair and returns its index for
// Call.Series.
func (b *Builder) Series(labelSet uint32, method string) uint32 {
	b.init()
	b.mustLabelSet("series", labelSet)
	s := Series{Labels: labelSet, Method: b.Symbol(method)}
	if i, ok := b.seriesIndex[s]; ok {
		return i
	}
	i := uint32(len(b.series))
	b.series = append(b.series, s)
	b.seriesIndex[s] = i
	b.size += fieldSize(seriesSize(s))
	return i
}

func varintFieldSize(v uint64) int {
	if v == 0 {
		return 0
	}
	return 1 + protowire.SizeVarint(v)
}

func seriesSize(s Series) int {
	return varintFieldSize(uint64(s.Labels)) + varintFieldSize(uint64(s.Method))
}

func callSize(c *Call) int {
	n := varintFieldSize(uint64(c.TsUnixMs)) + varintFieldSize(uint64(c.Series)) +
		varintFieldSize(uint64(c.LatencyUs)) + varintFieldSize(uint64(c.Status))
	if c.OK {
		n += 2
	}
	return n
}

func metricSize(m *Metric) int {
	n := varintFieldSize(uint64(m.TsUnixMs)) + varintFieldSize(uint64(m.Labels)) +
		varintFieldSize(uint64(m.Name)) + varintFieldSize(uint64(m.Kind))
	if math.Float64bits(m.Value) != 0 {
		n += 9
	}
	return n
}

// AddCall adds a call; c.Series must come from b.Series.
func (b *Builder) AddCall(c Call) {
	b.init()
	if c.Series >= uint32(len(b.series)) {
		panic(fmt.Sprintf("BUG: codec: call refers to series %d, builder has %d", c.Series, len(b.series)))
	}
	b.calls = append(b.calls, c)
	b.size += fieldSize(callSize(&c))
}

// AddMetric adds a metric sample; m.Labels must come from b.LabelSet and
// m.Name from b.Symbol.
func (b *Builder) AddMetric(m Metric) {
	b.init()
	b.mustLabelSet("metric", m.Labels)
	b.mustSymbol("metric name", m.Name)
	b.metrics = append(b.metrics, m)
	b.size += fieldSize(metricSize(&m))
}

var marshalOpts = proto.MarshalOptions{Deterministic: true, UseCachedSize: true}

func (b *Builder) addMessage(field protowire.Number, m proto.Message) error {
	n := proto.Size(m)
	start := len(b.other)
	b.other = protowire.AppendTag(b.other, field, protowire.BytesType)
	b.other = protowire.AppendVarint(b.other, uint64(n))
	out, err := marshalOpts.MarshalAppend(b.other, m)
	if err != nil {
		b.other = b.other[:start]
		return err
	}
	if len(out)-len(b.other) != n {
		panic("BUG: codec: message changed size while being encoded")
	}
	b.other = out
	b.size += len(b.other) - start
	return nil
}

// AddLog encodes ev into the batch; its label set and symbols must come from
// b. It fails, adding nothing, if ev cannot be encoded (a string that is not
// valid UTF-8). AddLog does not retain ev.
func (b *Builder) AddLog(ev *tpflowpb.LogEvent) error {
	b.init()
	b.mustLabelSet("log", ev.GetLabels())
	b.mustSymbol("log stream", ev.GetStream())
	b.mustSymbol("log level", ev.GetLevel())
	b.mustSymbol("log source", ev.GetSource())
	if err := b.addMessage(fieldLogs, ev); err != nil {
		return fmt.Errorf("encode log: %w", err)
	}
	b.nlogs++
	return nil
}

// AddPane encodes p into the batch; its label set and method symbol must come
// from b. It fails, adding nothing, if p cannot be encoded. AddPane does not
// retain p.
func (b *Builder) AddPane(p *tpflowpb.PaneStat) error {
	b.init()
	b.mustLabelSet("pane", p.GetLabels())
	b.mustSymbol("pane method", p.GetMethod())
	if err := b.addMessage(fieldPanes, p); err != nil {
		return fmt.Errorf("encode pane: %w", err)
	}
	b.npanes++
	return nil
}

// AddAlert encodes a into the batch; its label set must come from b. It
// fails, adding nothing, if a cannot be encoded (a string that is not valid
// UTF-8). AddAlert does not retain a.
func (b *Builder) AddAlert(a *tpflowpb.Alert) error {
	b.init()
	b.mustLabelSet("alert", a.GetLabels())
	if err := b.addMessage(fieldAlerts, a); err != nil {
		return fmt.Errorf("encode alert: %w", err)
	}
	b.nalerts++
	return nil
}

// AddResourcePane encodes p into the batch; its label set and name symbol
// must come from b. It fails, adding nothing, if p cannot be encoded.
// AddResourcePane does not retain p.
func (b *Builder) AddResourcePane(p *tpflowpb.ResourcePane) error {
	b.init()
	b.mustLabelSet("resource pane", p.GetLabels())
	b.mustSymbol("resource pane name", p.GetName())
	if err := b.addMessage(fieldResourcePanes, p); err != nil {
		return fmt.Errorf("encode resource pane: %w", err)
	}
	b.nresource++
	return nil
}

func appendVarintField(dst []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return dst
	}
	return protowire.AppendVarint(append(dst, byte(num)<<3|byte(protowire.VarintType)), v)
}

func appendBytesHeader(dst []byte, num protowire.Number, n int) []byte {
	return protowire.AppendVarint(append(dst, byte(num)<<3|byte(protowire.BytesType)), uint64(n))
}

// AppendTo appends the encoded EventBatch to dst and returns the extended
// slice. It does not change b. schema_version is written last, so that a
// batch cut short is always detected by Decode.
func (b *Builder) AppendTo(dst []byte) []byte {
	b.init()
	dst = slices.Grow(dst, b.Size())
	for _, s := range b.symbols {
		dst = appendBytesHeader(dst, fieldSymbols, len(s))
		dst = append(dst, s...)
	}
	for i := 0; i+1 < len(b.labelOffsets); i++ {
		refs := b.labelRefs[b.labelOffsets[i]:b.labelOffsets[i+1]]
		packed := 0
		for _, r := range refs {
			packed += protowire.SizeVarint(uint64(r))
		}
		dst = appendBytesHeader(dst, fieldLabelSets, labelSetBodySize(packed))
		if packed > 0 {
			dst = appendBytesHeader(dst, 1, packed)
			for _, r := range refs {
				dst = protowire.AppendVarint(dst, uint64(r))
			}
		}
	}
	for _, s := range b.series {
		dst = appendBytesHeader(dst, fieldSeries, seriesSize(s))
		dst = appendVarintField(dst, 1, uint64(s.Labels))
		dst = appendVarintField(dst, 2, uint64(s.Method))
	}
	for i := range b.calls {
		c := &b.calls[i]
		dst = appendBytesHeader(dst, fieldCalls, callSize(c))
		dst = appendVarintField(dst, 1, uint64(c.TsUnixMs))
		dst = appendVarintField(dst, 2, uint64(c.Series))
		dst = appendVarintField(dst, 3, uint64(c.LatencyUs))
		dst = appendVarintField(dst, 4, uint64(c.Status))
		if c.OK {
			dst = append(dst, 5<<3|byte(protowire.VarintType), 1)
		}
	}
	for i := range b.metrics {
		m := &b.metrics[i]
		dst = appendBytesHeader(dst, fieldMetrics, metricSize(m))
		dst = appendVarintField(dst, 1, uint64(m.TsUnixMs))
		dst = appendVarintField(dst, 2, uint64(m.Labels))
		dst = appendVarintField(dst, 3, uint64(m.Name))
		if bits := math.Float64bits(m.Value); bits != 0 {
			dst = protowire.AppendFixed64(append(dst, 4<<3|byte(protowire.Fixed64Type)), bits)
		}
		dst = appendVarintField(dst, 5, uint64(m.Kind))
	}
	dst = append(dst, b.other...)
	if b.producer != "" {
		dst = appendBytesHeader(dst, fieldProducer, len(b.producer))
		dst = append(dst, b.producer...)
	}
	return protowire.AppendVarint(append(dst, fieldVersion<<3|byte(protowire.VarintType)), schemas.SchemaVersion)
}
