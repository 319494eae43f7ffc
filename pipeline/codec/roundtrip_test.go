package codec

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

func TestBuilderSmallRoundTrip(t *testing.T) {
	var b Builder
	b.SetProducer("host/collect/1")
	ls := b.LabelSet([]schemas.Label{{Name: "app", Value: "cart"}, {Name: "system", Value: "shop"}})
	s := b.Series(ls, "Checkout")
	b.AddCall(Call{TsUnixMs: 1700000000123, Series: s, LatencyUs: 350, Status: 200, OK: true})
	b.AddMetric(Metric{TsUnixMs: 5, Labels: ls, Name: b.Symbol("cpu"), Value: 0.5, Kind: 1})
	buf := b.AppendTo(nil)
	if b.Size() != len(buf) {
		t.Fatalf("Size() = %d, AppendTo wrote %d bytes", b.Size(), len(buf))
	}
	var got Batch
	if err := Decode(buf, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Calls) != 1 || got.Calls[0].LatencyUs != 350 || !got.Calls[0].OK {
		t.Fatalf("calls = %+v", got.Calls)
	}
	sr := got.Series[got.Calls[0].Series]
	if got.Label(sr.Labels, "app") != "cart" || got.Symbol(sr.Method) != "Checkout" {
		t.Fatalf("series %+v resolves to app=%q method=%q", sr, got.Label(sr.Labels, "app"), got.Symbol(sr.Method))
	}
	var pb tpflowpb.EventBatch
	if err := proto.Unmarshal(buf, &pb); err != nil {
		t.Fatal(err)
	}
	if pb.GetProducer() != "host/collect/1" || pb.GetSchemaVersion() != schemas.SchemaVersion || len(pb.GetCalls()) != 1 {
		t.Fatalf("proto.Unmarshal read %v", &pb)
	}
}
