package kafka

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/internal/testkit"
)

func TestEnsureTopicsIdempotent(t *testing.T) {
	b := startBroker(t, BrokerConfig{})
	cfg := clientConfig(t, b) // creates once
	cfg.Partitions = map[string]int{TopicCalls: 6}
	ctx := testCtx(t, 30*time.Second)
	// A second call must succeed and must not repartition existing topics.
	if err := EnsureTopics(ctx, cfg); err != nil {
		t.Fatalf("second EnsureTopics: %v", err)
	}
	names := make([]string, 0, len(TopicNames))
	for _, n := range TopicNames {
		names = append(names, cfg.Topic(n))
	}
	got, err := TopicPartitions(ctx, cfg, names...)
	if err != nil {
		t.Fatal(err)
	}
	def := DefaultConfig()
	for _, n := range TopicNames {
		if got[cfg.Topic(n)] != def.PartitionsFor(n) {
			t.Errorf("%s has %d partitions, want %d", cfg.Topic(n), got[cfg.Topic(n)], def.PartitionsFor(n))
		}
	}
	// A new prefix gets the configured counts.
	cfg.TopicPrefix = "other."
	if err := EnsureTopics(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	got, err = TopicPartitions(ctx, cfg, cfg.Topic(TopicCalls), cfg.Topic(TopicLogs), "does-not-exist")
	if err != nil {
		t.Fatal(err)
	}
	if got["other.calls"] != 6 || got["other.logs"] != 8 {
		t.Errorf("new topics: %v, want calls=6 logs=8", got)
	}
	if _, ok := got["does-not-exist"]; ok {
		t.Error("a missing topic was reported as existing")
	}
}

func TestEnsureTopicsUnreachable(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Brokers = []string{"127.0.0.1:1"}
	ctx := testCtx(t, 5*time.Second)
	if err := EnsureTopics(ctx, cfg); err == nil {
		t.Fatal("EnsureTopics succeeded without a broker")
	}
}

func TestKeys(t *testing.T) {
	a := CallKey("pay", "checkout", "Create")
	if len(a) != 8 {
		t.Fatalf("CallKey length %d, want 8", len(a))
	}
	if !bytes.Equal(a, CallKey("pay", "checkout", "Create")) {
		t.Fatal("CallKey not deterministic")
	}
	distinct := [][]byte{
		a,
		CallKey("pay", "checkout", "Update"),
		CallKey("pay", "checkou", "tCreate"), // separator matters
		CallKey("", "paycheckout", "Create"),
		MetricKey("host-1", "c1"),
		MetricKey("host-1", "c2"),
		MetricKey("host-1c", "2"),
	}
	seen := map[string]int{}
	for i, k := range distinct {
		if j, dup := seen[string(k)]; dup {
			t.Errorf("keys %d and %d collide", i, j)
		}
		seen[string(k)] = i
	}
	if !bytes.Equal(MetricKey("h", "c"), MetricKey("h", "c")) {
		t.Fatal("MetricKey not deterministic")
	}
}

// TestKeyAffinity checks that every message of one key lands on one
// partition and that keys spread over all partitions.
func TestKeyAffinity(t *testing.T) {
	b := startBroker(t, BrokerConfig{})
	cfg := clientConfig(t, b)
	topic := cfg.Topic(TopicCalls)
	ctx := testCtx(t, 60*time.Second)
	p := newProducer(t, cfg, topic)
	var msgs []kafkago.Message
	for round := range 3 {
		for m := range 64 {
			msgs = append(msgs, kafkago.Message{Key: CallKey("sys", "app", fmt.Sprint("m", m)), Value: fmt.Appendf(nil, "m%d", m)})
		}
		_ = round
	}
	if err := p.Produce(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	partOf := map[string]int{}
	used := map[int]bool{}
	for part := range cfg.PartitionsFor(TopicCalls) {
		first, last := partitionBounds(t, b.Addr(), topic, part)
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: cfg.Brokers, Topic: topic, Partition: part, MaxWait: 100 * time.Millisecond})
		r.SetOffset(first)
		for off := first; off < last; off++ {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if prev, ok := partOf[string(m.Value)]; ok && prev != part {
				t.Fatalf("key of %s on partitions %d and %d", m.Value, prev, part)
			}
			partOf[string(m.Value)] = part
			used[part] = true
		}
		r.Close()
	}
	if len(partOf) != 64 {
		t.Fatalf("read %d distinct keys, want 64", len(partOf))
	}
	if len(used) < 6 {
		t.Errorf("64 keys used only %d of 8 partitions", len(used))
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// TestProduceConsumeCommitResume is the at-least-once contract: committed
// messages are not delivered again after a restart, uncommitted ones are.
func TestProduceConsumeCommitResume(t *testing.T) {
	b := startBroker(t, BrokerConfig{})
	cfg := clientConfig(t, b)
	topic := cfg.Topic(TopicMetrics) // 4 partitions
	ctx := testCtx(t, 120*time.Second)
	reg := prometheus.NewRegistry()
	metrics, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	p := newProducer(t, cfg, topic, WithMetrics(metrics))
	if err := p.Produce(ctx, numbered(0, n, 13)...); err != nil {
		t.Fatal(err)
	}
	if got := counterValue(t, reg, "tpflow_kafka_produced_messages_total", map[string]string{"topic": topic}); got != n {
		t.Fatalf("produced counter = %v, want %d", got, n)
	}

	const group = "resume"
	c1, err := NewConsumer(cfg, topic, group, nil, WithMetrics(metrics))
	if err != nil {
		t.Fatal(err)
	}
	// Read 150 messages; commit the first 100 in fetch order, leave 50
	// fetched but uncommitted.
	var fetched []kafkago.Message
	for len(fetched) < 150 {
		m, err := c1.Fetch(ctx)
		if err != nil {
			t.Fatalf("Fetch: %v", err)
		}
		if m.Topic != topic || m.Partition < 0 || m.Partition >= 4 {
			t.Fatalf("message without origin: %+v", m)
		}
		fetched = append(fetched, m)
	}
	if err := c1.Commit(ctx, fetched[:100]...); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if err := c1.Commit(ctx); err != nil {
		t.Fatalf("empty Commit: %v", err)
	}
	// Per partition, the committed offset is one past the highest offset
	// committed; everything after it must come again.
	committed := map[int]int64{}
	for _, m := range fetched[:100] {
		if m.Offset+1 > committed[m.Partition] {
			committed[m.Partition] = m.Offset + 1
		}
	}
	c1.Close()

	wantAgain := map[string]bool{}
	for _, m := range numbered(0, n, 13) {
		wantAgain[string(m.Value)] = true
	}
	for _, m := range fetched {
		if m.Offset < committed[m.Partition] {
			delete(wantAgain, string(m.Value))
		}
	}
	if len(wantAgain) < n-100 {
		t.Fatalf("BUG in test: %d messages expected again", len(wantAgain))
	}

	c2, err := NewConsumer(cfg, topic, group, nil, WithMetrics(metrics))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	got := map[string]int{}
	for len(got) < len(wantAgain) {
		m, err := c2.Fetch(ctx)
		if err != nil {
			t.Fatalf("Fetch after restart (have %d of %d): %v", len(got), len(wantAgain), err)
		}
		if m.Offset < committed[m.Partition] {
			t.Fatalf("committed message %s/%d@%d delivered again", m.Topic, m.Partition, m.Offset)
		}
		if !wantAgain[string(m.Value)] {
			t.Fatalf("unexpected message %q", m.Value)
		}
		got[string(m.Value)]++
	}
	for v, c := range got {
		if c != 1 {
			t.Errorf("%s delivered %d times after restart", v, c)
		}
	}
	// Nothing else is pending.
	short, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
	defer cancel()
	if m, err := c2.Fetch(short); err == nil {
		t.Fatalf("extra message after all were read: %q", m.Value)
	}
	if got := counterValue(t, reg, "tpflow_kafka_commits_total", map[string]string{"topic": topic}); got != 1 {
		t.Errorf("commit counter = %v, want 1", got)
	}
}

func TestProduceFailsWithoutBroker(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Brokers = []string{"127.0.0.1:1"}
	cfg.WriteTimeout = time.Second
	reg := prometheus.NewRegistry()
	metrics, _ := NewMetrics(reg)
	p := newProducer(t, cfg, "nowhere", WithMetrics(metrics))
	ctx := testCtx(t, 3*time.Second)
	err := p.Produce(ctx, numbered(0, 1, 1)...)
	if err == nil || !strings.Contains(err.Error(), "cannot produce") {
		t.Fatalf("Produce without broker: %v", err)
	}
	if got := counterValue(t, reg, "tpflow_kafka_produce_errors_total", nil); got != 1 {
		t.Fatalf("error counter = %v, want 1", got)
	}
	if err := p.Produce(ctx); err != nil {
		t.Fatalf("empty Produce: %v", err)
	}
}

func TestProduceRejectsOversized(t *testing.T) {
	b := startBroker(t, BrokerConfig{})
	cfg := clientConfig(t, b)
	p := newProducer(t, cfg, cfg.Topic(TopicLogs))
	ctx := testCtx(t, 20*time.Second)
	big := make([]byte, cfg.MaxMessageBytes+messageOverhead+1)
	if err := p.Produce(ctx, kafkago.Message{Value: big}); err == nil {
		t.Fatal("a message over max_message_bytes was produced")
	}
	ok := make([]byte, cfg.MaxMessageBytes)
	if err := p.Produce(ctx, kafkago.Message{Value: ok}); err != nil {
		t.Fatalf("a message of exactly max_message_bytes was refused: %v", err)
	}
}

func TestMetricsRegisterTwice(t *testing.T) {
	reg := prometheus.NewRegistry()
	m1, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := NewMetrics(reg)
	if err != nil {
		t.Fatalf("second NewMetrics on one registry: %v", err)
	}
	m1.producedMessages.WithLabelValues("x").Inc()
	m2.producedMessages.WithLabelValues("x").Inc()
	if got := counterValue(t, reg, "tpflow_kafka_produced_messages_total", map[string]string{"topic": "x"}); got != 2 {
		t.Fatalf("shared counter = %v, want 2", got)
	}
	// A different metric under the same name is a real conflict.
	reg2 := prometheus.NewRegistry()
	reg2.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "tpflow_kafka_commits_total", Help: "x"}))
	if _, err := NewMetrics(reg2); err == nil {
		t.Fatal("conflicting registration accepted")
	}
}

type testClass struct{ error }

func classify(err error) string {
	var tc testClass
	if errors.As(err, &tc) {
		return "malformed"
	}
	return ""
}

func TestDLQ(t *testing.T) {
	b := startBroker(t, BrokerConfig{})
	cfg := clientConfig(t, b)
	ctx := testCtx(t, 60*time.Second)
	reg := prometheus.NewRegistry()
	dlq, err := NewDLQ(cfg, classify, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dlq.Close()

	src := kafkago.Message{
		Topic: cfg.Topic(TopicCalls), Partition: 5, Offset: 1234,
		Key: []byte("key"), Value: []byte("\x00\x01garbage"),
		Headers: []kafkago.Header{{Key: "trace", Value: []byte("t1")}, {Key: HeaderReason, Value: []byte("stale")}},
	}
	reason := fmt.Errorf("cannot decode batch: %w", testClass{errors.New("truncated varint")})
	if err := dlq.Send(ctx, src, reason); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if err := dlq.Send(ctx, kafkago.Message{Topic: cfg.Topic(TopicLogs), Value: []byte("x")}, errors.New(strings.Repeat("e", 5000))); err != nil {
		t.Fatal(err)
	}

	c, err := NewConsumer(cfg, cfg.Topic(TopicDLQ), "dlq-reader", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	m, err := c.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Value, src.Value) || !bytes.Equal(m.Key, src.Key) {
		t.Fatalf("DLQ changed the message: key %q value %q", m.Key, m.Value)
	}
	h := map[string][]string{}
	for _, hd := range m.Headers {
		h[hd.Key] = append(h[hd.Key], string(hd.Value))
	}
	want := map[string]string{
		HeaderReason:          reason.Error(),
		HeaderReasonClass:     "malformed",
		HeaderSourceTopic:     src.Topic,
		HeaderSourcePartition: "5",
		HeaderSourceOffset:    "1234",
		"trace":               "t1",
	}
	for k, v := range want {
		if len(h[k]) != 1 || h[k][0] != v {
			t.Errorf("header %s = %q, want [%q]", k, h[k], v)
		}
	}
	m2, err := c.Fetch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, hd := range m2.Headers {
		if hd.Key == HeaderReason && len(hd.Value) != maxReasonBytes {
			t.Errorf("long reason kept %d bytes, want %d", len(hd.Value), maxReasonBytes)
		}
		if hd.Key == HeaderReasonClass && string(hd.Value) != ReasonUnknown {
			t.Errorf("unclassified reason class %q", hd.Value)
		}
	}
	if got := counterValue(t, reg, "tpflow_dlq_messages_total", map[string]string{"topic": src.Topic, "reason": "malformed"}); got != 1 {
		t.Errorf("dlq counter{malformed} = %v, want 1", got)
	}
	if got := counterValue(t, reg, "tpflow_dlq_messages_total", map[string]string{"topic": cfg.Topic(TopicLogs), "reason": ReasonUnknown}); got != 1 {
		t.Errorf("dlq counter{unknown} = %v, want 1", got)
	}
}

func TestDLQClassSanitized(t *testing.T) {
	d := &DLQ{classify: func(error) string { return "Bad Reference! with a very long free-text explanation" }}
	got := d.Class(errors.New("x"))
	if len(got) > 32 || strings.ContainsAny(got, " !ABR") || !strings.HasPrefix(got, "bad_reference_") {
		t.Fatalf("Class = %q", got)
	}
	if got := (&DLQ{}).Class(errors.New("x")); got != ReasonUnknown {
		t.Fatalf("nil classifier class = %q", got)
	}
	if got := d.Class(nil); got != ReasonUnknown {
		t.Fatalf("nil reason class = %q", got)
	}
}

// TestDLQBounded checks that Send gives up when the broker is gone instead
// of blocking the pipeline.
func TestDLQBounded(t *testing.T) {
	b := startBroker(t, BrokerConfig{})
	cfg := clientConfig(t, b)
	cfg.WriteTimeout = 500 * time.Millisecond
	reg := prometheus.NewRegistry()
	dlq, err := NewDLQ(cfg, nil, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dlq.Close()
	dlq.backoff = 10 * time.Millisecond
	b.Close()
	start := time.Now()
	err = dlq.Send(context.Background(), kafkago.Message{Topic: "src", Value: []byte("x")}, errors.New("bad"))
	if err == nil {
		t.Fatal("Send succeeded without a broker")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("Send took %s without a broker", d)
	}
	if got := counterValue(t, reg, "tpflow_dlq_messages_total", nil); got != 0 {
		t.Fatalf("counter rose for an unsent message: %v", got)
	}
}

// recorder is a GroupHandler that records what it sees and commits in
// Revoked, as the aggregator does after flushing.
type recorder struct {
	mu       sync.Mutex
	name     string
	handled  map[string]int
	pending  map[int]kafkago.Message // last handled message per partition
	assigned [][]int
	revoked  int
	failOn   string
	log      *[]string
	logMu    *sync.Mutex
}

func newRecorder(name string, log *[]string, logMu *sync.Mutex) *recorder {
	return &recorder{name: name, handled: map[string]int{}, pending: map[int]kafkago.Message{}, log: log, logMu: logMu}
}

func (r *recorder) note(s string) {
	r.logMu.Lock()
	*r.log = append(*r.log, r.name+":"+s)
	r.logMu.Unlock()
}

func (r *recorder) Assigned(_ context.Context, s *Session) error {
	r.mu.Lock()
	r.assigned = append(r.assigned, append([]int(nil), s.Partitions()...))
	r.mu.Unlock()
	r.note(fmt.Sprintf("assigned%v", s.Partitions()))
	return nil
}

func (r *recorder) Handle(_ context.Context, _ *Session, m kafkago.Message) error {
	if r.failOn != "" && string(m.Value) == r.failOn {
		return errors.New("poison")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handled[string(m.Value)]++
	r.pending[m.Partition] = m
	return nil
}

func (r *recorder) Revoked(_ context.Context, s *Session) error {
	r.mu.Lock()
	msgs := make([]kafkago.Message, 0, len(r.pending))
	for _, m := range r.pending {
		msgs = append(msgs, m)
	}
	r.pending = map[int]kafkago.Message{}
	r.revoked++
	r.mu.Unlock()
	r.note("revoked")
	return s.Commit(msgs...)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.handled {
		n += c
	}
	return n
}

func fastGroup(t *testing.T, cfg Config, topic, group string) *GroupConsumer {
	t.Helper()
	g, err := NewGroupConsumer(cfg, topic, group, nil)
	if err != nil {
		t.Fatal(err)
	}
	g.heartbeat = 200 * time.Millisecond
	g.session = 6 * time.Second
	g.rebalance = 10 * time.Second
	return g
}

// waitFor polls cond until it holds, failing the test after d.
var waitFor = testkit.WaitFor

// TestGroupConsumerRebalance runs one member, then adds a second: the first
// must be told its partitions are revoked and commit before the second
// reads them, so across both nothing is lost and, because the first
// committed in Revoked, nothing is handled twice.
func TestGroupConsumerRebalance(t *testing.T) {
	b := startBroker(t, BrokerConfig{})
	cfg := clientConfig(t, b)
	topic := cfg.Topic(TopicCalls) // 8 partitions
	ctx := testCtx(t, 120*time.Second)
	p := newProducer(t, cfg, topic)
	const n = 400
	if err := p.Produce(ctx, numbered(0, n, 41)...); err != nil {
		t.Fatal(err)
	}

	var log []string
	var logMu sync.Mutex
	r1 := newRecorder("a", &log, &logMu)
	r2 := newRecorder("b", &log, &logMu)
	ctx1, stop1 := context.WithCancel(ctx)
	done1 := make(chan error, 1)
	go func() { done1 <- fastGroup(t, cfg, topic, "rebalance").Run(ctx1, r1) }()
	waitFor(t, 30*time.Second, "first member to read everything", func() bool { return r1.count() == n })

	ctx2, stop2 := context.WithCancel(ctx)
	done2 := make(chan error, 1)
	go func() { done2 <- fastGroup(t, cfg, topic, "rebalance").Run(ctx2, r2) }()
	waitFor(t, 40*time.Second, "second member to get partitions", func() bool {
		r2.mu.Lock()
		defer r2.mu.Unlock()
		return len(r2.assigned) > 0 && len(r2.assigned[len(r2.assigned)-1]) > 0
	})
	// New messages after the rebalance go to both members.
	if err := p.Produce(ctx, numbered(n, n, 41)...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "both members to read the second half", func() bool { return r1.count()+r2.count() == 2*n })

	stop2()
	if err := <-done2; err != nil {
		t.Fatalf("member b Run: %v", err)
	}
	stop1()
	if err := <-done1; err != nil {
		t.Fatalf("member a Run: %v", err)
	}

	all := map[string]int{}
	for _, r := range []*recorder{r1, r2} {
		for v, c := range r.handled {
			all[v] += c
		}
	}
	for i := range 2 * n {
		if c := all[fmt.Sprintf("v%d", i)]; c != 1 {
			t.Errorf("v%d handled %d times", i, c)
		}
	}
	if r1.revoked < 2 || r2.revoked < 1 {
		t.Errorf("revocations a=%d b=%d, want a>=2 (rebalance, shutdown), b>=1", r1.revoked, r2.revoked)
	}
	// After the rebalance the partitions are split, none shared.
	a, bb := r1.assigned[len(r1.assigned)-1], r2.assigned[len(r2.assigned)-1]
	union := append(append([]int(nil), a...), bb...)
	sort.Ints(union)
	if fmt.Sprint(union) != "[0 1 2 3 4 5 6 7]" {
		t.Errorf("split assignment a=%v b=%v", a, bb)
	}
	// a's first revocation precedes b's first assignment.
	logMu.Lock()
	defer logMu.Unlock()
	ia, ib := -1, -1
	for i, e := range log {
		if e == "a:revoked" && ia < 0 {
			ia = i
		}
		if strings.HasPrefix(e, "b:assigned") && ib < 0 {
			ib = i
		}
	}
	t.Logf("group log: %v", log)
	if ia < 0 || ib < 0 || ia > ib {
		t.Errorf("a revoked at %d, b assigned at %d in %v", ia, ib, log)
	}
}

// TestGroupConsumerHandlerError stops Run with the handler's error, after
// committing what was handled before it, so a restart resumes at the poison
// message.
func TestGroupConsumerHandlerError(t *testing.T) {
	b := startBroker(t, BrokerConfig{})
	cfg := clientConfig(t, b)
	topic := cfg.Topic(TopicAlerts) // 1 partition: a total order
	ctx := testCtx(t, 60*time.Second)
	p := newProducer(t, cfg, topic)
	if err := p.Produce(ctx, numbered(0, 10, 1)...); err != nil {
		t.Fatal(err)
	}
	var log []string
	var mu sync.Mutex
	r := newRecorder("a", &log, &mu)
	r.failOn = "v6"
	err := fastGroup(t, cfg, topic, "poison").Run(ctx, r)
	if err == nil || !strings.Contains(err.Error(), "poison") || !strings.Contains(err.Error(), "@6") {
		t.Fatalf("Run = %v, want the handler's error at offset 6", err)
	}
	if r.count() != 6 || r.revoked != 1 {
		t.Fatalf("handled %d, revoked %d; want 6 and 1", r.count(), r.revoked)
	}
	r2 := newRecorder("b", &log, &mu)
	ctx2, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- fastGroup(t, cfg, topic, "poison").Run(ctx2, r2) }()
	waitFor(t, 30*time.Second, "restart to read the rest", func() bool { return r2.count() == 4 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for i := 6; i < 10; i++ {
		if r2.handled[fmt.Sprintf("v%d", i)] != 1 {
			t.Errorf("after restart v%d handled %d times", i, r2.handled[fmt.Sprintf("v%d", i)])
		}
	}
}
