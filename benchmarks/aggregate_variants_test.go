package benchmarks

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/tpflow/tpflow/schemas/codec"
)

// The variants of BenchmarkAggregatePreDecoded on input that is not one
// ordered partition. Each runs on its own engine (default config, rollups
// on), warmed once per process through 70 s of event time (past the
// lateness and the 1-minute window).

// variant is how a benchmark variant spreads and dates batches.
type variant struct {
	parts int                             // partitions, fed round-robin
	make  func(r *rand.Rand, i int) int64 // draws how far (ms) an event is behind its in-order time
	mu    sync.Mutex                      // guards the fields below
	d     *driver                         // built on first use
	offs  []int64                         // next offset per partition
	table []int64                         // pre-drawn shifts, cycled over call indexes
}

const variantTable = 4096

func (v *variant) driver(b *testing.B, w *workload) *driver {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.d == nil {
		r := rand.New(rand.NewPCG(3, 4))
		v.table = make([]int64, variantTable)
		for i := range v.table {
			if v.make != nil {
				v.table[i] = v.make(r, i)
			}
		}
		v.offs = make([]int64, v.parts)
		v.d = newDriver(b, true)
		for i := 0; i < 70*eventsPerSec/batchCalls; i++ {
			v.ingest(w.batches[i%len(w.batches)])
		}
	}
	return v.d
}

// ingest stamps batch b as the variant says and feeds it, flushing once
// per second of event time; the wall clock is the in-order time of the
// batch's last event.
func (v *variant) ingest(b *codec.Batch) {
	d := v.d
	stamp(b, d.n, d.base)
	last := b.Calls[len(b.Calls)-1].TsUnixMs
	k := d.n * batchCalls
	for i := range b.Calls {
		b.Calls[i].TsUnixMs -= v.table[(k+i)%variantTable]
	}
	d.now = time.UnixMilli(last)
	p := d.n % v.parts
	d.e.Ingest(int32(p), v.offs[p], b)
	v.offs[p]++
	d.n++
	if d.n%(eventsPerSec/batchCalls) == 0 {
		panes, _ := d.e.Flush()
		d.panes += len(panes)
	}
}

func (v *variant) bench(b *testing.B) {
	warmMu.Lock()
	if warmWork == nil {
		warmWork = newWorkload(b)
	}
	w := warmWork
	warmMu.Unlock()
	d := v.driver(b, w)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += batchCalls {
		v.ingest(w.batches[d.n%len(w.batches)])
	}
	b.ReportMetric(float64(d.e.LiveKeys()), "keys")
}

var (
	multiPartition = &variant{parts: 8}
	outOfOrder     = &variant{parts: 1, make: func(r *rand.Rand, _ int) int64 {
		return int64(r.IntN(20_000)) // up to 20 s behind: within the 30 s lateness
	}}
	lateEvents = &variant{parts: 8, make: func(r *rand.Rand, _ int) int64 {
		switch x := r.IntN(100); {
		case x < 2: // beyond the grace: the late output
			return int64(6*60_000 + r.IntN(60_000))
		case x < 4: // within the grace: a correction
			return int64(60_000 + r.IntN(60_000))
		}
		return int64(r.IntN(5_000))
	}}
)

// BenchmarkAggregateMultiPartition: in-order batches spread round-robin
// over 8 partitions of one engine. One op is one event.
func BenchmarkAggregateMultiPartition(b *testing.B) { multiPartition.bench(b) }

// BenchmarkAggregateOutOfOrder: every event up to 20 s behind its
// in-order time, within the lateness. One op is one event.
func BenchmarkAggregateOutOfOrder(b *testing.B) { outOfOrder.bench(b) }

// BenchmarkAggregateLateEvents: 8 partitions, events up to 5 s out of
// order, 2 % late within the grace (corrections) and 2 % beyond it. One op
// is one event.
func BenchmarkAggregateLateEvents(b *testing.B) { lateEvents.bench(b) }
