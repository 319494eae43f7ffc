package loadgen

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

// Metric names of the samples the generator produces.
const (
	MetricCPUCores    = "cpu_cores"
	MetricMemoryBytes = "memory_bytes"
)

// Container is one synthetic container: the labels of its metric samples.
type Container struct {
	System, App, Group, IDC, Host, Container string
}

// ContainerOf returns the labels of container i: it belongs to the app,
// group and IDC of call key i, and four containers share a host.
func ContainerOf(i int) Container {
	k := KeyOf(i)
	return Container{
		System: k.System, App: k.App, Group: k.Group, IDC: k.IDC,
		Host:      fmt.Sprintf("10.0.%d.%d", i/1024, (i/4)%256),
		Container: fmt.Sprintf("%s-%d", k.App, i),
	}
}

// Sample is one produced metric sample, as written to Options.SamplesFile.
type Sample struct {
	TsUnixMs  int64   `json:"ts_unix_ms"`
	Container int     `json:"container"`
	Name      string  `json:"name"`
	Value     float64 `json:"value"`
}

// sampler draws one cpu_cores and one memory_bytes gauge per container per
// round, from its own random stream so the calls stay those of the seed.
type sampler struct {
	conts  []Container
	partOf []int
	rng    *rand.Rand
}

func newSampler(n, nparts int, seed uint64) *sampler {
	s := &sampler{conts: make([]Container, n), partOf: make([]int, n), rng: rand.New(rand.NewPCG(seed^0x5ca1ab1e, seed))}
	parts := make([]int, max(nparts, 1))
	for i := range parts {
		parts[i] = i
	}
	h := &kafkago.Hash{}
	for i := range s.conts {
		s.conts[i] = ContainerOf(i)
		s.partOf[i] = h.Balance(kafkago.Message{Key: kafka.MetricKey(s.conts[i].Host, s.conts[i].Container)}, parts...)
	}
	return s
}

// round draws a sample of each metric of each container at tsMs and
// returns one message per metrics partition, with the samples it holds.
func (s *sampler) round(tsMs int64, producer string) ([]kafkago.Message, []Sample) {
	byPart := map[int][]int{}
	var order []int
	for i := range s.conts {
		p := s.partOf[i]
		if _, ok := byPart[p]; !ok {
			order = append(order, p)
		}
		byPart[p] = append(byPart[p], i)
	}
	var msgs []kafkago.Message
	var samples []Sample
	var b codec.Builder
	for _, p := range order {
		b.Reset()
		b.SetProducer(producer)
		var key []byte
		for _, i := range byPart[p] {
			c := s.conts[i]
			if key == nil {
				key = kafka.MetricKey(c.Host, c.Container)
			}
			ls := b.LabelSet([]schemas.Label{
				{Name: schemas.LabelSystem, Value: c.System}, {Name: schemas.LabelApp, Value: c.App},
				{Name: schemas.LabelGroup, Value: c.Group}, {Name: schemas.LabelIDC, Value: c.IDC},
				{Name: schemas.LabelHost, Value: c.Host}, {Name: schemas.LabelContainer, Value: c.Container},
				{Name: schemas.LabelPod, Value: c.Container},
			})
			// CPU in hundredths of a core, memory in whole MiB: exact in
			// float64, so sums compare exactly downstream.
			cpu := float64(5+s.rng.IntN(196)) / 100
			mem := float64(100+s.rng.IntN(1900)) * (1 << 20)
			for _, sm := range []Sample{{tsMs, i, MetricCPUCores, cpu}, {tsMs, i, MetricMemoryBytes, mem}} {
				b.AddMetric(codec.Metric{TsUnixMs: tsMs, Labels: ls, Name: b.Symbol(sm.Name), Value: sm.Value,
					Kind: uint8(tpflowpb.MetricKind_METRIC_KIND_GAUGE)})
				samples = append(samples, sm)
			}
		}
		msgs = append(msgs, kafkago.Message{Key: key, Value: b.AppendTo(nil)})
	}
	return msgs, samples
}

// writeSamples writes samples as JSON Lines to path.
func writeSamples(path string, samples []Sample) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("cannot write samples: %w", err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, s := range samples {
		if err := enc.Encode(s); err != nil {
			f.Close()
			return fmt.Errorf("cannot write samples: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("cannot write samples: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("cannot write samples: %w", err)
	}
	return nil
}

// ReadSamples reads a file written through Options.SamplesFile.
func ReadSamples(path string) ([]Sample, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read samples: %w", err)
	}
	defer f.Close()
	var out []Sample
	dec := json.NewDecoder(bufio.NewReader(f))
	for dec.More() {
		var s Sample
		if err := dec.Decode(&s); err != nil {
			return nil, fmt.Errorf("cannot read samples from %s: %w", path, err)
		}
		out = append(out, s)
	}
	return out, nil
}
