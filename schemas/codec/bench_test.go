package codec

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

// benchBatch builds a batch of ncalls calls spread over nseries series, with
// realistic label sets (nine labels, 30 apps) and latencies.
func benchBatch(ncalls, nseries int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	var b Builder
	b.SetProducer("node-17/collect/4242")
	series := make([]uint32, nseries)
	for i := range series {
		app := i % 30
		ls := b.LabelSet([]schemas.Label{
			{Name: schemas.LabelSystem, Value: fmt.Sprintf("sys%d", app%5)},
			{Name: schemas.LabelApp, Value: fmt.Sprintf("app-%d", app)},
			{Name: schemas.LabelGroup, Value: fmt.Sprintf("group-%d", i%4)},
			{Name: schemas.LabelIDC, Value: fmt.Sprintf("idc-%d", i%3)},
			{Name: schemas.LabelEnv, Value: "prod"},
			{Name: schemas.LabelHost, Value: "10.0.3.17"},
		})
		series[i] = b.Series(ls, fmt.Sprintf("com.example.Service%d.method%d", app, i/30))
	}
	ts := int64(1_760_000_000_000)
	for i := 0; i < ncalls; i++ {
		ts += int64(r.IntN(3))
		b.AddCall(Call{
			TsUnixMs:  ts,
			Series:    series[r.IntN(nseries)],
			LatencyUs: uint32(200 + r.ExpFloat64()*3000),
			Status:    200,
			OK:        r.IntN(100) != 0,
		})
	}
	return b.AppendTo(nil)
}

func BenchmarkDecode(b *testing.B) {
	const ncalls, nseries = 1000, 300
	buf := benchBatch(ncalls, nseries)
	var batch Batch
	if err := Decode(buf, &batch); err != nil {
		b.Fatal(err)
	}
	if len(batch.Calls) != ncalls || len(batch.Series) != nseries {
		b.Fatalf("decoded %d calls over %d series, want %d over %d", len(batch.Calls), len(batch.Series), ncalls, nseries)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if err := Decode(buf, &batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*ncalls), "ns/event")
}

func BenchmarkBuilderAppendTo(b *testing.B) {
	const ncalls, nseries = 1000, 300
	buf := benchBatch(ncalls, nseries)
	var batch Batch
	if err := Decode(buf, &batch); err != nil {
		b.Fatal(err)
	}
	// Re-encode the decoded batch: intern its series, then add its calls.
	labels := make([][]schemas.Label, batch.NumLabelSets())
	for i := range labels {
		refs := batch.LabelSet(uint32(i))
		for k := 0; k+1 < len(refs); k += 2 {
			labels[i] = append(labels[i], schemas.Label{Name: batch.Symbol(refs[k]), Value: batch.Symbol(refs[k+1])})
		}
	}
	var bld Builder
	out := make([]byte, 0, len(buf))
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		bld.Reset()
		bld.SetProducer(batch.Producer)
		for _, s := range batch.Series {
			bld.Series(bld.LabelSet(labels[s.Labels]), batch.Symbol(s.Method))
		}
		for _, c := range batch.Calls {
			bld.AddCall(c)
		}
		out = bld.AppendTo(out[:0])
	}
	if len(out) != len(buf) {
		b.Fatalf("re-encoded %d bytes, want %d", len(out), len(buf))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*ncalls), "ns/event")
}

// BenchmarkProtoUnmarshal is the baseline Decode replaces: the generated code
// on the same batch.
func BenchmarkProtoUnmarshal(b *testing.B) {
	const ncalls = 1000
	buf := benchBatch(ncalls, 300)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		var m tpflowpb.EventBatch
		if err := proto.Unmarshal(buf, &m); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*ncalls), "ns/event")
}
