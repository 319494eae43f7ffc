package loadgen

import (
	"math"
	"path/filepath"
	"slices"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas/codec"
)

func TestNearestRank(t *testing.T) {
	s := []uint32{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}
	f := func(q, want float64) {
		t.Helper()
		if got := NearestRank(s, q); got != want {
			t.Errorf("q=%g: got %g, want %g", q, got, want)
		}
	}
	f(0.5, 50)   // ⌈5⌉ = 5th
	f(0.9, 90)   // ⌈9⌉ = 9th
	f(0.99, 100) // ⌈9.9⌉ = 10th
	f(0.11, 20)  // ⌈1.1⌉ = 2nd
	f(0.001, 10)
	if !math.IsNaN(NearestRank(nil, 0.5)) {
		t.Error("empty input should give NaN")
	}
}

func TestGeneratorIsDeterministic(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	draw := func(seed uint64) []uint32 {
		g := NewGenerator(10, seed, Incident{}, t0)
		var out []uint32
		for range 100 {
			k, l, _ := g.Next(t0)
			out = append(out, uint32(k), l)
		}
		return out
	}
	if !slices.Equal(draw(7), draw(7)) {
		t.Error("same seed gave different events")
	}
	if slices.Equal(draw(7), draw(8)) {
		t.Error("different seeds gave the same events")
	}
}

func TestIncidentMultipliesLatency(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	inc := Incident{Key: 3, Start: time.Minute, Length: time.Minute, Factor: 20}
	median := func(at time.Time) float64 {
		g := NewGenerator(5, 1, inc, t0)
		var l []uint32
		for range 50000 {
			if k, lat, _ := g.Next(at); k == 3 {
				l = append(l, lat)
			}
		}
		slices.Sort(l)
		return NearestRank(l, 0.5)
	}
	before, during, after := median(t0), median(t0.Add(90*time.Second)), median(t0.Add(3*time.Minute))
	if r := during / before; r < 15 || r > 25 {
		t.Errorf("median during the incident is %.1f× the one before, want about 20×", r)
	}
	if r := after / before; r < 0.9 || r > 1.1 {
		t.Errorf("median after the incident is %.2f× the one before, want 1×", r)
	}
}

func TestTruthFileRoundTrip(t *testing.T) {
	keys := []Key{KeyOf(0), KeyOf(1), KeyOf(2)}
	tr := NewTruth(keys)
	for i := 1000; i >= 1; i-- {
		tr.Add(0, uint32(i), i%100 != 0)
	}
	tr.Add(2, 5, true)
	path := filepath.Join(t.TempDir(), "truth.jsonl")
	if err := tr.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	recs, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []Record{
		{System: "sys-0", App: "app-0", Group: "grp-0", IDC: "idc-0", Method: "Method0", Count: 1000, Errors: 10, P50: 500, P90: 900, P99: 990, P999: 999},
		{System: "sys-0", App: "app-0", Group: "grp-0", IDC: "idc-2", Method: "Method2", Count: 1, P50: 5, P90: 5, P99: 5, P999: 5},
	}
	if !slices.Equal(recs, want) {
		t.Errorf("got  %+v\nwant %+v", recs, want)
	}
}

// TestPartitionerKeepsKeysOnTheirPartition checks that every call of a
// message belongs on the partition its message key is sent to.
func TestPartitionerKeepsKeysOnTheirPartition(t *testing.T) {
	const nparts = 4
	keys := make([]Key, 50)
	for i := range keys {
		keys[i] = KeyOf(i)
	}
	p := newPartitioner(keys, nparts, 100, "test", 1<<20)
	g := NewGenerator(len(keys), 3, Incident{}, time.Now())
	var msgs []pendingMsg
	for range 5000 {
		k, l, ok := g.Next(time.Now())
		if m, full := p.add(k, l, ok, 1); full {
			msgs = append(msgs, m)
		}
	}
	msgs = append(msgs, p.drain()...)
	parts := []int{0, 1, 2, 3}
	calls := 0
	var b codec.Batch
	for _, m := range msgs {
		want := (&kafkago.Hash{}).Balance(kafkago.Message{Key: m.msg.Key}, parts...)
		if err := codec.Decode(m.msg.Value, &b); err != nil {
			t.Fatal(err)
		}
		if len(b.Calls) != len(m.calls) || len(b.Calls) > 100 {
			t.Fatalf("message holds %d calls, its truth %d (batch size 100)", len(b.Calls), len(m.calls))
		}
		for _, c := range b.Calls {
			s := b.Series[c.Series]
			key := kafka.CallKey(b.Label(s.Labels, "system"), b.Label(s.Labels, "app"), b.Symbol(s.Method))
			if got := (&kafkago.Hash{}).Balance(kafkago.Message{Key: key}, parts...); got != want {
				t.Fatalf("call of %s in a message for partition %d belongs on %d", b.Symbol(s.Method), want, got)
			}
		}
		calls += len(b.Calls)
	}
	if calls != 5000 {
		t.Errorf("messages hold %d calls, want 5000", calls)
	}
}
