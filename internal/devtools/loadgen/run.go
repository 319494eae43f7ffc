package loadgen

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
)

// Options configures Run.
type Options struct {
	// Count stops after this many calls; 0 means no limit.
	Count int64
	// Duration stops after this long; 0 means no limit. With neither Count
	// nor Duration, Run runs until ctx is done.
	Duration time.Duration
	// Rate is the number of calls per second; 0 produces as fast as the
	// broker takes them.
	Rate int
	// Keys is the number of distinct call keys.
	Keys int
	// Seed makes the events reproducible.
	Seed uint64
	// BatchSize is the number of calls per message (default 1000).
	BatchSize int
	// TruthFile, when set, receives the exact per-key statistics of every
	// acknowledged call as JSON Lines when Run returns.
	TruthFile string
	// Incident scripts a latency anomaly of one key.
	Incident Incident
	// Backdate dates every call this long before the wall clock (metric
	// samples keep the wall clock).
	Backdate time.Duration
	// Producer names this process in the batches.
	Producer string
	// Containers, when positive, also produces metric samples to the
	// metrics topic: a cpu_cores and a memory_bytes gauge of each of this
	// many containers (ContainerOf) every SampleEvery, keyed by
	// kafka.MetricKey(host, container).
	Containers int
	// SampleEvery is the interval of metric samples (default 1s).
	SampleEvery time.Duration
	// SamplesFile, when set, receives every acknowledged metric sample as
	// JSON Lines when Run returns (ReadSamples reads it).
	SamplesFile string
}

// Stats is what Run produced.
type Stats struct {
	// Calls and Messages were acknowledged by the broker.
	Calls, Messages int64
	// Samples were acknowledged by the broker (Options.Containers).
	Samples int64
	Elapsed time.Duration
}

// Run produces calls to the calls topic, each message an EventBatch of
// about BatchSize calls with event time now, keyed by kafka.CallKey. All
// calls of one message go to one partition: the message carries the key of
// one of them, and the others hash to the same partition, so every key
// stays on its partition. The truth counts only acknowledged messages; on a
// produce error Run stops and returns it with the stats so far (after
// writing the truth file).
func Run(ctx context.Context, kcfg kafka.Config, o Options, log *slog.Logger) (Stats, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Keys < 1 {
		return Stats{}, errors.New("cannot generate load: keys must be at least 1")
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 1000
	}
	if o.Producer == "" {
		o.Producer = "tpflow-loadgen"
	}
	if err := kafka.EnsureTopics(ctx, kcfg); err != nil {
		return Stats{}, fmt.Errorf("cannot generate load: %w", err)
	}
	topic := kcfg.Topic(kafka.TopicCalls)
	nparts := kcfg.PartitionsFor(kafka.TopicCalls)
	if n, err := kafka.TopicPartitions(ctx, kcfg, topic); err == nil && n[topic] > 0 {
		nparts = n[topic]
	}
	prod, err := kafka.NewProducer(kcfg, topic, log)
	if err != nil {
		return Stats{}, err
	}
	defer prod.Close()

	var smp *sampler
	var mprod *kafka.Producer
	var samples []Sample
	var nextSample time.Time
	if o.Containers > 0 {
		if o.SampleEvery <= 0 {
			o.SampleEvery = time.Second
		}
		mtopic := kcfg.Topic(kafka.TopicMetrics)
		mparts := kcfg.PartitionsFor(kafka.TopicMetrics)
		if n, err := kafka.TopicPartitions(ctx, kcfg, mtopic); err == nil && n[mtopic] > 0 {
			mparts = n[mtopic]
		}
		if mprod, err = kafka.NewProducer(kcfg, mtopic, log); err != nil {
			return Stats{}, err
		}
		defer mprod.Close()
		smp = newSampler(o.Containers, mparts, o.Seed)
	}
	var st Stats
	// sample produces one round of metric samples when it is due.
	sample := func(now time.Time) error {
		if smp == nil || now.Before(nextSample) {
			return nil
		}
		nextSample = now.Add(o.SampleEvery)
		msgs, ss := smp.round(now.UnixMilli(), o.Producer)
		if err := mprod.Produce(ctx, msgs...); err != nil {
			return fmt.Errorf("cannot produce metric samples: %w", err)
		}
		if o.SamplesFile != "" {
			samples = append(samples, ss...)
		}
		st.Samples += int64(len(ss))
		return nil
	}

	start := time.Now()
	g := NewGenerator(o.Keys, o.Seed, o.Incident, start)
	// The truth keeps every latency (4 bytes a call): only when asked for.
	var truth *Truth
	if o.TruthFile != "" {
		truth = NewTruth(g.Keys())
	}
	p := newPartitioner(g.Keys(), nparts, o.BatchSize, o.Producer, kcfg.MaxMessageBytes)

	var produced int64 // calls drawn
	var msgs []pendingMsg
	flush := func() error {
		if len(msgs) == 0 {
			return nil
		}
		km := make([]kafkago.Message, len(msgs))
		for i := range msgs {
			km[i] = msgs[i].msg
		}
		if err := prod.Produce(ctx, km...); err != nil {
			return err
		}
		for _, m := range msgs {
			if truth != nil {
				for _, c := range m.calls {
					truth.Add(c.key, c.lat, c.ok)
				}
			}
			st.Calls += int64(len(m.calls))
			st.Messages++
		}
		msgs = msgs[:0]
		return nil
	}

	var deadline time.Time
	if o.Duration > 0 {
		deadline = start.Add(o.Duration)
	}
	// Calls are drawn in slices of 10 ms when rate limited.
	const tick = 10 * time.Millisecond
	var runErr error
loop:
	for {
		now := time.Now()
		if ctx.Err() != nil || (!deadline.IsZero() && !now.Before(deadline)) || (o.Count > 0 && produced >= o.Count) {
			break
		}
		if runErr = sample(now); runErr != nil {
			break loop
		}
		n := int64(o.BatchSize)
		if o.Rate > 0 {
			due := int64(float64(now.Sub(start)) / float64(time.Second) * float64(o.Rate))
			n = min(due-produced, int64(o.Rate)) // never a burst over 1 s
			if n <= 0 {
				select {
				case <-ctx.Done():
				case <-time.After(tick):
				}
				continue
			}
		}
		if o.Count > 0 {
			n = min(n, o.Count-produced)
		}
		ms := now.Add(-o.Backdate).UnixMilli()
		for range n {
			k, lat, ok := g.Next(now)
			if m, full := p.add(k, lat, ok, ms); full {
				msgs = append(msgs, m)
			}
		}
		produced += n
		if len(msgs) >= 8 {
			if runErr = flush(); runErr != nil {
				break loop
			}
		}
	}
	if runErr == nil {
		msgs = append(msgs, p.drain()...)
		if ctx.Err() != nil {
			// Finish what was drawn with a short grace so the truth
			// matches what the broker holds.
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
		}
		runErr = flush()
	}
	st.Elapsed = time.Since(start)
	if o.TruthFile != "" {
		if err := truth.WriteFile(o.TruthFile); err != nil {
			return st, errors.Join(runErr, err)
		}
	}
	if o.SamplesFile != "" {
		if err := writeSamples(o.SamplesFile, samples); err != nil {
			return st, errors.Join(runErr, err)
		}
	}
	if runErr != nil {
		return st, fmt.Errorf("cannot produce calls after %d acknowledged: %w", st.Calls, runErr)
	}
	log.Info("load produced", "calls", st.Calls, "messages", st.Messages, "elapsed", st.Elapsed,
		"calls_per_second", float64(st.Calls)/st.Elapsed.Seconds())
	return st, nil
}

type genCall struct {
	key int
	lat uint32
	ok  bool
}

type pendingMsg struct {
	msg   kafkago.Message
	calls []genCall
}

// partitioner builds one batch per calls partition.
type partitioner struct {
	keys      []Key
	partOf    []int
	builders  []*partBatch
	batchSize int
	producer  string
	maxBytes  int
}

type partBatch struct {
	b      codec.Builder
	key    []byte
	calls  []genCall
	series map[int]uint32
}

func newPartitioner(keys []Key, nparts, batchSize int, producer string, maxBytes int) *partitioner {
	p := &partitioner{keys: keys, partOf: make([]int, len(keys)), builders: make([]*partBatch, nparts),
		batchSize: batchSize, producer: producer, maxBytes: maxBytes}
	parts := make([]int, nparts)
	for i := range parts {
		parts[i] = i
	}
	h := &kafkago.Hash{}
	for i, k := range keys {
		p.partOf[i] = h.Balance(kafkago.Message{Key: kafka.CallKey(k.System, k.App, k.Method)}, parts...)
	}
	return p
}

// add adds a call; when its partition's batch is full it returns it.
func (p *partitioner) add(k int, lat uint32, ok bool, tsMs int64) (pendingMsg, bool) {
	part := p.partOf[k]
	pb := p.builders[part]
	if pb == nil {
		pb = &partBatch{series: map[int]uint32{}}
		pb.b.Reset()
		p.builders[part] = pb
	}
	if pb.key == nil {
		key := p.keys[k]
		pb.key = kafka.CallKey(key.System, key.App, key.Method)
		pb.b.SetProducer(p.producer)
	}
	s, found := pb.series[k]
	if !found {
		key := p.keys[k]
		ls := pb.b.LabelSet([]schemas.Label{
			{Name: schemas.LabelSystem, Value: key.System},
			{Name: schemas.LabelApp, Value: key.App},
			{Name: schemas.LabelGroup, Value: key.Group},
			{Name: schemas.LabelIDC, Value: key.IDC},
		})
		s = pb.b.Series(ls, key.Method)
		pb.series[k] = s
	}
	var status uint32 = 200
	if !ok {
		status = 500
	}
	pb.b.AddCall(codec.Call{TsUnixMs: tsMs, Series: s, LatencyUs: lat, Status: status, OK: ok})
	pb.calls = append(pb.calls, genCall{k, lat, ok})
	if len(pb.calls) >= p.batchSize || pb.b.Size() > p.maxBytes-4096 {
		return p.take(pb), true
	}
	return pendingMsg{}, false
}

func (p *partitioner) take(pb *partBatch) pendingMsg {
	m := pendingMsg{msg: kafkago.Message{Key: pb.key, Value: pb.b.AppendTo(nil)}, calls: pb.calls}
	pb.b.Reset()
	pb.key = nil
	pb.calls = nil
	clear(pb.series)
	return m
}

// drain returns every partial batch.
func (p *partitioner) drain() []pendingMsg {
	var out []pendingMsg
	for _, pb := range p.builders {
		if pb != nil && len(pb.calls) > 0 {
			out = append(out, p.take(pb))
		}
	}
	return out
}
