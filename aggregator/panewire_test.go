package aggregator

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
	"google.golang.org/protobuf/proto"
)

func TestPaneProtoRoundTrip(t *testing.T) {
	var bld codec.Builder
	ps := PaneStat{
		Key:   Key{System: "pay", App: "api", Group: "g1", IDC: "sh", Method: "GET /"},
		Start: 1_800_000_000_000, PaneMs: 300_000, Version: 7, Count: 5, Errors: 1, SumUs: 150, MinUs: 10, MaxUs: 60,
		P50: 20, P90: 50, P99: 60, P999: 60, Centroids: []Centroid{{10, 2}, {20, 2}, {60, 1}}, Rollup: true,
	}
	labels := []schemas.Label{{Name: schemas.LabelSystem, Value: "pay"}, {Name: schemas.LabelApp, Value: "api"},
		{Name: schemas.LabelGroup, Value: "g1"}, {Name: schemas.LabelIDC, Value: "sh"}}
	var pb tpflowpb.PaneStat
	ps.ToProto(&pb, bld.LabelSet(labels), bld.Symbol(ps.Key.Method))
	if err := bld.AddPane(&pb); err != nil {
		t.Fatal(err)
	}
	var b codec.Batch
	if err := codec.Decode(bld.AppendTo(nil), &b); err != nil {
		t.Fatal(err)
	}
	var got PaneStat
	if err := PaneFromProto(&got, &b, &pb); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, ps) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, ps)
	}

	bad := proto.Clone(&pb).(*tpflowpb.PaneStat)
	bad.Method = uint32(len(b.Symbols))
	if err := PaneFromProto(&got, &b, bad); !errors.Is(err, codec.ErrBadReference) {
		t.Errorf("method out of the batch: %v, want ErrBadReference", err)
	}
	bad = proto.Clone(&pb).(*tpflowpb.PaneStat)
	bad.CentroidMeans = []float64{20, 10, 60}
	if err := PaneFromProto(&got, &b, bad); !errors.Is(err, codec.ErrMalformed) || !strings.Contains(err.Error(), "out of order") {
		t.Errorf("unsorted centroids: %v, want ErrMalformed", err)
	}
}
