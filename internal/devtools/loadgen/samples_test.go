package loadgen

import (
	"path/filepath"
	"slices"
	"testing"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
)

// TestSamplerRound checks that a round holds a cpu_cores and a memory_bytes
// gauge per container, that every sample sits in the message of its own
// (host, container) partition, and that the samples file reads back.
func TestSamplerRound(t *testing.T) {
	const n, nparts = 20, 3
	s := newSampler(n, nparts, 7)
	msgs, samples := s.round(1_700_000_000_000, "p")
	if len(samples) != 2*n {
		t.Fatalf("%d samples, want %d", len(samples), 2*n)
	}
	var b codec.Batch
	seen := 0
	for _, m := range msgs {
		part := (&kafkago.Hash{}).Balance(kafkago.Message{Key: m.Key}, 0, 1, 2)
		if err := codec.Decode(m.Value, &b); err != nil {
			t.Fatal(err)
		}
		for _, mt := range b.Metrics {
			host, cont := b.Label(mt.Labels, schemas.LabelHost), b.Label(mt.Labels, schemas.LabelContainer)
			if p := (&kafkago.Hash{}).Balance(kafkago.Message{Key: kafka.MetricKey(host, cont)}, 0, 1, 2); p != part {
				t.Errorf("sample of %s/%s in the message of partition %d, belongs on %d", host, cont, part, p)
			}
			if name := b.Symbol(mt.Name); name != MetricCPUCores && name != MetricMemoryBytes {
				t.Errorf("metric %q", name)
			}
			seen++
		}
	}
	if seen != 2*n {
		t.Errorf("%d samples in the messages, want %d", seen, 2*n)
	}
	path := filepath.Join(t.TempDir(), "s.jsonl")
	if err := writeSamples(path, samples); err != nil {
		t.Fatal(err)
	}
	back, err := ReadSamples(path)
	if err != nil || !slices.Equal(back, samples) {
		t.Errorf("read back %d samples (%v), wrote %d", len(back), err, len(samples))
	}
	if c := ContainerOf(13); c.App != KeyOf(13).App || c.Container != "app-1-13" {
		t.Errorf("ContainerOf(13) = %+v", c)
	}
}
