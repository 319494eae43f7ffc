package kafka

import (
	"context"
	"hash/fnv"
	"log/slog"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kgoOptions returns the franz-go client options every kgo client of c
// shares: brokers, TLS, SASL, timeouts, request sizes and the logger.
func (c Config) kgoOptions(logger *slog.Logger) ([]kgo.Opt, error) {
	tc, err := c.TLSClientConfig()
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID("tpflow"),
		kgo.DialTimeout(10 * time.Second),
		kgo.MetadataMaxAge(10 * time.Second),
		kgo.WithLogger(kgoLogger{logger}),
		kgo.ProducerBatchMaxBytes(int32(c.MaxMessageBytes + messageOverhead)),
		kgo.FetchMaxBytes(int32(fetchMaxBytes(c))),
		kgo.FetchMaxPartitionBytes(int32(fetchMaxBytes(c))),
		kgo.FetchMaxWait(250 * time.Millisecond),
	}
	if tc != nil {
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	mech, err := c.kgoSASL()
	if err != nil {
		return nil, err
	}
	if mech != nil {
		opts = append(opts, kgo.SASL(mech))
	}
	return opts, nil
}

// kgoLogger adapts slog to franz-go's logger. franz-go's errors are
// warnings here (the client retries them), its warnings and below debug
// output: a rebalance or a broker restart is normal operation, and what is
// wrong for long is reported by the callers (failed fetches, commits,
// produces).
type kgoLogger struct{ l *slog.Logger }

// Level implements kgo.Logger.
func (k kgoLogger) Level() kgo.LogLevel {
	if k.l.Enabled(context.Background(), slog.LevelDebug) {
		return kgo.LogLevelInfo
	}
	if k.l.Enabled(context.Background(), slog.LevelWarn) {
		return kgo.LogLevelError
	}
	return kgo.LogLevelNone
}

// Log implements kgo.Logger.
func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lvl := slog.LevelDebug
	if level == kgo.LogLevelError {
		lvl = slog.LevelWarn
	}
	k.l.Log(context.Background(), lvl, "kafka client: "+msg, keyvals...)
}

// hashPartitioner places a record on the partition kafka-go's Hash
// balancer would (FNV-1a of the key, as a signed 32-bit value modulo the
// partition count), so records produced by kgo and by kafka-go with the
// same key land on the same partition. A record with a nil key goes to
// partition 0.
type hashPartitioner struct{}

// ForTopic implements kgo.Partitioner.
func (hashPartitioner) ForTopic(string) kgo.TopicPartitioner { return hashPartitioner{} }

// RequiresConsistency implements kgo.TopicPartitioner.
func (hashPartitioner) RequiresConsistency(*kgo.Record) bool { return true }

// Partition implements kgo.TopicPartitioner.
func (hashPartitioner) Partition(r *kgo.Record, n int) int { return hashPartition(r.Key, n) }

// hashPartition is kafka-go's Hash balancer over partitions 0..n-1.
func hashPartition(key []byte, n int) int {
	if key == nil || n <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write(key)
	p := int32(h.Sum32()) % int32(n)
	if p < 0 {
		p = -p
	}
	return int(p)
}

// toMessage converts a fetched kgo record into the kafka-go message the
// handlers take; hwm is the high watermark of the fetch it came in.
func toMessage(r *kgo.Record, hwm int64) kafkago.Message {
	m := kafkago.Message{
		Topic:         r.Topic,
		Partition:     int(r.Partition),
		Offset:        r.Offset,
		HighWaterMark: hwm,
		Key:           r.Key,
		Value:         r.Value,
		Time:          r.Timestamp,
	}
	if len(r.Headers) > 0 {
		m.Headers = make([]kafkago.Header, len(r.Headers))
		for i, h := range r.Headers {
			m.Headers[i] = kafkago.Header{Key: h.Key, Value: h.Value}
		}
	}
	return m
}

// toRecord converts a message to produce into a kgo record for topic.
func toRecord(topic string, m kafkago.Message) *kgo.Record {
	r := &kgo.Record{Topic: topic, Key: m.Key, Value: m.Value, Timestamp: m.Time}
	if len(m.Headers) > 0 {
		r.Headers = make([]kgo.RecordHeader, len(m.Headers))
		for i, h := range m.Headers {
			r.Headers[i] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
		}
	}
	return r
}

// compressionKgo maps a compression name to kgo's codec.
func compressionKgo(name string) kgo.CompressionCodec {
	switch name {
	case CompressionGzip:
		return kgo.GzipCompression()
	case CompressionSnappy:
		return kgo.SnappyCompression()
	case CompressionLZ4:
		return kgo.Lz4Compression()
	case CompressionZstd:
		return kgo.ZstdCompression()
	}
	return kgo.NoCompression()
}
