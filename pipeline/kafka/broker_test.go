package kafka

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

func TestBrokerConfigValidate(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := DefaultBrokerConfig().Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	cases := []fieldCase[BrokerConfig]{
		{"listen without port", func(c *BrokerConfig) { c.Listen = "localhost" }, "listen"},
		{"listen port too big", func(c *BrokerConfig) { c.Listen = "127.0.0.1:70000" }, "listen"},
		{"listen empty", func(c *BrokerConfig) { c.Listen = "" }, "listen"},
		{"advertise port zero", func(c *BrokerConfig) { c.Advertise = "host:0" }, "advertise"},
		{"advertise no port", func(c *BrokerConfig) { c.Advertise = "host" }, "advertise"},
		{"data dir is a file", func(c *BrokerConfig) { c.DataDir = file }, "data_dir"},
		{"sync without dir", func(c *BrokerConfig) { c.SyncWrites = true }, "sync_writes"},
		{"negative retention", func(c *BrokerConfig) { c.Retention = -time.Second }, "retention"},
		{"sub-millisecond retention", func(c *BrokerConfig) { c.Retention = time.Microsecond }, "retention"},
		{"negative retention bytes", func(c *BrokerConfig) { c.RetentionBytes = -1 }, "retention_bytes"},
		{"tiny max message", func(c *BrokerConfig) { c.MaxMessageBytes = 10 }, "max_message_bytes"},
		{"sasl unknown mechanism", func(c *BrokerConfig) { c.SASL = SASLConfig{Mechanism: "gssapi", Username: "u", Password: "p"} }, "sasl.mechanism"},
		{"sasl without password", func(c *BrokerConfig) { c.SASL = SASLConfig{Mechanism: SASLScramSHA256, Username: "u"} }, "sasl"},
		{"sasl user without mechanism", func(c *BrokerConfig) { c.SASL = SASLConfig{Username: "u"} }, "sasl.mechanism"},
	}
	checkFieldErrors(t, DefaultBrokerConfig, cases)
}

func TestStartBrokerRejectsBadConfig(t *testing.T) {
	cfg := DefaultBrokerConfig()
	cfg.Listen = "nope"
	if b, err := StartBroker(context.Background(), cfg, nil); err == nil {
		b.Close()
		t.Fatal("StartBroker accepted an invalid listen address")
	}
	// A port that is taken is reported, not ignored.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg = DefaultBrokerConfig()
	cfg.Listen = ln.Addr().String()
	if b, err := StartBroker(context.Background(), cfg, nil); err == nil {
		b.Close()
		t.Fatal("StartBroker listened on a port that is in use")
	}
}

func TestBrokerAdvertise(t *testing.T) {
	cfg := DefaultBrokerConfig()
	cfg.Listen = "0.0.0.0:0"
	b := startBroker(t, cfg)
	host, port, err := net.SplitHostPort(b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if host != "127.0.0.1" || port == "0" {
		t.Fatalf("unspecified listen host advertised as %s", b.Addr())
	}
	// Metadata must advertise the same address, or clients cannot follow it.
	conn, err := kafkago.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	brokers, err := conn.Brokers()
	if err != nil {
		t.Fatal(err)
	}
	if len(brokers) != 1 || net.JoinHostPort(brokers[0].Host, fmt.Sprint(brokers[0].Port)) != b.Addr() {
		t.Fatalf("metadata advertises %+v, want %s", brokers, b.Addr())
	}
}

// TestBrokerDataDirSurvivesRestart writes 10 000 messages, restarts the
// broker on the same data dir and reads every one of them back, together
// with a committed group offset.
func TestBrokerDataDirSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	bcfg := BrokerConfig{DataDir: dir, MaxMessageBytes: 8 << 20}
	b := startBroker(t, bcfg)
	cfg := clientConfig(t, b)
	topic := cfg.Topic(TopicCalls)
	ctx := testCtx(t, 90*time.Second)

	const n = 10000
	p := newProducer(t, cfg, topic)
	for i := 0; i < n; i += 1000 {
		if err := p.Produce(ctx, numbered(i, 1000, 97)...); err != nil {
			t.Fatalf("Produce: %v", err)
		}
	}
	p.Close()

	// Commit a group offset on one partition so the restart must keep
	// group state too.
	c, err := NewConsumer(cfg, topic, "restart-group", nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Fetch(ctx)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if err := c.Commit(ctx, m); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	c.Close()
	b.Close()

	bcfg.Listen = "127.0.0.1:0"
	b2 := startBroker(t, bcfg)
	cfg.Brokers = []string{b2.Addr()}
	seen := readAll(t, cfg, topic, n)
	for i := range n {
		if seen[fmt.Sprintf("v%d", i)] != 1 {
			t.Fatalf("message v%d seen %d times after restart", i, seen[fmt.Sprintf("v%d", i)])
		}
	}

	cl, err := cfg.client()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cl.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: "restart-group", Topics: map[string][]int{topic: {m.Partition}}})
	if err != nil {
		t.Fatalf("OffsetFetch: %v", err)
	}
	got := resp.Topics[topic]
	if len(got) != 1 || got[0].CommittedOffset != m.Offset+1 {
		t.Fatalf("committed offset after restart = %+v, want %d on partition %d", got, m.Offset+1, m.Partition)
	}
}

func partitionBounds(t *testing.T, addr, topic string, p int) (first, last int64) {
	t.Helper()
	conn, err := kafkago.DialLeader(context.Background(), "tcp", addr, topic, p)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	first, last, err = conn.ReadOffsets()
	if err != nil {
		t.Fatal(err)
	}
	return first, last
}

func TestBrokerRetentionTime(t *testing.T) {
	b := startBroker(t, BrokerConfig{Retention: 300 * time.Millisecond})
	cfg := clientConfig(t, b)
	topic := cfg.Topic(TopicAlerts) // one partition
	ctx := testCtx(t, 30*time.Second)
	p := newProducer(t, cfg, topic)
	if err := p.Produce(ctx, numbered(0, 10, 1)...); err != nil {
		t.Fatal(err)
	}
	if first, last := partitionBounds(t, b.Addr(), topic, 0); first != 0 || last != 10 {
		t.Fatalf("before retention: offsets [%d,%d), want [0,10)", first, last)
	}
	// The broker's own retention pass runs every 100ms for this
	// retention; wait for it rather than forcing it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		first, last := partitionBounds(t, b.Addr(), topic, 0)
		if first == 10 && last == 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retention did not drop old records: offsets [%d,%d)", first, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// New records are kept until they age.
	if err := p.Produce(ctx, numbered(10, 5, 1)...); err != nil {
		t.Fatal(err)
	}
	if first, last := partitionBounds(t, b.Addr(), topic, 0); first != 10 || last != 15 {
		t.Fatalf("after new writes: offsets [%d,%d), want [10,15)", first, last)
	}
}

func TestBrokerRetentionBytes(t *testing.T) {
	b := startBroker(t, BrokerConfig{RetentionBytes: 64 << 10})
	cfg := clientConfig(t, b)
	cfg.Compression = CompressionNone
	topic := cfg.Topic(TopicDLQ) // one partition
	ctx := testCtx(t, 30*time.Second)
	p := newProducer(t, cfg, topic)
	val := []byte(strings.Repeat("x", 10<<10))
	// 40 separate batches of 10 KiB: 400 KiB, well over the 64 KiB cap.
	for i := range 40 {
		if err := p.Produce(ctx, kafkago.Message{Key: []byte("k"), Value: val, Headers: []kafkago.Header{{Key: "i", Value: fmt.Append(nil, i)}}}); err != nil {
			t.Fatal(err)
		}
	}
	b.ApplyRetention()
	first, last := partitionBounds(t, b.Addr(), topic, 0)
	if last != 40 {
		t.Fatalf("high watermark %d, want 40", last)
	}
	kept := last - first
	if kept > 7 || kept < 5 {
		t.Fatalf("retention kept %d records of 10 KiB under a 64 KiB cap, want 5..7", kept)
	}
}

func TestRunBrokerStopsWithContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := DefaultBrokerConfig()
	cfg.Listen = addr
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- RunBroker(ctx, cfg, nil) }()

	var conn net.Conn
	for i := 0; i < 50; i++ {
		if conn, err = net.Dial("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if conn == nil {
		t.Fatalf("RunBroker did not listen on %s: %v", addr, err)
	}
	conn.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("RunBroker returned %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunBroker did not return after its context was cancelled")
	}
	// The port is free again.
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("port still busy after RunBroker returned: %v", err)
	}
	ln.Close()

	cfg.Listen = "bad"
	if err := RunBroker(context.Background(), cfg, nil); err == nil {
		t.Fatal("RunBroker accepted a bad config")
	}
}

// TestBrokerSASL starts the embedded broker with SCRAM-SHA-512: a client
// with its credentials (the same after SASLprep) works, one with a wrong
// password or none is refused.
func TestBrokerSASL(t *testing.T) {
	b := startBroker(t, BrokerConfig{SASL: SASLConfig{Mechanism: SASLScramSHA512, Username: "tpflow", Password: "IX-broker-pw"}})
	cfg := DefaultConfig()
	cfg.Brokers = []string{b.Addr()}
	cfg.SASL = SASLConfig{Mechanism: SASLScramSHA512, Username: "tpflow", Password: "\u2168-broker-pw"}
	ctx := testCtx(t, 20*time.Second)
	if err := EnsureTopics(ctx, cfg); err != nil {
		t.Fatalf("EnsureTopics with the broker's credentials: %v", err)
	}
	if err := newProducer(t, cfg, cfg.Topic(TopicLogs)).Produce(ctx, numbered(0, 1, 1)...); err != nil {
		t.Fatalf("Produce with the broker's credentials: %v", err)
	}
	for name, sasl := range map[string]SASLConfig{
		"wrong password": {Mechanism: SASLScramSHA512, Username: "tpflow", Password: "wrong-password"},
		"no SASL":        {},
	} {
		c := cfg
		c.SASL = sasl
		bctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, err := TopicPartitions(bctx, c, c.Topic(TopicLogs))
		cancel()
		if err == nil {
			t.Errorf("%s: the broker answered", name)
		}
	}
}
