package kafka

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/schemas"
)

// startBroker starts an embedded broker on a free port and closes it when
// the test ends. The embedded broker is in-process, so it never skips; a
// failure to start it fails the test.
func startBroker(t testing.TB, cfg BrokerConfig) *Broker {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = 8 << 20
	}
	b, err := StartBroker(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("StartBroker: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// clientConfig returns a Config for b with a per-test topic prefix and the
// topics created.
func clientConfig(t testing.TB, b *Broker) Config {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Brokers = []string{b.Addr()}
	cfg.TopicPrefix = fmt.Sprintf("t%d.", time.Now().UnixNano()%1e9)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := EnsureTopics(ctx, cfg); err != nil {
		t.Fatalf("EnsureTopics: %v", err)
	}
	return cfg
}

// fieldCase is an edit of a default config that Validate must refuse with
// a *schemas.FieldError on field.
type fieldCase[C any] struct {
	name  string
	edit  func(*C)
	field string
}

// checkFieldErrors applies each case's edit to a fresh def() and checks
// the field of the error Validate returns.
func checkFieldErrors[C interface{ Validate() error }](t *testing.T, def func() C, cases []fieldCase[C]) {
	t.Helper()
	for _, c := range cases {
		cfg := def()
		c.edit(&cfg)
		err := cfg.Validate()
		var fe *schemas.FieldError
		if !errors.As(err, &fe) {
			t.Errorf("%s: Validate() = %v, want a *schemas.FieldError", c.name, err)
			continue
		}
		if fe.Field != c.field {
			t.Errorf("%s: error on field %q (%v), want %q", c.name, fe.Field, err, c.field)
		}
	}
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func newProducer(t testing.TB, cfg Config, topic string, opts ...Option) *Producer {
	t.Helper()
	p, err := NewProducer(cfg, topic, nil, opts...)
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// numbered returns n messages whose values are "v<i>" and keys "k<i%keys>".
func numbered(from, n, keys int) []kafkago.Message {
	msgs := make([]kafkago.Message, n)
	for i := range msgs {
		msgs[i] = kafkago.Message{
			Key:   fmt.Appendf(nil, "k%d", (from+i)%keys),
			Value: fmt.Appendf(nil, "v%d", from+i),
		}
	}
	return msgs
}

// readAll reads topic from the first offset of every partition with
// partition readers (no group) until it has want messages.
func readAll(t testing.TB, cfg Config, topic string, want int) map[string]int {
	t.Helper()
	ctx := testCtx(t, 60*time.Second)
	parts, err := TopicPartitions(ctx, cfg, topic)
	if err != nil {
		t.Fatalf("TopicPartitions: %v", err)
	}
	seen := map[string]int{}
	total := 0
	for p := 0; p < parts[topic]; p++ {
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: cfg.Brokers, Topic: topic, Partition: p, MaxWait: 100 * time.Millisecond})
		conn, err := kafkago.DialLeader(ctx, "tcp", cfg.Brokers[0], topic, p)
		if err != nil {
			t.Fatalf("DialLeader: %v", err)
		}
		first, last, err := conn.ReadOffsets()
		conn.Close()
		if err != nil {
			t.Fatalf("ReadOffsets: %v", err)
		}
		if err := r.SetOffset(first); err != nil {
			t.Fatal(err)
		}
		for off := first; off < last; off++ {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("reading %s/%d@%d of [%d,%d): %v", topic, p, off, first, last, err)
			}
			seen[string(m.Value)]++
			total++
		}
		r.Close()
	}
	if total != want {
		t.Fatalf("read %d messages from %s, want %d", total, topic, want)
	}
	return seen
}
