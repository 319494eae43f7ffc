package late

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/internal/testkit"
	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest"
	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest/chdb"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/pipeline/kafka/kafkatest"
)

// TestRunWaitsForTheSinkThenMerges runs the merger against the embedded
// broker and ClickHouse. A stats message is on the topic that the sink
// group has not stored yet: the late message behind it must wait (the
// merger counts the wait and writes nothing), and be merged once the sink
// group commits past the stats message. A garbage message on the late
// topic goes to the DLQ and stops nothing.
func TestRunWaitsForTheSinkThenMerges(t *testing.T) {
	ch := chtest.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	kcfg := kafkatest.Start(t, ctx, map[string]int{kafka.TopicStats: 1, kafka.TopicLate: 2})
	_, ccfg := chdb.Open(t, ch.DSN(), ch.Database())

	produce := func(topic string, msgs ...kafkago.Message) {
		t.Helper()
		kafkatest.Produce(t, ctx, kcfg, topic, msgs...)
	}
	produce(kafka.TopicStats, kafkago.Message{Key: []byte("k"), Value: []byte("a pane the sink has not stored")})
	produce(kafka.TopicLate, kafkago.Message{Key: []byte("garbage"), Value: []byte("not an event batch")})
	produce(kafka.TopicLate, Encode([]aggregator.LateEvent{lateEv(keyA, t0, 10, true, true, 1), lateEv(keyA, t0.Add(time.Second), 20, true, true, 1)}, 1<<20, 2)...)

	reg := prometheus.NewRegistry()
	cfg := Config{GroupID: GroupIDFor("sinks"), SinkGroupID: "sinks", Aggregator: aggregator.DefaultConfig()}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Run(runCtx, kcfg, ccfg, cfg, reg, nil) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitFor(t, ctx, "the merger to wait for the sink", func() bool { return counter(t, reg, "tpflow_sink_late_sink_waits_total") >= 2 })
	conn, _ := chdb.Open(t, ch.DSN(), ch.Database())
	if _, ok := stored(t, conn, ccfg.Database, false, keyA, t0); ok {
		t.Fatal("merged before the sink stored the stats produced earlier")
	}
	// The sink stores the stats message and commits.
	kafkatest.First(t, ctx, kcfg, kcfg.Topic(kafka.TopicStats), "sinks")
	waitFor(t, ctx, "the late events in call_panes", func() bool {
		r, ok := stored(t, conn, ccfg.Database, false, keyA, t0)
		return ok && r.Count == 2
	})
	waitFor(t, ctx, "the late events in call_rollups", func() bool {
		r, ok := stored(t, conn, ccfg.Database, true, keyA, t0)
		return ok && r.Count == 2
	})
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: kcfg.Brokers, Topic: kcfg.Topic(kafka.TopicDLQ), Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	dm, err := r.ReadMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	class := ""
	for _, h := range dm.Headers {
		if h.Key == kafka.HeaderReasonClass {
			class = string(h.Value)
		}
	}
	if string(dm.Key) != "garbage" || class == "" {
		t.Errorf("DLQ holds %q with reason class %q, want the garbage message with a reason", dm.Key, class)
	}
	if got := counter(t, reg, "tpflow_sink_late_dlq_messages_total"); got != 1 {
		t.Errorf("late messages sent to the DLQ: %v, want 1", got)
	}
}

func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	return testkit.Metric(t, reg, name, nil)
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}
