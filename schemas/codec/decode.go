package codec

import (
	"fmt"
	"math"
	"unsafe"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tpflow/tpflow/schemas"
)

// DefaultMaxBytes is the largest batch Decode accepts unless DecodeOptions
// says otherwise. Producers cut batches at about 1 MiB before compression.
const DefaultMaxBytes = 16 << 20

// DecodeOptions configures decoding. The zero value uses the defaults.
type DecodeOptions struct {
	// MaxBytes is the largest accepted input in bytes; zero or negative
	// means DefaultMaxBytes.
	MaxBytes int
	// KeepBadRecords makes a log, pane, alert or resource pane that fails
	// its check (wire structure, references) leave the rest of the batch
	// valid: Decode keeps it in place, lists it in Batch.BadRecords and
	// succeeds, so that a consumer can store the others and dead-letter it
	// alone. The batch's own tables (symbols, label sets, series) and its
	// calls and metrics still fail the whole batch.
	KeepBadRecords bool
}

// Decode decodes buf into b with the default options. See
// DecodeOptions.Decode.
func Decode(buf []byte, b *Batch) error {
	return DecodeOptions{}.Decode(buf, b)
}

// Field numbers of EventBatch.
const (
	fieldVersion   = 1
	fieldSymbols   = 2
	fieldLabelSets = 3
	fieldSeries    = 4
	fieldCalls     = 5
	fieldLogs      = 6
	fieldMetrics   = 7
	fieldPanes     = 8
	fieldAlerts    = 9
	fieldProducer  = 10
	// fieldResourcePanes is the last known field; a higher number is
	// skipped as unknown.
	fieldResourcePanes = 11
)

// Decode resets b and decodes the EventBatch in buf into it, reusing b's
// slices, so that decoding into the same Batch in steady state allocates
// nothing. On success b aliases buf and is valid until buf is modified or b
// is decoded into again. On failure the contents of b are unspecified and the
// error wraps one of the package's sentinel errors. Decode never panics.
func (o DecodeOptions) Decode(buf []byte, b *Batch) error {
	b.Reset()
	limit := o.MaxBytes
	if limit <= 0 {
		limit = DefaultMaxBytes
	}
	if len(buf) > limit {
		return fmt.Errorf("%d bytes, limit %d: %w", len(buf), limit, ErrOversized)
	}
	b.LabelOffsets = append(b.LabelOffsets, 0)
	version, haveVersion := uint64(0), false
	m := buf
	for len(m) > 0 {
		// Fast path for the bulk of a batch: a call shorter than 128 bytes.
		if len(m) >= 2 && m[0] == fieldCalls<<3|byte(protowire.BytesType) && m[1] < 0x80 {
			end := 2 + int(m[1])
			if end > len(m) {
				return fmt.Errorf("call %d at byte %d: %w", len(b.Calls), len(buf)-len(m), ErrTruncated)
			}
			b.Calls = append(b.Calls, Call{})
			if err := decodeCall(m[2:end], &b.Calls[len(b.Calls)-1]); err != nil {
				return fmt.Errorf("call %d: %w", len(b.Calls)-1, err)
			}
			m = m[end:]
			continue
		}
		num, typ, n := consumeTag(m)
		if n < 0 {
			return fmt.Errorf("at byte %d: %w", len(buf)-len(m), wireErr(n))
		}
		m = m[n:]
		if num < 1 || num > fieldResourcePanes {
			n = protowire.ConsumeFieldValue(num, typ, m)
			if n < 0 {
				return fmt.Errorf("unknown field %d: %w", num, wireErr(n))
			}
			m = m[n:]
			continue
		}
		if num == fieldVersion {
			if typ != protowire.VarintType {
				return fmt.Errorf("schema_version: %w", wireTypeErr(num, typ))
			}
			v, n := consumeVarint(m)
			if n < 0 {
				return fmt.Errorf("schema_version: %w", wireErr(n))
			}
			m = m[n:]
			version, haveVersion = v, true
			continue
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("batch: %w", wireTypeErr(num, typ))
		}
		v, n := protowire.ConsumeBytes(m)
		if n < 0 {
			return fmt.Errorf("field %d at byte %d: %w", num, len(buf)-len(m), wireErr(n))
		}
		m = m[n:]
		switch num {
		case fieldSymbols:
			b.Symbols = append(b.Symbols, aliasString(v))
		case fieldLabelSets:
			if err := b.decodeLabelSet(v); err != nil {
				return fmt.Errorf("label set %d: %w", b.NumLabelSets(), err)
			}
		case fieldSeries:
			b.Series = append(b.Series, Series{})
			if err := decodeSeries(v, &b.Series[len(b.Series)-1]); err != nil {
				return fmt.Errorf("series %d: %w", len(b.Series)-1, err)
			}
		case fieldCalls:
			b.Calls = append(b.Calls, Call{})
			if err := decodeCall(v, &b.Calls[len(b.Calls)-1]); err != nil {
				return fmt.Errorf("call %d: %w", len(b.Calls)-1, err)
			}
		case fieldMetrics:
			b.Metrics = append(b.Metrics, Metric{})
			if err := decodeMetric(v, &b.Metrics[len(b.Metrics)-1]); err != nil {
				return fmt.Errorf("metric %d: %w", len(b.Metrics)-1, err)
			}
		case fieldLogs:
			b.Logs = append(b.Logs, v)
		case fieldPanes:
			b.Panes = append(b.Panes, v)
		case fieldAlerts:
			b.Alerts = append(b.Alerts, v)
		case fieldProducer:
			b.Producer = aliasString(v)
		case fieldResourcePanes:
			b.ResourcePanes = append(b.ResourcePanes, v)
		}
	}
	if !haveVersion {
		return fmt.Errorf("schema_version missing: %w", ErrUnknownVersion)
	}
	if version != schemas.SchemaVersion {
		return fmt.Errorf("schema_version %d, want %d: %w", version, schemas.SchemaVersion, ErrUnknownVersion)
	}
	b.SchemaVersion = uint32(version)
	if err := b.check(o.KeepBadRecords); err != nil {
		return err
	}
	b.raw = buf
	return nil
}

// check validates every reference once all tables are known (fields may come
// in any order).
func (b *Batch) check(keepBad bool) error {
	if len(b.Symbols) == 0 {
		b.Symbols = append(b.Symbols, "")
	} else if b.Symbols[0] != "" {
		return fmt.Errorf("symbol 0 is %q, want \"\": %w", b.Symbols[0], ErrBadReference)
	}
	if len(b.LabelOffsets) == 1 {
		b.LabelOffsets = append(b.LabelOffsets, 0)
	}
	nsym := uint32(len(b.Symbols))
	nsets := uint32(b.NumLabelSets())
	nseries := uint32(len(b.Series))
	if uint64(len(b.Symbols)) > math.MaxUint32 || uint64(len(b.Series)) > math.MaxUint32 {
		// Impossible within MaxBytes, but keeps the uint32 casts honest.
		return fmt.Errorf("table too large: %w", ErrOversized)
	}
	for i := 0; i+1 < len(b.LabelOffsets); i++ {
		lo, hi := b.LabelOffsets[i], b.LabelOffsets[i+1]
		if (hi-lo)%2 != 0 {
			return fmt.Errorf("label set %d has %d references, want name, value pairs: %w", i, hi-lo, ErrBadReference)
		}
		for _, r := range b.LabelRefs[lo:hi] {
			if r >= nsym {
				return fmt.Errorf("label set %d: symbol %d out of range (%d symbols): %w", i, r, nsym, ErrBadReference)
			}
		}
	}
	for i, s := range b.Series {
		if s.Labels >= nsets {
			return fmt.Errorf("series %d: label set %d out of range (%d label sets): %w", i, s.Labels, nsets, ErrBadReference)
		}
		if s.Method >= nsym {
			return fmt.Errorf("series %d: method symbol %d out of range (%d symbols): %w", i, s.Method, nsym, ErrBadReference)
		}
	}
	for i := range b.Calls {
		if s := b.Calls[i].Series; s >= nseries {
			return fmt.Errorf("call %d: series %d out of range (%d series): %w", i, s, nseries, ErrBadReference)
		}
	}
	for i := range b.Metrics {
		mt := &b.Metrics[i]
		if mt.Labels >= nsets {
			return fmt.Errorf("metric %d: label set %d out of range (%d label sets): %w", i, mt.Labels, nsets, ErrBadReference)
		}
		if mt.Name >= nsym {
			return fmt.Errorf("metric %d: name symbol %d out of range (%d symbols): %w", i, mt.Name, nsym, ErrBadReference)
		}
	}
	for _, k := range []struct {
		kind, name string
		recs       [][]byte
		fields     []fieldKind
	}{
		{RecordLog, "log", b.Logs, logFields[:]},
		{RecordPane, "pane", b.Panes, paneFields[:]},
		{RecordAlert, "alert", b.Alerts, alertFields[:]},
		{RecordResourcePane, "resource pane", b.ResourcePanes, resourcePaneFields[:]},
	} {
		for i, v := range k.recs {
			if err := checkMessage(v, k.fields, nsym, nsets); err != nil {
				err = fmt.Errorf("%s %d: %w", k.name, i, err)
				if !keepBad {
					return err
				}
				b.BadRecords = append(b.BadRecords, RecordError{Kind: k.kind, Index: i, Err: err})
			}
		}
	}
	return nil
}

// aliasString returns the bytes of v as a string without copying.
func aliasString(v []byte) string {
	if len(v) == 0 {
		return ""
	}
	return unsafe.String(&v[0], len(v))
}

// consumeVarint is protowire.ConsumeVarint with an inlined one-byte fast
// path; most fields of a call are small.
func consumeVarint(b []byte) (uint64, int) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	return protowire.ConsumeVarint(b)
}

// consumeTag is protowire.ConsumeTag with an inlined fast path for the
// one-byte tags of field numbers 1 to 15.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	if len(b) > 0 && b[0] < 0x80 && b[0] >= 8 {
		return protowire.Number(b[0] >> 3), protowire.Type(b[0] & 7), 1
	}
	return protowire.ConsumeTag(b)
}

// skipField consumes the value of an unknown field.
func skipField(num protowire.Number, typ protowire.Type, m []byte) ([]byte, error) {
	n := protowire.ConsumeFieldValue(num, typ, m)
	if n < 0 {
		return nil, fmt.Errorf("unknown field %d: %w", num, wireErr(n))
	}
	return m[n:], nil
}

func (b *Batch) decodeLabelSet(m []byte) error {
	for len(m) > 0 {
		num, typ, n := consumeTag(m)
		if n < 0 {
			return wireErr(n)
		}
		m = m[n:]
		if num != 1 {
			var err error
			if m, err = skipField(num, typ, m); err != nil {
				return err
			}
			continue
		}
		switch typ {
		case protowire.VarintType:
			v, n := consumeVarint(m)
			if n < 0 {
				return fmt.Errorf("refs: %w", wireErr(n))
			}
			m = m[n:]
			b.LabelRefs = append(b.LabelRefs, uint32(v))
		case protowire.BytesType:
			p, n := protowire.ConsumeBytes(m)
			if n < 0 {
				return fmt.Errorf("refs: %w", wireErr(n))
			}
			m = m[n:]
			for len(p) > 0 {
				v, n := consumeVarint(p)
				if n < 0 {
					return fmt.Errorf("packed refs: %w", wireErr(n))
				}
				p = p[n:]
				b.LabelRefs = append(b.LabelRefs, uint32(v))
			}
		default:
			return wireTypeErr(num, typ)
		}
	}
	if uint64(len(b.LabelRefs)) > math.MaxUint32 {
		return fmt.Errorf("too many label references: %w", ErrOversized)
	}
	b.LabelOffsets = append(b.LabelOffsets, uint32(len(b.LabelRefs)))
	return nil
}

func decodeSeries(m []byte, s *Series) error {
	for len(m) > 0 {
		num, typ, n := consumeTag(m)
		if n < 0 {
			return wireErr(n)
		}
		m = m[n:]
		if num != 1 && num != 2 {
			var err error
			if m, err = skipField(num, typ, m); err != nil {
				return err
			}
			continue
		}
		if typ != protowire.VarintType {
			return wireTypeErr(num, typ)
		}
		v, n := consumeVarint(m)
		if n < 0 {
			return fmt.Errorf("field %d: %w", num, wireErr(n))
		}
		m = m[n:]
		if num == 1 {
			s.Labels = uint32(v)
		} else {
			s.Method = uint32(v)
		}
	}
	return nil
}

// decodeCall is the hot path. The fast loop handles the one-byte varint tags
// of fields 1 to 5, which is every field a Builder or proto.Marshal writes,
// with one- and two-byte values decoded inline; anything else continues in
// decodeCallSlow, and longer varints go through protowire so that the rules
// are exactly its rules.
func decodeCall(m []byte, c *Call) error {
	for len(m) >= 2 {
		tag := m[0]
		if tag&7 != byte(protowire.VarintType) || tag < 1<<3 || tag > 5<<3 {
			break
		}
		var v uint64
		if x := m[1]; x < 0x80 {
			v = uint64(x)
			m = m[2:]
		} else if len(m) >= 3 && m[2] < 0x80 {
			v = uint64(x&0x7f) | uint64(m[2])<<7
			m = m[3:]
		} else {
			var n int
			v, n = protowire.ConsumeVarint(m[1:])
			if n < 0 {
				return fmt.Errorf("field %d: %w", tag>>3, wireErr(n))
			}
			m = m[1+n:]
		}
		switch tag >> 3 {
		case 1:
			c.TsUnixMs = int64(v)
		case 2:
			c.Series = uint32(v)
		case 3:
			c.LatencyUs = uint32(v)
		case 4:
			c.Status = uint32(v)
		case 5:
			c.OK = v != 0
		}
	}
	if len(m) == 0 {
		return nil
	}
	return decodeCallSlow(m, c)
}

// decodeCallSlow decodes CallEvent fields in full generality: multi-byte
// tags, unknown fields and wire type errors.
func decodeCallSlow(m []byte, c *Call) error {
	for len(m) > 0 {
		num, typ, n := consumeTag(m)
		if n < 0 {
			return wireErr(n)
		}
		m = m[n:]
		if typ != protowire.VarintType {
			if num >= 1 && num <= 5 {
				return wireTypeErr(num, typ)
			}
			var err error
			if m, err = skipField(num, typ, m); err != nil {
				return err
			}
			continue
		}
		v, n := consumeVarint(m)
		if n < 0 {
			return fmt.Errorf("field %d: %w", num, wireErr(n))
		}
		m = m[n:]
		switch num {
		case 1:
			c.TsUnixMs = int64(v)
		case 2:
			c.Series = uint32(v)
		case 3:
			c.LatencyUs = uint32(v)
		case 4:
			c.Status = uint32(v)
		case 5:
			c.OK = v != 0
		}
	}
	return nil
}

func decodeMetric(m []byte, mt *Metric) error {
	for len(m) > 0 {
		num, typ, n := consumeTag(m)
		if n < 0 {
			return wireErr(n)
		}
		m = m[n:]
		switch num {
		case 1, 2, 3, 5:
			if typ != protowire.VarintType {
				return wireTypeErr(num, typ)
			}
			v, n := consumeVarint(m)
			if n < 0 {
				return fmt.Errorf("field %d: %w", num, wireErr(n))
			}
			m = m[n:]
			switch num {
			case 1:
				mt.TsUnixMs = int64(v)
			case 2:
				mt.Labels = uint32(v)
			case 3:
				mt.Name = uint32(v)
			case 5:
				// MetricKind is an open enum; a value that does not fit
				// the Metric is rejected rather than silently wrapped.
				if v > math.MaxUint8 {
					return fmt.Errorf("kind %d out of range: %w", int64(v), ErrMalformed)
				}
				mt.Kind = uint8(v)
			}
		case 4:
			if typ != protowire.Fixed64Type {
				return wireTypeErr(num, typ)
			}
			v, n := protowire.ConsumeFixed64(m)
			if n < 0 {
				return fmt.Errorf("value: %w", wireErr(n))
			}
			m = m[n:]
			mt.Value = math.Float64frombits(v)
		default:
			var err error
			if m, err = skipField(num, typ, m); err != nil {
				return err
			}
		}
	}
	return nil
}

// fieldKind describes a field of a message that Decode checks but does not
// decode.
type fieldKind uint8

const (
	kindUnknown  fieldKind = iota // skipped
	kindVarint                    // any varint scalar
	kindSymbol                    // varint symbol reference
	kindLabelSet                  // varint label set reference
	kindBytes                     // string
	kindFixed64                   // double
	kindDoubles                   // repeated double, packed or not
	kindMapEntry                  // map<string, string> entry
)

var logFields = [...]fieldKind{
	1: kindVarint, 2: kindLabelSet, 3: kindSymbol, 4: kindSymbol, 5: kindBytes,
	6: kindSymbol, 7: kindVarint, 8: kindVarint, 9: kindVarint, 10: kindVarint,
}

var paneFields = [...]fieldKind{
	1: kindLabelSet, 2: kindSymbol, 3: kindVarint, 4: kindVarint, 5: kindVarint,
	6: kindVarint, 7: kindVarint, 8: kindFixed64, 9: kindFixed64, 10: kindFixed64,
	11: kindFixed64, 12: kindFixed64, 13: kindFixed64, 14: kindFixed64,
	15: kindDoubles, 16: kindDoubles,
}

var resourcePaneFields = [...]fieldKind{
	1: kindLabelSet, 2: kindSymbol, 3: kindVarint, 4: kindVarint, 5: kindVarint,
	6: kindVarint, 7: kindFixed64, 8: kindFixed64, 9: kindFixed64,
}

var alertFields = [...]fieldKind{
	1: kindBytes, 2: kindLabelSet, 3: kindMapEntry, 4: kindVarint, 5: kindFixed64,
	6: kindVarint, 7: kindVarint, 8: kindVarint, 9: kindVarint, 10: kindBytes,
}

var mapEntryFields = [...]fieldKind{1: kindBytes, 2: kindBytes}

// checkMessage walks an encoded message whose fields are described by
// fields, checking wire types and that references are below nsym symbols and
// nsets label sets.
func checkMessage(m []byte, fields []fieldKind, nsym, nsets uint32) error {
	for len(m) > 0 {
		num, typ, n := consumeTag(m)
		if n < 0 {
			return wireErr(n)
		}
		m = m[n:]
		kind := kindUnknown
		if num >= 0 && int(num) < len(fields) {
			kind = fields[num]
		}
		want := protowire.BytesType
		switch kind {
		case kindUnknown:
			var err error
			if m, err = skipField(num, typ, m); err != nil {
				return err
			}
			continue
		case kindVarint, kindSymbol, kindLabelSet:
			want = protowire.VarintType
		case kindFixed64:
			want = protowire.Fixed64Type
		case kindDoubles:
			if typ == protowire.Fixed64Type {
				want = typ
			}
		}
		if typ != want {
			return wireTypeErr(num, typ)
		}
		switch typ {
		case protowire.VarintType:
			v, n := consumeVarint(m)
			if n < 0 {
				return fmt.Errorf("field %d: %w", num, wireErr(n))
			}
			m = m[n:]
			if kind == kindSymbol && uint32(v) >= nsym {
				return fmt.Errorf("field %d: symbol %d out of range (%d symbols): %w", num, uint32(v), nsym, ErrBadReference)
			}
			if kind == kindLabelSet && uint32(v) >= nsets {
				return fmt.Errorf("field %d: label set %d out of range (%d label sets): %w", num, uint32(v), nsets, ErrBadReference)
			}
		case protowire.Fixed64Type:
			_, n := protowire.ConsumeFixed64(m)
			if n < 0 {
				return fmt.Errorf("field %d: %w", num, wireErr(n))
			}
			m = m[n:]
		default: // BytesType
			v, n := protowire.ConsumeBytes(m)
			if n < 0 {
				return fmt.Errorf("field %d: %w", num, wireErr(n))
			}
			m = m[n:]
			switch kind {
			case kindDoubles:
				if len(v)%8 != 0 {
					return fmt.Errorf("field %d: packed doubles of %d bytes: %w", num, len(v), ErrMalformed)
				}
			case kindMapEntry:
				if err := checkMessage(v, mapEntryFields[:], nsym, nsets); err != nil {
					return fmt.Errorf("field %d: %w", num, err)
				}
			}
		}
	}
	return nil
}
