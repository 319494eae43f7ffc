// Package benchmarks holds cross-package benchmarks and the load harness.
// Results, commands and the machine are recorded in RESULTS.md.
package benchmarks

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/influxdata/tdigest"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
)

const (
	numKeys      = 10_000
	batchCalls   = 1000
	eventsPerSec = 200_000 // event-time rate: panes close as in production
	numBatches   = 512     // distinct pre-built batches, cycled
)

// workload is a Zipf-skewed mix of calls over numKeys keys with lognormal
// latencies, pre-built as batches.
type workload struct {
	batches []*codec.Batch
	encoded [][]byte
}

func keyLabels(i int) ([]schemas.Label, string) {
	return []schemas.Label{
		{Name: schemas.LabelSystem, Value: fmt.Sprint("sys", i%7)},
		{Name: schemas.LabelApp, Value: fmt.Sprint("app", i%300)},
		{Name: schemas.LabelGroup, Value: fmt.Sprint("grp", i%3)},
		{Name: schemas.LabelIDC, Value: fmt.Sprint("idc", i%2)},
		{Name: schemas.LabelEnv, Value: "prod"},
		{Name: schemas.LabelHost, Value: fmt.Sprint("10.0.0.", i%250)},
	}, fmt.Sprint("Service", i%40, ".method", i)
}

func newWorkload(tb testing.TB) *workload {
	r := rand.New(rand.NewPCG(1, 2))
	z := rand.NewZipf(r, 1.1, 1, numKeys-1)
	w := &workload{}
	var bld codec.Builder
	for i := 0; i < numBatches; i++ {
		bld.Reset()
		for j := 0; j < batchCalls; j++ {
			k := int(z.Uint64())
			labels, method := keyLabels(k)
			s := bld.Series(bld.LabelSet(labels), method)
			lat := uint32(math.Exp(3+r.NormFloat64()) * 1000)
			bld.AddCall(codec.Call{Series: s, LatencyUs: lat, OK: r.IntN(100) != 0, Status: 200})
		}
		buf := bld.AppendTo(nil)
		b := &codec.Batch{}
		if err := codec.Decode(buf, b); err != nil {
			tb.Fatal(err)
		}
		w.batches = append(w.batches, b)
		w.encoded = append(w.encoded, buf)
	}
	return w
}

// stamp sets the event times of batch n: eventsPerSec, in order.
func stamp(b *codec.Batch, n int, base int64) {
	first := base + int64(n)*batchCalls*1000/eventsPerSec
	for i := range b.Calls {
		b.Calls[i].TsUnixMs = first + int64(i)*1000/eventsPerSec
	}
}

// driver feeds batches to an engine with the wall clock at event time, so
// panes close and are flushed once per second of event time, as a role does.
type driver struct {
	e     *aggregator.Engine
	now   time.Time
	n     int
	base  int64
	panes int
}

// newDriver returns a driver of an engine with the default config, with
// 5-minute rollups on or off.
func newDriver(tb testing.TB, rollups bool) *driver {
	d := &driver{base: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).UnixMilli()}
	d.now = time.UnixMilli(d.base)
	cfg := aggregator.DefaultConfig()
	if !rollups {
		cfg.Rollup = 0
	}
	e, err := aggregator.New(cfg, aggregator.WithClock(func() time.Time { return d.now }))
	if err != nil {
		tb.Fatal(err)
	}
	d.e = e
	return d
}

func (d *driver) ingest(b *codec.Batch) {
	stamp(b, d.n, d.base)
	d.now = time.UnixMilli(b.Calls[len(b.Calls)-1].TsUnixMs)
	d.e.Ingest(0, int64(d.n), b)
	d.n++
	if d.n%(eventsPerSec/batchCalls) == 0 { // one event-time second
		panes, _ := d.e.Flush()
		d.panes += len(panes)
	}
}

// warm runs the engine through more than a 5-minute window so that every
// ring, buffer and map has reached its steady-state size.
func (d *driver) warm(w *workload) {
	for i := 0; i < 6*60*eventsPerSec/batchCalls; i++ {
		d.ingest(w.batches[i%len(w.batches)])
	}
}

var (
	warmMu      sync.Mutex
	warmWork    *workload
	warmDrivers = map[bool]*driver{}
)

// warmed returns the workload and an engine (rollups on or off) already run
// through more than a 5-minute window, built once per process: the
// benchmark framework calls a benchmark several times while it sizes b.N,
// and -count repeats it.
func warmed(b *testing.B, rollups bool) (*workload, *driver) {
	warmMu.Lock()
	defer warmMu.Unlock()
	if warmWork == nil {
		warmWork = newWorkload(b)
	}
	if warmDrivers[rollups] == nil {
		d := newDriver(b, rollups)
		d.warm(warmWork)
		warmDrivers[rollups] = d
	}
	return warmWork, warmDrivers[rollups]
}

// BenchmarkTDigestAdd is the floor: one bare Add into an influxdata t-digest
// at the engine's default compression.
func BenchmarkTDigestAdd(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	vals := make([]float64, 1<<16)
	for i := range vals {
		vals[i] = math.Exp(3+r.NormFloat64()) * 1000
	}
	td := tdigest.NewWithCompression(aggregator.DefaultConfig().Compression)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		td.Add(vals[i&(len(vals)-1)], 1)
		i++
	}
}

// BenchmarkAggregatePreDecoded is the engine's cost per event on decoded
// batches over 10 000 live keys with a Zipf(1.1) key mix, pane closing,
// 5-minute rollups and flushing included. One op is one event.
func BenchmarkAggregatePreDecoded(b *testing.B) { benchPreDecoded(b, true) }

// BenchmarkAggregateNoRollups is BenchmarkAggregatePreDecoded with rollups
// off: the same-run baseline of what rollups cost.
func BenchmarkAggregateNoRollups(b *testing.B) { benchPreDecoded(b, false) }

func benchPreDecoded(b *testing.B, rollups bool) {
	w, d := warmed(b, rollups)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += batchCalls {
		d.ingest(w.batches[d.n%len(w.batches)])
	}
	b.ReportMetric(float64(d.e.LiveKeys()), "keys")
}

// BenchmarkDecodeAndAggregate is the full path from EventBatch bytes to
// updated panes. One op is one event.
func BenchmarkDecodeAndAggregate(b *testing.B) {
	w, d := warmed(b, true)
	var batch codec.Batch
	var bytes int
	for _, e := range w.encoded {
		bytes += len(e)
	}
	b.SetBytes(int64(bytes / len(w.encoded) / batchCalls))
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += batchCalls {
		if err := codec.Decode(w.encoded[d.n%len(w.encoded)], &batch); err != nil {
			b.Fatal(err)
		}
		d.ingest(&batch)
	}
}

// TestMemoryBound checks the aggregator's heap for 10 000 live keys with
// 1 m and 5 m windows: more than five minutes of traffic at 200 000 events/s
// of event time, with a Zipf-skewed and with a uniform key mix (the uniform
// mix gives every key well-filled panes: the worst case for centroids).
// The per-key figure goes into RESULTS.md.
func TestMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("fills 10 000 keys with six minutes of traffic")
	}
	const limit = 320 << 20
	for _, c := range []struct {
		mix     string
		rollups bool
	}{{"zipf", true}, {"uniform", true}, {"uniform", false}} {
		mix := c.mix
		t.Run(fmt.Sprintf("%s/rollups=%v", mix, c.rollups), func(t *testing.T) {
			w := newWorkload(t)
			if mix == "uniform" {
				for n, b := range w.batches {
					for i := range b.Calls {
						b.Calls[i].Series = uint32((n*batchCalls + i) % len(b.Series))
					}
				}
				w.uniformKeys(t)
			}
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			d := newDriver(t, c.rollups)
			d.warm(w)
			runtime.GC()
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			keys := d.e.LiveKeys()
			held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
			t.Logf("%s, rollups %v: %d live keys, heap held %.1f MiB, %.0f B/key, %d panes emitted",
				mix, c.rollups, keys, float64(held)/(1<<20), float64(held)/float64(keys), d.panes)
			if keys < numKeys*9/10 {
				t.Fatalf("only %d live keys; the workload must hold ~%d", keys, numKeys)
			}
			if held > limit {
				t.Errorf("heap held %d MiB for %d keys, limit %d MiB", held>>20, keys, limit>>20)
			}
			runtime.KeepAlive(d)
		})
	}
}

// uniformKeys rebuilds the batches so that every one of the numKeys keys
// appears equally often.
func (w *workload) uniformKeys(t testing.TB) {
	var bld codec.Builder
	r := rand.New(rand.NewPCG(3, 4))
	k := 0
	for i := range w.batches {
		bld.Reset()
		for j := 0; j < batchCalls; j++ {
			labels, method := keyLabels(k % numKeys)
			k++
			s := bld.Series(bld.LabelSet(labels), method)
			bld.AddCall(codec.Call{Series: s, LatencyUs: uint32(math.Exp(3+r.NormFloat64()) * 1000), OK: true})
		}
		w.encoded[i] = bld.AppendTo(nil)
		if err := codec.Decode(w.encoded[i], w.batches[i]); err != nil {
			t.Fatal(err)
		}
	}
}
