package kafka

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// BenchmarkProduceConsume produces messages of ~500 KB of pre-encoded
// bytes (half random, half repetitive, like a compressed-friendly event
// batch) to an 8-partition topic on the embedded broker and consumes them
// back through a consumer group, committing once per produced batch. SetBytes makes the reported
// MB/s the round-trip payload throughput.
func BenchmarkProduceConsume(b *testing.B) {
	br := startBroker(b, BrokerConfig{})
	cfg := clientConfig(b, br)
	topic := cfg.Topic(TopicCalls)
	const size = 500 << 10
	const batch = 8
	val := make([]byte, size)
	rand.Read(val[:size/2])
	for i := size / 2; i < size; i++ {
		val[i] = byte(i % 17)
	}
	msgs := make([]kafkago.Message, batch)
	for i := range msgs {
		msgs[i] = kafkago.Message{Key: CallKey("bench", "app", fmt.Sprint(i)), Value: val}
	}
	p := newProducer(b, cfg, topic)
	c, err := NewConsumer(cfg, topic, "bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	got := make([]kafkago.Message, 0, batch)
	b.ReportAllocs()
	b.SetBytes(size * batch)
	for b.Loop() {
		if err := p.Produce(ctx, msgs...); err != nil {
			b.Fatal(err)
		}
		got = got[:0]
		for range batch {
			m, err := c.Fetch(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if len(m.Value) != size {
				b.Fatalf("got %d bytes", len(m.Value))
			}
			got = append(got, m)
		}
		if err := c.Commit(ctx, got...); err != nil {
			b.Fatal(err)
		}
	}
}
