package kafka

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

func newTxnProducer(t testing.TB, cfg Config, id string) *TxnProducer {
	t.Helper()
	p, err := NewTxnProducer(cfg, id, nil)
	if err != nil {
		t.Fatalf("NewTxnProducer: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// txnMessages returns n messages to topic with values "<prefix><i>".
func txnMessages(topic, prefix string, n, keys int) []kafkago.Message {
	msgs := make([]kafkago.Message, n)
	for i := range msgs {
		msgs[i] = kafkago.Message{Topic: topic, Key: fmt.Appendf(nil, "k%d", i%keys), Value: fmt.Appendf(nil, "%s%d", prefix, i)}
	}
	return msgs
}

func commitTxn(t testing.TB, ctx context.Context, p *TxnProducer, msgs []kafkago.Message) []Position {
	t.Helper()
	tx, err := p.Begin()
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	tx.Add(ctx, msgs...)
	pos, err := tx.Commit(ctx)
	if err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return pos
}

// valueRecorder is a GroupHandler that counts values and commits as it
// goes.
type valueRecorder struct {
	mu   sync.Mutex
	seen map[string]int
}

func (r *valueRecorder) Assigned(context.Context, *Session) error { return nil }
func (r *valueRecorder) Revoked(context.Context, *Session) error  { return nil }
func (r *valueRecorder) Handle(_ context.Context, s *Session, m kafkago.Message) error {
	r.mu.Lock()
	r.seen[string(m.Value)]++
	r.mu.Unlock()
	return s.Commit(m)
}

func (r *valueRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.seen {
		n += c
	}
	return n
}

// TestTxnAbortedNeverDelivered commits, aborts, and leaves open (then
// fences) transactions on an 8-partition topic: Consumer and GroupConsumer
// deliver the committed records exactly once and never one of an aborted
// or fenced transaction. A plain kafka-go reader on the same partitions is
// read too, to record why the consumers are not built on it.
func TestTxnAbortedNeverDelivered(t *testing.T) {
	b := startBroker(t, BrokerConfig{})
	cfg := clientConfig(t, b)
	topic := cfg.Topic(TopicCalls)
	ctx := testCtx(t, 90*time.Second)

	p := newTxnProducer(t, cfg, "node-a")
	commitTxn(t, ctx, p, txnMessages(topic, "a", 100, 17))

	tx, err := p.Begin()
	if err != nil {
		t.Fatal(err)
	}
	tx.Add(ctx, txnMessages(topic, "x", 100, 17)...)
	tx.Abort()

	commitTxn(t, ctx, p, txnMessages(topic, "c", 100, 17))

	// A transaction left open by a producer that dies, fenced by its
	// successor with the same transactional ID.
	dead := newTxnProducer(t, cfg, "node-b")
	tx, err = dead.Begin()
	if err != nil {
		t.Fatal(err)
	}
	tx.Add(ctx, txnMessages(topic, "y", 100, 17)...)
	if err := dead.cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	succ := newTxnProducer(t, cfg, "node-b")
	commitTxn(t, ctx, succ, txnMessages(topic, "d", 100, 17))
	// The fenced producer can no longer commit.
	if _, err := tx.Commit(ctx); err == nil {
		t.Fatal("a fenced producer committed")
	}

	want := map[string]bool{}
	for _, prefix := range []string{"a", "c", "d"} {
		for i := range 100 {
			want[fmt.Sprintf("%s%d", prefix, i)] = true
		}
	}
	check := func(what string, seen map[string]int) {
		t.Helper()
		for v, n := range seen {
			if !want[v] {
				t.Errorf("%s delivered %q of an aborted transaction", what, v)
			} else if n != 1 {
				t.Errorf("%s delivered %q %d times", what, v, n)
			}
		}
		for v := range want {
			if seen[v] == 0 {
				t.Errorf("%s did not deliver committed %q", what, v)
			}
		}
	}

	c, err := NewConsumer(cfg, topic, "txn-consumer", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	seen := map[string]int{}
	for len(seen) < len(want) {
		m, err := c.Fetch(ctx)
		if err != nil {
			t.Fatalf("Fetch after %d: %v", len(seen), err)
		}
		if m.HighWaterMark <= m.Offset {
			t.Fatalf("message %d/%d has high watermark %d", m.Partition, m.Offset, m.HighWaterMark)
		}
		seen[string(m.Value)]++
	}
	// Nothing else follows.
	short, cancel := context.WithTimeout(ctx, time.Second)
	if m, err := c.Fetch(short); err == nil {
		seen[string(m.Value)]++
	}
	cancel()
	check("Consumer", seen)

	rec := &valueRecorder{seen: map[string]int{}}
	gctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- fastGroup(t, cfg, topic, "txn-group").Run(gctx, rec) }()
	waitFor(t, 30*time.Second, "the group to read the committed records", func() bool { return rec.count() >= len(want) })
	// The committed records of the last transactions come after the
	// aborted and fenced ones on every partition, so a group that has
	// them all has passed the others.
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	check("GroupConsumer", rec.seen)

	// kafka-go's reader, isolation level read_committed asked for, on
	// the same data.
	aborted := 0
	for part := range 8 {
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: cfg.Brokers, Topic: topic, Partition: part, MaxWait: 100 * time.Millisecond, IsolationLevel: kafkago.ReadCommitted})
		rctx, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
		for {
			m, err := r.ReadMessage(rctx)
			if err != nil {
				break
			}
			if !want[string(m.Value)] {
				aborted++
			}
		}
		cancel()
		r.Close()
	}
	t.Logf("kafka-go v0.4.51 reader with ReadCommitted returned %d records of aborted transactions (of 200)", aborted)
}

// TestLatestCommitted finds a key's last committed record with and
// without a hint, skipping an aborted one after it and other keys.
func TestLatestCommitted(t *testing.T) {
	b := startBroker(t, BrokerConfig{})
	cfg := clientConfig(t, b)
	topic := cfg.Topic(TopicCollectOffsets)
	ctx := testCtx(t, 60*time.Second)
	key := []byte("node-1")

	if _, _, found, err := LatestCommitted(ctx, cfg, topic, key, nil); err != nil || found {
		t.Fatalf("empty topic: found=%v err=%v", found, err)
	}
	p := newTxnProducer(t, cfg, "node-1")
	other := newTxnProducer(t, cfg, "node-2")
	var hint Position
	for i := range 5 {
		pos := commitTxn(t, ctx, p, []kafkago.Message{{Topic: topic, Key: key, Value: fmt.Appendf(nil, "v%d", i)}})
		if i == 2 {
			hint = pos[0]
		}
		commitTxn(t, ctx, other, []kafkago.Message{{Topic: topic, Key: []byte("node-2"), Value: fmt.Appendf(nil, "o%d", i)}})
	}
	tx, err := p.Begin()
	if err != nil {
		t.Fatal(err)
	}
	tx.Add(ctx, kafkago.Message{Topic: topic, Key: key, Value: []byte("aborted")})
	tx.Abort()

	for _, h := range []*Position{nil, &hint, {Partition: (hint.Partition + 1) % CollectOffsetsPartitions, Offset: 0}, {Partition: hint.Partition, Offset: 1 << 40}} {
		v, pos, found, err := LatestCommitted(ctx, cfg, topic, key, h)
		if err != nil || !found || string(v) != "v4" {
			t.Fatalf("hint %v: value %q found=%v err=%v, want v4", h, v, found, err)
		}
		if pos.Partition != hint.Partition || pos.Offset <= hint.Offset {
			t.Fatalf("hint %v: position %v, want after %v", h, pos, hint)
		}
	}
}

// TestTxnStateSurvivesBrokerRestart restarts a broker with a data dir
// while a transaction is open: the committed transaction before it is
// kept, the open one is aborted when the producer's successor starts, and
// read_committed consumers see only committed records.
func TestTxnStateSurvivesBrokerRestart(t *testing.T) {
	dir := t.TempDir()
	bc := BrokerConfig{Listen: "127.0.0.1:0", DataDir: dir, MaxMessageBytes: 8 << 20}
	b1, err := StartBroker(context.Background(), bc, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := clientConfig(t, b1)
	topic := cfg.Topic(TopicLogs)
	ctx := testCtx(t, 90*time.Second)
	p1, err := NewTxnProducer(cfg, "node-r", nil)
	if err != nil {
		t.Fatal(err)
	}
	commitTxn(t, ctx, p1, txnMessages(topic, "a", 50, 7))
	tx, err := p1.Begin()
	if err != nil {
		t.Fatal(err)
	}
	tx.Add(ctx, txnMessages(topic, "open", 50, 7)...)
	if err := p1.cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	p1.Close()
	b1.Close()

	b2 := startBroker(t, BrokerConfig{DataDir: dir})
	cfg.Brokers = []string{b2.Addr()}
	p2 := newTxnProducer(t, cfg, "node-r")
	commitTxn(t, ctx, p2, txnMessages(topic, "c", 50, 7))

	c, err := NewConsumer(cfg, topic, "restart", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got []string
	for len(got) < 100 {
		m, err := c.Fetch(ctx)
		if err != nil {
			t.Fatalf("Fetch after %d: %v", len(got), err)
		}
		got = append(got, string(m.Value))
	}
	short, cancel := context.WithTimeout(ctx, time.Second)
	if m, err := c.Fetch(short); err == nil {
		got = append(got, string(m.Value))
	}
	cancel()
	var want []string
	for _, prefix := range []string{"a", "c"} {
		for i := range 50 {
			want = append(want, fmt.Sprintf("%s%d", prefix, i))
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("after restart read %d records %v, want the 100 committed ones", len(got), got)
	}
}

// TestHashPartitionMatchesKafkaGo places keys as kafka-go's Hash balancer
// does, so kgo and kafka-go producers agree on key ownership.
func TestHashPartitionMatchesKafkaGo(t *testing.T) {
	var h kafkago.Hash
	for _, n := range []int{1, 2, 3, 4, 8, 13} {
		parts := make([]int, n)
		for i := range parts {
			parts[i] = i
		}
		for i := range 2000 {
			key := CallKey("sys", "app", fmt.Sprint("m", i))
			if i%7 == 0 {
				key = fmt.Appendf(nil, "host-%d", i)
			}
			if got, want := hashPartition(key, n), h.Balance(kafkago.Message{Key: key}, parts...); got != want {
				t.Fatalf("key %x over %d partitions: %d, kafka-go %d", key, n, got, want)
			}
		}
	}
	if got := hashPartition([]byte{}, 8); got != (&kafkago.Hash{}).Balance(kafkago.Message{Key: []byte{}}, 0, 1, 2, 3, 4, 5, 6, 7) {
		t.Fatalf("empty key: %d", got)
	}
}
