package collect

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/internal/role"
	"github.com/tpflow/tpflow/internal/testkit"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas/codec"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

// startBroker starts an embedded Kafka-protocol broker for the test.
func startBroker(t testing.TB) *kafka.Broker {
	t.Helper()
	bc := kafka.DefaultBrokerConfig()
	bc.Listen = "127.0.0.1:0"
	bc.MaxMessageBytes = 16 << 20
	b, err := kafka.StartBroker(context.Background(), bc, nil)
	if err != nil {
		t.Fatalf("StartBroker: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// defaultKafka is the default client config for the broker at addr, with
// two partitions for calls and one for every other topic.
func defaultKafka(addr string) kafka.Config {
	k := kafka.DefaultConfig()
	k.Brokers = []string{addr}
	k.Partitions = map[string]int{kafka.TopicCalls: 2, kafka.TopicLogs: 1, kafka.TopicMetrics: 1, kafka.TopicStats: 1, kafka.TopicAlerts: 1, kafka.TopicDLQ: 1}
	return k
}

// kafkaConfig is defaultKafka with smaller messages and a short batch
// timeout.
func kafkaConfig(addr string) kafka.Config {
	k := defaultKafka(addr)
	k.MaxMessageBytes = 4 << 20
	k.BatchTimeout = 5 * time.Millisecond
	return k
}

// testConfig follows dir/*.log from the beginning with the perf-json
// parser and no metrics.
func testConfig(t testing.TB, dir string) Config {
	c := DefaultConfig()
	c.Host = "node-1"
	c.Sources = []Source{{Name: "app", Globs: []string{filepath.Join(dir, "*.log")}, Container: ContainerNone}}
	c.Tail.Start = "beginning"
	c.Tail.PollInterval = 50 * time.Millisecond
	c.Tail.PartialTimeout = 300 * time.Millisecond
	c.Tail.RotateWait = 200 * time.Millisecond
	c.StateFile = filepath.Join(t.TempDir(), "state.json")
	c.Rediscover = 200 * time.Millisecond
	c.MetricsEnabled = false
	c.Metrics.Kmsg = ""
	c.Batch.MaxAge = 50 * time.Millisecond
	return c
}

// running is an Agent running in the background.
type running struct {
	a      *Agent
	cancel context.CancelFunc
	done   chan error
}

// runAgent runs an agent built with the settings s (none: the defaults)
// until the test ends or it is stopped.
func runAgent(t testing.TB, cfg Config, k kafka.Config, settings ...role.Settings) *running {
	var s role.Settings
	if len(settings) > 0 {
		s = settings[0]
	}
	t.Helper()
	a, err := New(cfg, k, s)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{a: a, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- a.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t testing.TB) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not stop in 30 s")
	}
}

// topicReader reads every partition of one topic from the start and keeps
// what it decoded.
type topicReader struct {
	mu      sync.Mutex
	batches []*tpflowpb.EventBatch
	keys    [][]byte
	bad     int
}

// readTopic reads topic until stop is closed.
func readTopic(t testing.TB, k kafka.Config, name string) (*topicReader, func()) {
	t.Helper()
	topic := k.Topic(name)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	tr := &topicReader{}
	n := k.Partitions[name]
	for p := range n {
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: k.Brokers, Topic: topic, Partition: p, MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 50 * time.Millisecond})
		wg.Go(func() {
			defer r.Close()
			for {
				m, err := r.FetchMessage(ctx)
				if err != nil {
					if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
						time.Sleep(50 * time.Millisecond)
						continue
					}
					return
				}
				tr.add(m, true)
			}
		})
	}
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return tr, stop
}

// decodeFull decodes a message value as the sink does, with dec's limits.
func decodeFull(dec codec.DecodeOptions, value []byte) (*tpflowpb.EventBatch, error) {
	var b codec.Batch
	if err := dec.Decode(value, &b); err != nil {
		return nil, err
	}
	return b.Full()
}

// add decodes m and keeps the batch, and its key when withKey, or counts
// it bad.
func (tr *topicReader) add(m kafkago.Message, withKey bool) {
	full, err := decodeFull(codec.DecodeOptions{}, m.Value)
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if err != nil {
		tr.bad++
		return
	}
	tr.batches = append(tr.batches, full)
	if withKey {
		tr.keys = append(tr.keys, m.Key)
	}
}

// logLine is a decoded log event with its labels resolved.
type logLine struct {
	labels                  map[string]string
	stream, level, msg, src string
	sourceID, offset        uint64
	unparsed, truncated     bool
	tsNano                  int64
}

func (tr *topicReader) logs() []logLine {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []logLine
	for _, b := range tr.batches {
		for _, e := range b.Logs {
			out = append(out, logLine{
				labels: labelMap(b, e.Labels), stream: b.Symbols[e.Stream], level: b.Symbols[e.Level],
				msg: e.Message, src: b.Symbols[e.Source], sourceID: e.SourceId, offset: e.Offset,
				unparsed: e.Unparsed, truncated: e.Truncated, tsNano: e.TsUnixNano,
			})
		}
	}
	return out
}

type callLine struct {
	labels    map[string]string
	method    string
	latencyUS uint32
	ok        bool
	status    uint32
	tsMs      int64
}

func (tr *topicReader) calls() []callLine {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []callLine
	for _, b := range tr.batches {
		for _, c := range b.Calls {
			s := b.Series[c.Series]
			out = append(out, callLine{labels: labelMap(b, s.Labels), method: b.Symbols[s.Method], latencyUS: c.LatencyUs, ok: c.Ok, status: c.Status, tsMs: c.TsUnixMs})
		}
	}
	return out
}

type sample struct {
	labels map[string]string
	name   string
	value  float64
}

func (tr *topicReader) samples() []sample {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []sample
	for _, b := range tr.batches {
		for _, m := range b.Metrics {
			out = append(out, sample{labels: labelMap(b, m.Labels), name: b.Symbols[m.Name], value: m.Value})
		}
	}
	return out
}

func labelMap(b *tpflowpb.EventBatch, set uint32) map[string]string {
	m := map[string]string{}
	if int(set) >= len(b.LabelSets) {
		return m
	}
	refs := b.LabelSets[set].Refs
	for i := 0; i+1 < len(refs); i += 2 {
		m[b.Symbols[refs[i]]] = b.Symbols[refs[i+1]]
	}
	return m
}

// waitFor polls cond for up to 30 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testkit.WaitFor(t, 30*time.Second, what, cond)
}

func appendFile(t testing.TB, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// recentTS and recentSecond are the test binary's start, for lines whose
// calls must fall in the accepted time range (collect.call_time).
var (
	recentSecond = time.Now().UTC().Format("2006-01-02T15:04:05")
	recentTS     = recentSecond + "Z"
)

func perfLine(i int, method string, latencyMS int, ok bool) string {
	return fmt.Sprintf(`{"ts":"%s.%03dZ","method":%q,"latency_ms":%d,"ok":%t,"level":"info","id":%d}`, recentSecond, i%1000, method, latencyMS, ok, i)
}

func contains(lines []logLine, sub string) *logLine {
	for i := range lines {
		if strings.Contains(lines[i].msg, sub) {
			return &lines[i]
		}
	}
	return nil
}

func fileSize(t testing.TB, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
