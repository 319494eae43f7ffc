package aggregate

import (
	"fmt"
	"testing"

	kafkago "github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	"github.com/tpflow/tpflow/aggregator/resource"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

// TestEncodeResourcesCutsAndRoundTrips checks that resource panes are cut at
// maxBytes, that every field survives, and that each message only holds
// panes whose (host, container) key lands on the message's partition.
func TestEncodeResourcesCutsAndRoundTrips(t *testing.T) {
	const maxBytes, nparts = 4 << 10, 3
	var panes []resource.Pane
	for i := range 300 {
		panes = append(panes, resource.Pane{
			Key: resource.Key{System: "s", App: "a", Group: "g", IDC: "bj", Host: fmt.Sprintf("10.0.0.%d", i%11),
				Container: fmt.Sprintf("c%d", i%11), Name: []string{"cpu_cores", "memory_bytes"}[i%2]},
			Start: int64(i) * 1000, PaneMs: 10000, Version: uint64(i + 1), Count: uint64(i + 1),
			Sum: float64(i) * 1.5, Max: float64(i), P95: float64(i) - 0.5,
		})
	}
	msgs, err := encodeResources(panes, maxBytes, nparts)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	var b codec.Batch
	var pb tpflowpb.ResourcePane
	for _, m := range msgs {
		if len(m.Value) > maxBytes {
			t.Errorf("message of %d bytes, max %d", len(m.Value), maxBytes)
		}
		want := (&kafkago.Hash{}).Balance(kafkago.Message{Key: m.Key}, 0, 1, 2)
		if err := (codec.DecodeOptions{MaxBytes: maxBytes}).Decode(m.Value, &b); err != nil {
			t.Fatal(err)
		}
		for _, raw := range b.ResourcePanes {
			if err := proto.Unmarshal(raw, &pb); err != nil {
				t.Fatal(err)
			}
			src := panes[pb.PaneStartUnixMs/1000]
			l := func(n string) string { return b.Label(pb.Labels, n) }
			k := resource.Key{System: l(schemas.LabelSystem), App: l(schemas.LabelApp), Group: l(schemas.LabelGroup), IDC: l(schemas.LabelIDC),
				Host: l(schemas.LabelHost), Container: l(schemas.LabelContainer), Name: b.Symbol(pb.Name)}
			if k != src.Key || pb.Count != src.Count || pb.Version != src.Version || pb.Sum != src.Sum ||
				pb.Max != src.Max || pb.P95 != src.P95 || int64(pb.PaneMs) != src.PaneMs {
				t.Fatalf("pane %+v came back as %v", src, &pb)
			}
			if got := kafka.PartitionOf(kafka.MetricKey(k.Host, k.Container), nparts); got != want {
				t.Errorf("pane of %v belongs on partition %d, its message goes to %d", k, got, want)
			}
			seen++
		}
	}
	if seen != len(panes) {
		t.Errorf("decoded %d panes, encoded %d", seen, len(panes))
	}
	if len(msgs) < 4 {
		t.Errorf("%d messages: the batches were not cut", len(msgs))
	}
}

func TestMetricsGroupID(t *testing.T) {
	if g := DefaultConfig().MetricsGroupID(); g != "tpflow-aggregate-metrics" {
		t.Errorf("MetricsGroupID() = %q", g)
	}
}
