package codec

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

// wire is a tiny hand encoder for crafting inputs that proto.Marshal never
// produces. Every method returns a new slice, so that one prefix can be
// extended in several ways.
type wire []byte

func (w wire) varint(num protowire.Number, v uint64) wire {
	return protowire.AppendVarint(protowire.AppendTag(slices.Clip(w), num, protowire.VarintType), v)
}

func (w wire) bytes(num protowire.Number, v []byte) wire {
	return protowire.AppendBytes(protowire.AppendTag(slices.Clip(w), num, protowire.BytesType), v)
}

func (w wire) str(num protowire.Number, s string) wire { return w.bytes(num, []byte(s)) }

func (w wire) fixed64(num protowire.Number, v uint64) wire {
	return protowire.AppendFixed64(protowire.AppendTag(slices.Clip(w), num, protowire.Fixed64Type), v)
}

func (w wire) raw(b ...byte) wire { return append(slices.Clip(w), b...) }

// validTables is the prefix of a small valid batch: symbols "", "app",
// "cart", "m"; label set 0 {app=cart}; series 0 (0, "m").
func validTables() wire {
	ls := wire{}.bytes(1, protowire.AppendVarint(protowire.AppendVarint(nil, 1), 2))
	return wire{}.varint(1, 1).str(2, "").str(2, "app").str(2, "cart").str(2, "m").
		bytes(3, ls).bytes(4, wire{}.varint(1, 0).varint(2, 3))
}

// TestDecodeWireVariants covers encodings proto.Marshal never writes but other
// writers may: unpacked and split packed refs, fields in reverse and
// interleaved order, repeated scalars (last wins), unknown fields of every wire
// type at every level.
func TestDecodeWireVariants(t *testing.T) {
	unknowns := wire{}.varint(99, 5).fixed64(100, 7).bytes(101, []byte("zz")).
		raw(protowire.AppendTag(nil, 102, protowire.Fixed32Type)...).raw(1, 2, 3, 4).
		raw(protowire.AppendTag(nil, 103, protowire.StartGroupType)...).varint(1, 1).
		raw(protowire.AppendTag(nil, 103, protowire.EndGroupType)...)
	// Label set with refs unpacked, then a packed chunk, with unknowns between.
	ls := wire{}.varint(1, 1).raw(unknowns...).varint(1, 2).
		bytes(1, protowire.AppendVarint(protowire.AppendVarint(nil, 3), 2))
	call := wire{}.varint(5, 1).varint(4, 500).raw(unknowns...).varint(3, 77).varint(2, 0).varint(1, 1234).varint(1, 1235).
		varint(3, 1<<40+88) // uint32 truncation, as proto3 does
	metric := wire{}.fixed64(4, 0x3ff0000000000000).varint(5, 2).varint(3, 3).raw(unknowns...).varint(1, 9)
	buf := wire{}.raw(unknowns...).
		bytes(5, call).                                 // calls before the series they use
		bytes(4, wire{}.varint(2, 3).raw(unknowns...)). // series 0: labels 0, method "m"
		bytes(7, metric).
		str(10, "first").
		str(2, "").str(2, "app").bytes(3, ls).str(2, "cart").str(2, "m").
		varint(1, 1).
		bytes(5, wire{}.varint(2, 0)).
		str(10, "prod").
		raw(unknowns...)
	var b Batch
	if err := Decode(buf, &b); err != nil {
		t.Fatal(err)
	}
	pb := new(tpflowpb.EventBatch)
	if err := proto.Unmarshal(buf, pb); err != nil {
		t.Fatal(err)
	}
	checkAgainstPB(t, &b, pb)
	if want := []uint32{1, 2, 3, 2}; fmt.Sprint(b.LabelSet(0)) != fmt.Sprint(want) {
		t.Errorf("LabelSet(0) = %v, want %v", b.LabelSet(0), want)
	}
	if want := (Call{TsUnixMs: 1235, LatencyUs: 88, Status: 500, OK: true}); b.Calls[0] != want {
		t.Errorf("Calls[0] = %+v, want %+v", b.Calls[0], want)
	}
	if b.Producer != "prod" || b.Label(0, "app") != "cart" || b.Metrics[0].Value != 1 || b.Metrics[0].Kind != 2 {
		t.Errorf("producer %q, app %q, metric %+v", b.Producer, b.Label(0, "app"), b.Metrics[0])
	}
}

func TestDecodeEmptyTables(t *testing.T) {
	// Only a version and a metric whose references are all 0: reference 0
	// into empty tables is "" and the empty label set.
	buf := wire{}.varint(1, 1).bytes(7, wire{}.varint(1, 5))
	var b Batch
	if err := Decode(buf, &b); err != nil {
		t.Fatal(err)
	}
	if len(b.Symbols) != 1 || b.Symbols[0] != "" || b.NumLabelSets() != 1 || len(b.LabelSet(0)) != 0 || len(b.Metrics) != 1 {
		t.Fatalf("decoded %+v", b)
	}
	if b.Label(0, "app") != "" || b.Symbol(7) != "" || b.LabelSet(1) != nil {
		t.Errorf("out-of-range helpers: %q %q %v", b.Label(0, "app"), b.Symbol(7), b.LabelSet(1))
	}
}

func TestDecodeErrors(t *testing.T) {
	v := wire{}.varint(1, 1)
	tables := validTables()
	cases := []struct {
		name string
		buf  []byte
		want error
		msg  string // a substring of the error text
	}{
		{"empty", nil, ErrUnknownVersion, "missing"},
		{"no version", wire{}.str(2, "").str(10, "p"), ErrUnknownVersion, "missing"},
		{"version 0", wire{}.varint(1, 0), ErrUnknownVersion, "schema_version 0"},
		{"version 2", wire{}.varint(1, 2).str(2, ""), ErrUnknownVersion, "schema_version 2"},
		{"version 2^32+1", wire{}.varint(1, 1<<32+1), ErrUnknownVersion, "schema_version"},
		{"version as bytes", wire{}.str(1, "1"), ErrMalformed, "wire type"},
		{"bad varint", append(wire{}.raw(1<<3), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), ErrMalformed, ""},
		{"field number 0", wire{}.raw(0x00, 0x01), ErrMalformed, ""},
		{"wire type 7", v.raw(2<<3 | 7), ErrMalformed, ""},
		{"unmatched end group", v.raw(protowire.AppendTag(nil, 50, protowire.EndGroupType)...), ErrMalformed, ""},
		{"symbols as varint", v.varint(2, 3), ErrMalformed, "wire type"},
		{"call as fixed64", v.fixed64(5, 1), ErrMalformed, "wire type"},
		{"call field as bytes", tables.bytes(5, wire{}.str(3, "x")), ErrMalformed, "call 0"},
		{"call field bad varint", tables.bytes(5, append(wire{}.raw(3<<3), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)), ErrMalformed, "call 0"},
		{"call varint truncated", tables.bytes(5, wire{}.raw(3<<3, 0x80)), ErrTruncated, "call 0"},
		{"series field as fixed64", v.bytes(4, wire{}.fixed64(1, 0)), ErrMalformed, "series 0"},
		{"label refs as fixed64", v.bytes(3, wire{}.fixed64(1, 0)), ErrMalformed, "label set 0"},
		{"packed refs bad varint", v.bytes(3, wire{}.bytes(1, []byte{0x80})), ErrTruncated, "label set 0"},
		{"metric value as varint", v.bytes(7, wire{}.varint(4, 1)), ErrMalformed, "metric 0"},
		{"metric kind 256", v.bytes(7, wire{}.varint(5, 256)), ErrMalformed, "kind 256"},
		{"log message as varint", v.bytes(6, wire{}.varint(5, 1)), ErrMalformed, "log 0"},
		{"pane doubles 7 bytes", v.bytes(8, wire{}.bytes(15, make([]byte, 7))), ErrMalformed, "pane 0"},
		{"pane sum as varint", v.bytes(8, wire{}.varint(8, 1)), ErrMalformed, "pane 0"},
		{"alert annotation entry malformed", v.bytes(9, wire{}.bytes(3, wire{}.varint(1, 1))), ErrMalformed, "alert 0"},
		{"truncated length", v.raw(2<<3|2, 5, 'a'), ErrTruncated, ""},
		{"truncated tag", v.raw(0x80), ErrTruncated, ""},
		{"truncated call fast path", v.raw(5<<3|2, 9, 8, 1), ErrTruncated, "call 0"},
		{"call series out of range", tables.bytes(5, wire{}.varint(2, 1)), ErrBadReference, "call 0: series 1 out of range (1 series)"},
		{"call without series", v.bytes(5, wire{}.varint(3, 1)), ErrBadReference, "call 0: series 0 out of range (0 series)"},
		{"series label set out of range", tables.bytes(4, wire{}.varint(1, 1)), ErrBadReference, "series 1: label set 1"},
		{"series method out of range", tables.bytes(4, wire{}.varint(2, 4)), ErrBadReference, "series 1: method symbol 4"},
		{"odd label refs", v.str(2, "").bytes(3, wire{}.varint(1, 0)), ErrBadReference, "label set 0 has 1 references"},
		{"label symbol out of range", tables.bytes(3, wire{}.varint(1, 0).varint(1, 9)), ErrBadReference, "label set 1: symbol 9"},
		{"symbol 0 not empty", wire{}.varint(1, 1).str(2, "x"), ErrBadReference, "symbol 0"},
		{"metric labels out of range", tables.bytes(7, wire{}.varint(2, 1)), ErrBadReference, "metric 0: label set 1"},
		{"metric name out of range", tables.bytes(7, wire{}.varint(3, 4)), ErrBadReference, "metric 0: name symbol 4"},
		{"log labels out of range", tables.bytes(6, wire{}.varint(2, 1)), ErrBadReference, "log 0"},
		{"log stream out of range", tables.bytes(6, wire{}.varint(3, 4)), ErrBadReference, "log 0"},
		{"log source out of range", tables.bytes(6, wire{}.varint(6, 40)), ErrBadReference, "log 0"},
		{"pane method out of range", tables.bytes(8, wire{}.varint(2, 4)), ErrBadReference, "pane 0"},
		{"alert labels out of range", tables.bytes(9, wire{}.varint(2, 2)), ErrBadReference, "alert 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var b Batch
			err := Decode(c.buf, &b)
			if !errors.Is(err, c.want) {
				t.Fatalf("Decode = %v, want %v", err, c.want)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Errorf("Decode = %q, want it to mention %q", err, c.msg)
			}
			if _, ferr := b.Full(); ferr == nil {
				t.Errorf("Full after a failed Decode succeeded")
			}
		})
	}
}

func TestDecodeOversized(t *testing.T) {
	var bld Builder
	bld.SetProducer(strings.Repeat("p", 100))
	buf := bld.AppendTo(nil)
	var b Batch
	if err := (DecodeOptions{MaxBytes: len(buf)}).Decode(buf, &b); err != nil {
		t.Fatalf("batch of exactly MaxBytes: %v", err)
	}
	err := (DecodeOptions{MaxBytes: len(buf) - 1}).Decode(buf, &b)
	if !errors.Is(err, ErrOversized) || Reason(err) != "oversized" {
		t.Fatalf("batch one byte over MaxBytes: %v", err)
	}
	big := make([]byte, DefaultMaxBytes+1)
	copy(big, buf)
	if err := Decode(big, &b); !errors.Is(err, ErrOversized) {
		t.Fatalf("batch over DefaultMaxBytes: %v", err)
	}
	if err := (DecodeOptions{MaxBytes: -1}).Decode(buf, &b); err != nil {
		t.Fatalf("negative MaxBytes means the default: %v", err)
	}
}

// TestDecodeTruncatedEverywhere cuts a Builder batch at every byte: since the
// Builder writes schema_version last, every strict prefix must be rejected.
func TestDecodeTruncatedEverywhere(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	var bld Builder
	fillBuilder(r, &bld)
	ls := bld.LabelSet([]schemas.Label{{Name: "app", Value: "a"}})
	if err := bld.AddPane(&tpflowpb.PaneStat{Labels: ls, Count: 3, CentroidMeans: []float64{1, 2}, CentroidWeights: []float64{1, 2}}); err != nil {
		t.Fatal(err)
	}
	if err := bld.AddAlert(&tpflowpb.Alert{Rule: "r", Labels: ls, Annotations: map[string]string{"a": "b"}}); err != nil {
		t.Fatal(err)
	}
	bld.SetProducer("p")
	buf := bld.AppendTo(nil)
	var b Batch
	if err := Decode(buf, &b); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for n := 0; n < len(buf); n++ {
		// A fresh copy per cut, so that reading past the cut would be
		// caught by the race detector and the bounds checks alike.
		cut := append([]byte(nil), buf[:n]...)
		err := Decode(cut, &b)
		if err == nil {
			t.Fatalf("prefix of %d/%d bytes decoded without error", n, len(buf))
		}
		counts[Reason(err)]++
	}
	if counts["truncated"] == 0 || counts["unknown_version"] == 0 || counts["truncated"]+counts["unknown_version"] != len(buf) {
		t.Errorf("error classes over all prefixes: %v, want only truncated and unknown_version", counts)
	}
}

// TestDecodeGarbage feeds random bytes and random mutations of a valid batch:
// Decode must return (not panic) and, on success, every reference must be in
// range.
func TestDecodeGarbage(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	valid := benchBatch(50, 10)
	var b Batch
	fails := 0
	for i := range 20000 {
		var buf []byte
		if i%2 == 0 {
			buf = make([]byte, r.IntN(64))
			for k := range buf {
				buf[k] = byte(r.Uint32())
			}
		} else {
			buf = append([]byte(nil), valid...)
			for range 1 + r.IntN(4) {
				buf[r.IntN(len(buf))] = byte(r.Uint32())
			}
		}
		if err := Decode(buf, &b); err != nil {
			fails++
			if Reason(err) == "other" {
				t.Fatalf("input %x: error %v has no class", buf, err)
			}
			continue
		}
		checkReferences(t, &b)
	}
	if fails == 0 {
		t.Errorf("no garbage input was rejected")
	}
}

// checkReferences asserts the invariants a successful Decode promises.
func checkReferences(t *testing.T, b *Batch) {
	t.Helper()
	nsym := uint32(len(b.Symbols))
	if nsym == 0 || b.Symbols[0] != "" {
		t.Fatalf("symbol table %q does not start with \"\"", b.Symbols)
	}
	if b.NumLabelSets() < 1 || b.LabelOffsets[0] != 0 || int(b.LabelOffsets[len(b.LabelOffsets)-1]) != len(b.LabelRefs) {
		t.Fatalf("label offsets %v do not cover %d refs", b.LabelOffsets, len(b.LabelRefs))
	}
	for i := 0; i < b.NumLabelSets(); i++ {
		refs := b.LabelSet(uint32(i))
		if len(refs)%2 != 0 {
			t.Fatalf("label set %d has %d refs", i, len(refs))
		}
		for _, r := range refs {
			if r >= nsym {
				t.Fatalf("label set %d: symbol %d of %d", i, r, nsym)
			}
		}
	}
	for i, s := range b.Series {
		if int(s.Labels) >= b.NumLabelSets() || s.Method >= nsym {
			t.Fatalf("series %d = %+v out of range", i, s)
		}
	}
	for i, c := range b.Calls {
		if int(c.Series) >= len(b.Series) {
			t.Fatalf("call %d: series %d of %d", i, c.Series, len(b.Series))
		}
	}
	for i, m := range b.Metrics {
		if int(m.Labels) >= b.NumLabelSets() || m.Name >= nsym {
			t.Fatalf("metric %d = %+v out of range", i, m)
		}
	}
}

func TestReason(t *testing.T) {
	f := func(err error, want string) {
		t.Helper()
		if got := Reason(err); got != want {
			t.Errorf("Reason(%v) = %q, want %q", err, got, want)
		}
	}
	f(nil, "other")
	f(errors.New("boom"), "other")
	f(ErrTruncated, "truncated")
	f(fmt.Errorf("call 3: %w", ErrMalformed), "malformed")
	f(fmt.Errorf("at %s: %w", "t/0@5", fmt.Errorf("x: %w", ErrUnknownVersion)), "unknown_version")
	f(ErrOversized, "oversized")
	f(fmt.Errorf("x: %w", ErrBadReference), "bad_reference")
}

func TestFull(t *testing.T) {
	var b Batch
	if _, err := b.Full(); err == nil {
		t.Fatal("Full on a zero Batch succeeded")
	}
	// Decode does not check UTF-8; Full does, as every proto3 reader does.
	buf := wire{}.varint(1, 1).str(2, "").str(2, "\xff")
	if err := Decode(buf, &b); err != nil {
		t.Fatalf("Decode of invalid UTF-8 symbol: %v", err)
	}
	if _, err := b.Full(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Full of invalid UTF-8 symbol = %v, want ErrMalformed", err)
	}
}

// TestBatchAliasesBuffer pins down the documented ownership: symbols and
// producer point into the decoded buffer, and Full's result does not.
func TestBatchAliasesBuffer(t *testing.T) {
	buf := wire{}.varint(1, 1).str(2, "").str(2, "abc").str(10, "prod")
	var b Batch
	if err := Decode(buf, &b); err != nil {
		t.Fatal(err)
	}
	full, err := b.Full()
	if err != nil {
		t.Fatal(err)
	}
	copy(buf[bytes.Index(buf, []byte("abc")):], "xyz")
	if b.Symbols[1] != "xyz" {
		t.Errorf("Symbols[1] = %q after the buffer changed; the Batch should alias it", b.Symbols[1])
	}
	if full.GetSymbols()[1] != "abc" {
		t.Errorf("Full().Symbols[1] = %q, want an independent copy", full.GetSymbols()[1])
	}
}

func TestDecodeAllocs(t *testing.T) {
	buf := benchBatch(1000, 300)
	var b Batch
	if err := Decode(buf, &b); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if err := Decode(buf, &b); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Decode into a reused Batch allocates %v times per batch, want 0", allocs)
	}
	if len(b.Calls) != 1000 {
		t.Fatalf("decoded %d calls, want 1000", len(b.Calls))
	}
}

// TestDecodeKeepBadRecords decodes a batch with a log whose bytes are not
// a message and a log with a symbol out of range between good ones: by
// default the batch fails; with KeepBadRecords it decodes and names
// exactly the two bad records.
func TestDecodeKeepBadRecords(t *testing.T) {
	var bld Builder
	ls := bld.LabelSet([]schemas.Label{{Name: "app", Value: "a"}})
	for i := range 3 {
		if err := bld.AddLog(&tpflowpb.LogEvent{Labels: ls, Message: fmt.Sprint("good ", i)}); err != nil {
			t.Fatal(err)
		}
	}
	buf := bld.AppendTo(nil)
	buf = append(buf, fieldLogs<<3|2, 2, 0xff, 0xff)     // log 3: a truncated varint
	buf = append(buf, fieldLogs<<3|2, 2, 3<<3, 100)      // log 4: stream symbol 100 (field 3, varint)
	buf = append(buf, fieldLogs<<3|2, 3, 5<<3|2, 1, 'x') // log 5: good
	var b Batch
	if err := Decode(buf, &b); err == nil {
		t.Fatal("Decode accepted a batch with bad logs")
	}
	if err := (DecodeOptions{KeepBadRecords: true}).Decode(buf, &b); err != nil {
		t.Fatalf("Decode with KeepBadRecords: %v", err)
	}
	if len(b.Logs) != 6 || len(b.BadRecords) != 2 {
		t.Fatalf("%d logs, bad %+v; want 6 logs and 2 bad", len(b.Logs), b.BadRecords)
	}
	if r := b.BadRecords[0]; r.Kind != RecordLog || r.Index != 3 || !errors.Is(r.Err, ErrTruncated) {
		t.Errorf("first bad record %+v, want log 3 truncated", r)
	}
	if r := b.BadRecords[1]; r.Kind != RecordLog || r.Index != 4 || !errors.Is(r.Err, ErrBadReference) {
		t.Errorf("second bad record %+v, want log 4 with a bad reference", r)
	}
	for i := range 6 {
		if err := b.BadRecord(RecordLog, i); (err != nil) != (i == 3 || i == 4) {
			t.Errorf("BadRecord(log, %d) = %v", i, err)
		}
	}
	// Reset forgets them.
	if err := (DecodeOptions{KeepBadRecords: true}).Decode(bld.AppendTo(nil), &b); err != nil || len(b.BadRecords) != 0 {
		t.Errorf("a good batch after a bad one: %v, bad %+v", err, b.BadRecords)
	}
}
