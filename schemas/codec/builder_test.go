package codec

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

func TestBuilderInterning(t *testing.T) {
	var b Builder
	if got := b.Symbol(""); got != 0 {
		t.Errorf(`Symbol("") = %d, want 0`, got)
	}
	a1, c, a2 := b.Symbol("a"), b.Symbol("c"), b.Symbol("a")
	if a1 != a2 || a1 == c || a1 == 0 {
		t.Errorf("Symbol interning: a=%d, c=%d, a again=%d", a1, c, a2)
	}
	x := b.LabelSet([]schemas.Label{{Name: "system", Value: "s"}, {Name: "app", Value: "a"}})
	y := b.LabelSet([]schemas.Label{{Name: "app", Value: "a"}, {Name: "system", Value: "s"}})
	z := b.LabelSet([]schemas.Label{{Name: "app", Value: "b"}, {Name: "system", Value: "s"}})
	empty := b.LabelSet(nil)
	if x != y || x == z || empty == x || empty == z {
		t.Errorf("LabelSet interning: x=%d y=%d z=%d empty=%d", x, y, z, empty)
	}
	s1, s2, s3 := b.Series(x, "m"), b.Series(y, "m"), b.Series(z, "m")
	if s1 != s2 || s1 == s3 || b.Series(x, "n") == s1 {
		t.Errorf("Series interning: %d %d %d", s1, s2, s3)
	}
	var d Batch
	if err := Decode(b.AppendTo(nil), &d); err != nil {
		t.Fatal(err)
	}
	// Sorted by name, whatever the input order.
	refs := d.LabelSet(x)
	if len(refs) != 4 || d.Symbol(refs[0]) != "app" || d.Symbol(refs[2]) != "system" {
		t.Errorf("label set %d = %v, want app then system", x, refs)
	}
	if d.Label(x, "system") != "s" || d.Label(z, "app") != "b" || len(d.LabelSet(empty)) != 0 {
		t.Errorf("labels read back: %q %q %v", d.Label(x, "system"), d.Label(z, "app"), d.LabelSet(empty))
	}
}

func TestBuilderInvalidUTF8(t *testing.T) {
	var b Builder
	i := b.Symbol("bad\xffname")
	if j := b.Symbol("bad\xffname"); j != i {
		t.Errorf("invalid symbol interned twice: %d, %d", i, j)
	}
	if j := b.Symbol("bad\uFFFDname"); j != i {
		t.Errorf("sanitised symbol %d differs from its replacement %d", i, j)
	}
	b.SetProducer("p\xff")
	ls := b.LabelSet([]schemas.Label{{Name: "app", Value: "v\xfe"}})
	before, size := b.Len(), b.Size()
	if err := b.AddLog(&tpflowpb.LogEvent{Labels: ls, Message: "line \xff"}); err == nil {
		t.Fatal("AddLog of invalid UTF-8 succeeded")
	}
	if err := b.AddAlert(&tpflowpb.Alert{Labels: ls, Rule: "\xff"}); err == nil {
		t.Fatal("AddAlert of invalid UTF-8 succeeded")
	}
	if b.Len() != before || b.Size() != size {
		t.Errorf("failed adds changed the builder: Len %d->%d, Size %d->%d", before, b.Len(), size, b.Size())
	}
	buf := b.AppendTo(nil)
	var pb tpflowpb.EventBatch
	if err := proto.Unmarshal(buf, &pb); err != nil {
		t.Fatalf("batch with sanitised strings is unreadable: %v", err)
	}
	if pb.GetSymbols()[i] != "bad\uFFFDname" || pb.GetProducer() != "p\uFFFD" {
		t.Errorf("symbols %q, producer %q", pb.GetSymbols(), pb.GetProducer())
	}
}

func TestBuilderPanicsOnForeignReferences(t *testing.T) {
	f := func(name string, add func(b *Builder)) {
		t.Helper()
		defer func() {
			r := recover()
			if r == nil {
				t.Errorf("%s: no panic", name)
			} else if !strings.HasPrefix(r.(string), "BUG: ") {
				t.Errorf("%s: panic %q lacks BUG: prefix", name, r)
			}
		}()
		var b Builder
		add(&b)
	}
	f("call", func(b *Builder) { b.AddCall(Call{Series: 0}) })
	f("series", func(b *Builder) { b.Series(3, "m") })
	f("metric labels", func(b *Builder) { b.AddMetric(Metric{Labels: 1}) })
	f("metric name", func(b *Builder) { b.LabelSet(nil); b.AddMetric(Metric{Name: 9}) })
	f("log", func(b *Builder) { _ = b.AddLog(&tpflowpb.LogEvent{Labels: 2}) })
	f("log stream", func(b *Builder) { b.LabelSet(nil); _ = b.AddLog(&tpflowpb.LogEvent{Stream: 2}) })
	f("pane", func(b *Builder) { b.LabelSet(nil); _ = b.AddPane(&tpflowpb.PaneStat{Method: 5}) })
	f("alert", func(b *Builder) { _ = b.AddAlert(&tpflowpb.Alert{Labels: 1}) })
}

func TestBuilderResetAndEmpty(t *testing.T) {
	var b Builder
	empty := b.AppendTo(nil)
	if b.Size() != len(empty) || b.Len() != 0 {
		t.Fatalf("empty builder: Size %d, %d bytes, Len %d", b.Size(), len(empty), b.Len())
	}
	var d Batch
	if err := Decode(empty, &d); err != nil || d.Len() != 0 {
		t.Fatalf("empty batch: %v, %d events", err, d.Len())
	}
	ls := b.LabelSet([]schemas.Label{{Name: "app", Value: "a"}})
	b.AddCall(Call{Series: b.Series(ls, "m"), LatencyUs: 5})
	b.SetProducer("p")
	if b.Len() != 1 || b.Size() <= len(empty) {
		t.Fatalf("after one call: Len %d, Size %d", b.Len(), b.Size())
	}
	b.Reset()
	if got := b.AppendTo(nil); string(got) != string(empty) || b.Len() != 0 {
		t.Fatalf("after Reset: %x, want %x (Len %d)", got, empty, b.Len())
	}
	// References restart after Reset.
	if s := b.Symbol("zzz"); s != 1 {
		t.Errorf("first symbol after Reset = %d, want 1", s)
	}
}

// TestBuilderAppendToAppends checks that AppendTo appends rather than
// overwrites and is repeatable.
func TestBuilderAppendToAppends(t *testing.T) {
	var b Builder
	ls := b.LabelSet([]schemas.Label{{Name: "app", Value: "a"}})
	b.AddCall(Call{Series: b.Series(ls, "m"), LatencyUs: 5})
	one := b.AppendTo(nil)
	two := b.AppendTo([]byte("prefix"))
	if string(two) != "prefix"+string(one) {
		t.Fatalf("AppendTo with a prefix = %x, want prefix + %x", two, one)
	}
}

func TestBuilderAllocs(t *testing.T) {
	var b Builder
	ls := b.LabelSet([]schemas.Label{{Name: "app", Value: "a"}, {Name: "system", Value: "s"}})
	s := b.Series(ls, "m")
	buf := make([]byte, 0, 1<<16)
	allocs := testing.AllocsPerRun(50, func() {
		b.Reset()
		ls := b.LabelSet([]schemas.Label{{Name: "app", Value: "a"}, {Name: "system", Value: "s"}})
		s = b.Series(ls, "m")
		for i := range 1000 {
			b.AddCall(Call{TsUnixMs: int64(i), Series: s, LatencyUs: uint32(i), OK: true})
		}
		buf = b.AppendTo(buf[:0])
	})
	// One allocation per new label set key is expected; none per call.
	t.Logf("allocs per batch: %v", allocs)
	if allocs > 2 {
		t.Fatalf("a 1000-call batch allocates %v times, want at most 2", allocs)
	}
}

// TestResourcePaneRoundTrip encodes resource panes next to the other kinds
// and reads them back: raw bytes, references, Len, Size and Full.
func TestResourcePaneRoundTrip(t *testing.T) {
	var b Builder
	ls := b.LabelSet([]schemas.Label{
		{Name: schemas.LabelSystem, Value: "shop"}, {Name: schemas.LabelApp, Value: "cart"},
		{Name: schemas.LabelHost, Value: "10.0.0.7"}, {Name: schemas.LabelContainer, Value: "web-1"},
	})
	b.AddMetric(Metric{TsUnixMs: 1_700_000_000_500, Labels: ls, Name: b.Symbol("cpu_cores"), Value: 0.5, Kind: 1})
	want := []*tpflowpb.ResourcePane{
		{Labels: ls, Name: b.Symbol("cpu_cores"), PaneStartUnixMs: 1_700_000_000_000, PaneMs: 10000, Version: 4, Count: 4, Sum: 2.25, Max: 0.875, P95: 0.875},
		{Labels: ls, Name: b.Symbol("memory_bytes"), PaneStartUnixMs: 1_700_000_000_000, PaneMs: 10000, Version: 1, Count: 1, Sum: 1 << 30, Max: 1 << 30, P95: 1 << 30},
	}
	for _, p := range want {
		if err := b.AddResourcePane(p); err != nil {
			t.Fatal(err)
		}
	}
	if b.Len() != 3 {
		t.Errorf("Len() = %d, want 3", b.Len())
	}
	buf := b.AppendTo(nil)
	if len(buf) != b.Size() {
		t.Errorf("Size() = %d, encoded %d bytes", b.Size(), len(buf))
	}
	var d Batch
	if err := Decode(buf, &d); err != nil {
		t.Fatal(err)
	}
	if d.Len() != 3 || len(d.ResourcePanes) != 2 || len(d.Metrics) != 1 {
		t.Fatalf("decoded %d events, %d resource panes, %d metrics", d.Len(), len(d.ResourcePanes), len(d.Metrics))
	}
	for i, raw := range d.ResourcePanes {
		var got tpflowpb.ResourcePane
		if err := proto.Unmarshal(raw, &got); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(&got, want[i]) {
			t.Errorf("resource pane %d = %v, want %v", i, &got, want[i])
		}
		if d.Label(got.Labels, schemas.LabelContainer) != "web-1" || d.Symbol(got.Name) == "" {
			t.Errorf("resource pane %d: references do not resolve", i)
		}
	}
	full, err := d.Full()
	if err != nil {
		t.Fatal(err)
	}
	if len(full.GetResourcePanes()) != 2 || !proto.Equal(full.GetResourcePanes()[1], want[1]) {
		t.Errorf("Full() resource panes = %v", full.GetResourcePanes())
	}
	d.Reset()
	if len(d.ResourcePanes) != 0 || d.Len() != 0 {
		t.Errorf("Reset kept %d resource panes", len(d.ResourcePanes))
	}

	// A reference out of range is refused at decode time.
	raw, err := proto.Marshal(&tpflowpb.EventBatch{
		SchemaVersion: schemas.SchemaVersion, Symbols: []string{"", "x"},
		ResourcePanes: []*tpflowpb.ResourcePane{{Name: 5}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := Decode(raw, &d); Reason(err) != "bad_reference" {
		t.Errorf("resource pane with name symbol 5 of 2: %v, want bad_reference", err)
	}
}
