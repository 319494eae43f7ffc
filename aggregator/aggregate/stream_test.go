package aggregate

import (
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas/codec"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	c := Config{FlushInterval: time.Millisecond}
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "group_id: must not be empty") || !strings.Contains(err.Error(), "flush_interval: must be between 10ms and 1h, got 1ms") {
		t.Errorf("got %v", err)
	}
}

// TestEncodeCutsAndRoundTrips checks that panes are cut at maxBytes, that
// every field survives, and that each message only holds panes whose own
// key lands on the message's partition.
func TestEncodeCutsAndRoundTrips(t *testing.T) {
	const maxBytes, nparts = 16 << 10, 3
	var panes []aggregator.PaneStat
	for i := range 300 {
		p := aggregator.PaneStat{
			Key:   aggregator.Key{System: "s", App: "a" + string(rune('a'+i%7)), Group: "g", IDC: "i", Method: "m" + string(rune('a'+i%26))},
			Start: int64(i) * 1000, PaneMs: 1000, Version: uint64(i%3 + 1),
			Count: uint64(i + 1), Errors: uint64(i % 5), SumUs: uint64(i * 100), MinUs: 1, MaxUs: uint32(i + 10),
			P50: 1.5, P90: 2.5, P99: 3.5, P999: float64(i),
		}
		for c := range 100 {
			p.Centroids = append(p.Centroids, aggregator.Centroid{Mean: float32(c), Weight: uint32(c + 1)})
		}
		panes = append(panes, p)
	}
	msgs, err := encode(panes, maxBytes, nparts)
	if err != nil {
		t.Fatal(err)
	}
	parts := []int{0, 1, 2}
	seen := 0
	var b codec.Batch
	var pb tpflowpb.PaneStat
	for _, m := range msgs {
		if len(m.Value) > maxBytes {
			t.Errorf("message of %d bytes, max %d", len(m.Value), maxBytes)
		}
		want := (&kafkago.Hash{}).Balance(kafkago.Message{Key: m.Key}, parts...)
		if err := (codec.DecodeOptions{MaxBytes: maxBytes}).Decode(m.Value, &b); err != nil {
			t.Fatal(err)
		}
		for _, raw := range b.Panes {
			if err := proto.Unmarshal(raw, &pb); err != nil {
				t.Fatal(err)
			}
			i := int(pb.PaneStartUnixMs / 1000)
			src := panes[i]
			k := aggregator.Key{System: b.Label(pb.Labels, "system"), App: b.Label(pb.Labels, "app"),
				Group: b.Label(pb.Labels, "group"), IDC: b.Label(pb.Labels, "idc"), Method: b.Symbol(pb.Method)}
			if k != src.Key || pb.Count != src.Count || pb.Errors != src.Errors || pb.Version != src.Version ||
				pb.MaxUs != float64(src.MaxUs) || pb.P999Us != src.P999 || len(pb.CentroidMeans) != 100 || pb.CentroidWeights[99] != 100 {
				t.Fatalf("pane %d came back as %v", i, &pb)
			}
			if got := kafka.PartitionOf(kafka.CallKey(k.System, k.App, k.Method), nparts); got != want {
				t.Errorf("pane of %v belongs on partition %d, its message goes to %d", k, got, want)
			}
			seen++
		}
	}
	if seen != len(panes) {
		t.Errorf("decoded %d panes, encoded %d", seen, len(panes))
	}
	if len(msgs) < 3 {
		t.Errorf("%d messages: the batches were not cut", len(msgs))
	}
}
