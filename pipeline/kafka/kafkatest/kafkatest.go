// Package kafkatest starts embedded brokers and writes messages to them for
// the tests of packages that read or write Kafka. (It is apart from
// pipeline/kafka because that package's own tests cannot import it.)
package kafkatest

import (
	"context"
	"testing"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/pipeline/kafka"
)

// StartBroker starts an embedded broker with cfg, on a free local port when
// cfg.Listen is empty, and closes it when the test ends. The broker is
// in-process, so it never skips; a failure to start it fails the test.
func StartBroker(tb testing.TB, ctx context.Context, cfg kafka.BrokerConfig) *kafka.Broker {
	tb.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	b, err := kafka.StartBroker(ctx, cfg, nil)
	if err != nil {
		tb.Fatalf("StartBroker: %v", err)
	}
	tb.Cleanup(b.Close)
	return b
}

// Config returns the default client config for the broker at addr with
// partitions per topic, and creates the topics.
func Config(tb testing.TB, ctx context.Context, addr string, partitions map[string]int) kafka.Config {
	tb.Helper()
	cfg := kafka.DefaultConfig()
	cfg.Brokers = []string{addr}
	cfg.Partitions = partitions
	if err := kafka.EnsureTopics(ctx, cfg); err != nil {
		tb.Fatalf("EnsureTopics: %v", err)
	}
	return cfg
}

// Start is StartBroker with the default broker config on a free local port,
// followed by Config.
func Start(tb testing.TB, ctx context.Context, partitions map[string]int) kafka.Config {
	tb.Helper()
	bcfg := kafka.DefaultBrokerConfig()
	bcfg.Listen = "127.0.0.1:0"
	b := StartBroker(tb, ctx, bcfg)
	return Config(tb, ctx, b.Addr(), partitions)
}

// Produce writes msgs to topic (named without cfg's prefix) with a producer
// of its own, closed before it returns.
func Produce(tb testing.TB, ctx context.Context, cfg kafka.Config, topic string, msgs ...kafkago.Message) {
	tb.Helper()
	p, err := kafka.NewProducer(cfg, cfg.Topic(topic), nil)
	if err != nil {
		tb.Fatalf("NewProducer: %v", err)
	}
	defer p.Close()
	if err := p.Produce(ctx, msgs...); err != nil {
		tb.Fatalf("Produce: %v", err)
	}
}

// First returns the first message of topic (a full name, cfg.Topic) that
// a consumer of group fetches, committed, failing tb when none comes
// before ctx ends.
func First(tb testing.TB, ctx context.Context, cfg kafka.Config, topic, group string) kafkago.Message {
	tb.Helper()
	c, err := kafka.NewConsumer(cfg, topic, group, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	m, err := c.Fetch(ctx)
	if err != nil {
		tb.Fatalf("no message on %s: %v", topic, err)
	}
	if err := c.Commit(ctx, m); err != nil {
		tb.Fatal(err)
	}
	return m
}

// FetchAll hands every message the consumer c fetches to fn until ctx
// ends; a failed fetch is retried.
func FetchAll(ctx context.Context, c *kafka.Consumer, fn func(kafkago.Message)) {
	for {
		m, err := c.Fetch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			continue
		}
		fn(m)
	}
}
