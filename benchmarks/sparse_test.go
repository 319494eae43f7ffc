package benchmarks

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/schemas/codec"
)

// The sparse family: many keys with a few events each per pane, the shape
// of a platform with tens of thousands of methods. Each case is one engine
// with the shipped DefaultConfig (10 s panes, 1 m and 5 m windows, 5-minute
// rollups, 5-minute grace) fed keys × events-per-pane calls per 10 s pane
// of event time, in 1000-call batches of 1000 distinct keys, and flushed
// once per pane of event time. One op is one event; the flushes run inside
// the timer, so ns/op is the amortised cost of ingest and flush. Run them
// with GOMAXPROCS=1 and -benchtime Nx (benchmarks/sparse.sh).

const sparseBlock = 1000 // calls per batch, and distinct keys per batch

// sparseCase is one member of the family.
type sparseCase struct {
	keys, perPane, parts int
}

func (c sparseCase) name() string {
	return fmt.Sprintf("keys=%d/ev=%d/parts=%d", c.keys, c.perPane, c.parts)
}

// sparseDriver feeds one case's stream to its engine: pane after pane, in
// event-time order on every partition, the wall clock at the time of the
// last event fed.
type sparseDriver struct {
	c       sparseCase
	e       *aggregator.Engine
	now     time.Time
	base    int64
	paneMs  int64
	batches []*codec.Batch // one per block of sparseBlock keys
	lat     []uint32       // pre-drawn latencies, cycled
	latAt   int
	offs    []int64 // next offset per partition
	pane    int     // the pane being fed, counted from base
	j       int     // batches of that pane already fed
	flushes int
	flushT  time.Duration // wall time in Flush
	flushC  time.Duration // CPU time of the process in Flush
	heapKey float64       // live heap per key after the warm-up's last flush
}

// sparseCur is the driver of the case running now. Go runs the -count
// repetitions of one benchmark back to back (and benchmarks one at a
// time), so a case's warm engine is kept across them and dropped when the
// next case starts.
var sparseCur *sparseDriver

func sparseDriverFor(b *testing.B, c sparseCase) *sparseDriver {
	if sparseCur != nil && sparseCur.c == c {
		return sparseCur
	}
	sparseCur = nil
	d := newSparseDriver(b, c)
	before := d.heapAlloc() // the batches and tables, the engine still empty
	d.warm()
	d.heapKey = (float64(d.heapAlloc()) - float64(before)) / float64(d.e.LiveKeys())
	sparseCur = d
	return d
}

func newSparseDriver(tb testing.TB, c sparseCase) *sparseDriver {
	cfg := aggregator.DefaultConfig()
	d := &sparseDriver{
		c: c,
		// A rollup boundary, so that the first bucket is a whole one.
		base:   time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).UnixMilli(),
		paneMs: cfg.Pane.Milliseconds(),
		offs:   make([]int64, c.parts),
	}
	d.now = time.UnixMilli(d.base)
	cfg.MaxKeys = max(cfg.MaxKeys, c.keys)
	e, err := aggregator.New(cfg, aggregator.WithClock(func() time.Time { return d.now }))
	if err != nil {
		tb.Fatal(err)
	}
	d.e = e
	var bld codec.Builder
	for k0 := 0; k0 < c.keys; k0 += sparseBlock {
		bld.Reset()
		for k := k0; k < min(k0+sparseBlock, c.keys); k++ {
			labels, method := keyLabels(k)
			s := bld.Series(bld.LabelSet(labels), method)
			bld.AddCall(codec.Call{Series: s, OK: true, Status: 200})
		}
		b := &codec.Batch{}
		if err := codec.Decode(bld.AppendTo(nil), b); err != nil {
			tb.Fatal(err)
		}
		d.batches = append(d.batches, b)
	}
	r := rand.New(rand.NewPCG(5, 6))
	d.lat = make([]uint32, 1<<16)
	for i := range d.lat {
		d.lat[i] = uint32(math.Exp(3+r.NormFloat64()) * 1000) // lognormal, median 20 ms
	}
	return d
}

// batchesPerPane is how many batches one pane of event time takes.
func (d *sparseDriver) batchesPerPane() int { return d.c.perPane * len(d.batches) }

// next feeds the next batch of the stream and flushes after the last batch
// of a pane.
func (d *sparseDriver) next() {
	blk := d.j % len(d.batches)
	b := d.batches[blk]
	per := d.batchesPerPane()
	paneStart := d.base + int64(d.pane)*d.paneMs
	first := int64(d.j) * int64(len(b.Calls))
	total := int64(per) * int64(len(b.Calls))
	for i := range b.Calls {
		c := &b.Calls[i]
		c.TsUnixMs = paneStart + (first+int64(i))*d.paneMs/total
		c.LatencyUs = d.lat[(d.latAt+i)&(len(d.lat)-1)]
		c.OK = (d.latAt+i)%100 != 0
	}
	d.latAt += len(b.Calls) + 7
	d.now = time.UnixMilli(b.Calls[len(b.Calls)-1].TsUnixMs)
	p := blk % d.c.parts // a key is always read from one partition
	d.e.Ingest(int32(p), d.offs[p], b)
	d.offs[p]++
	d.j++
	if d.j == per {
		d.j = 0
		d.pane++
		t, c := time.Now(), cpuTime()
		d.e.Flush()
		d.flushT += time.Since(t)
		d.flushC += cpuTime() - c
		d.flushes++
	}
}

// warm feeds the stream until every structure is at its steady size and
// the engine is at the fullest point of the rollup cycle: the final edge
// one pane short of a rollup boundary at least two buckets after the
// start, so the 5-minute ring (and the grace) is full, the previous bucket
// is emitted but still held for corrections and the current one is one
// pane short of complete.
func (d *sparseDriver) warm() {
	roll := aggregator.RollupLength.Milliseconds()
	for {
		d.next()
		if d.j != 0 {
			continue
		}
		_, end := d.e.Watermark()
		if end >= d.base+2*roll-d.paneMs && (end+d.paneMs)%roll == 0 {
			return
		}
	}
}

// cpuTime returns the CPU time the process used so far. On a shared
// machine it moves less than the wall time with the other jobs' load.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (d *sparseDriver) heapAlloc() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// sparseCases is the family: 10 000 and 100 000 keys at 2, 20 and 100
// events per key per pane, on 1 and 8 partitions.
func sparseCases() []sparseCase {
	var cs []sparseCase
	for _, keys := range []int{10_000, 100_000} {
		for _, per := range []int{2, 20, 100} {
			for _, parts := range []int{1, 8} {
				cs = append(cs, sparseCase{keys, per, parts})
			}
		}
	}
	return cs
}

// BenchmarkSparse runs the family. Besides ns/op (ns per event, flushes
// included) it reports the process's CPU time per event (cpu-ns/event),
// the mean wall and CPU time of one flush (flush-ms, flush-cpu-ms), the
// flush's share of the wall time (flush-%), the live keys and the live
// heap per key (B/key:
// after GC, right after the warm-up's last flush, at the fullest point of
// the rollup cycle; the heap held before the engine existed is subtracted).
func BenchmarkSparse(b *testing.B) {
	for _, c := range sparseCases() {
		b.Run(c.name(), func(b *testing.B) {
			d := sparseDriverFor(b, c)
			f0, t0, c0 := d.flushes, d.flushT, d.flushC
			b.ReportAllocs()
			b.ResetTimer()
			start, cpu := time.Now(), cpuTime()
			done := 0
			for ; done < b.N; done += sparseBlock {
				d.next()
			}
			elapsed, cpu := time.Since(start), cpuTime()-cpu
			b.StopTimer()
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(done), "cpu-ns/event")
			if n := d.flushes - f0; n > 0 {
				ft := d.flushT - t0
				b.ReportMetric(float64(ft.Microseconds())/1000/float64(n), "flush-ms")
				b.ReportMetric(float64((d.flushC-c0).Microseconds())/1000/float64(n), "flush-cpu-ms")
				b.ReportMetric(100*float64(ft)/float64(elapsed), "flush-%")
			}
			b.ReportMetric(float64(d.e.LiveKeys()), "keys")
			b.ReportMetric(d.heapKey, "B/key")
		})
	}
}
