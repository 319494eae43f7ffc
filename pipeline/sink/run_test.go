package sink

import (
	"fmt"
	"os"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/pipeline/kafka/kafkatest"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

func TestMain(m *testing.M) { os.Exit(chtest.RunMain(m)) }

// TestRunAllTopics runs the sink against the embedded broker and a real
// ClickHouse: one batch on each topic lands in its table, and a garbage
// message lands in the DLQ without stopping the others.
func TestRunAllTopics(t *testing.T) {
	ctx, kcfg, ccfg := startBackends(t, 60*time.Second, 1)
	ccfg.BatchAge = 100 * time.Millisecond

	now := time.Now()
	var b codec.Builder
	labels := func() uint32 {
		return b.LabelSet([]schemas.Label{{Name: "system", Value: "s"}, {Name: "app", Value: "a"}, {Name: "group", Value: "g"},
			{Name: "idc", Value: "i"}, {Name: "host", Value: "h"}})
	}
	produce := func(topic string, value []byte) {
		t.Helper()
		kafkatest.Produce(t, ctx, kcfg, topic, kafkago.Message{Key: []byte(topic), Value: value})
	}
	b.Reset()
	ls := labels()
	for i := range 3 {
		if err := b.AddLog(&tpflowpb.LogEvent{TsUnixNano: now.UnixNano() + int64(i), Labels: ls, Stream: b.Symbol("stdout"),
			Message: fmt.Sprintf("line %d", i), Source: b.Symbol("/var/log/x"), SourceId: 9, Offset: uint64(i * 10)}); err != nil {
			t.Fatal(err)
		}
	}
	produce(kafka.TopicLogs, b.AppendTo(nil))
	b.Reset()
	ls = labels()
	b.AddMetric(codec.Metric{TsUnixMs: now.UnixMilli(), Labels: ls, Name: b.Symbol("cpu_usage"), Value: 0.5, Kind: uint8(tpflowpb.MetricKind_METRIC_KIND_GAUGE)})
	b.AddMetric(codec.Metric{TsUnixMs: now.UnixMilli(), Labels: ls, Name: b.Symbol("mem_bytes"), Value: 1 << 20, Kind: uint8(tpflowpb.MetricKind_METRIC_KIND_GAUGE)})
	produce(kafka.TopicMetrics, b.AppendTo(nil))
	b.Reset()
	ls = labels()
	if err := b.AddAlert(&tpflowpb.Alert{Rule: "slow", Labels: ls, State: tpflowpb.AlertState_ALERT_STATE_FIRING, Value: 3,
		EvalUnixMs: now.UnixMilli(), ActiveAtUnixMs: now.UnixMilli(), Fingerprint: "00ff", Annotations: map[string]string{"summary": "x"}}); err != nil {
		t.Fatal(err)
	}
	produce(kafka.TopicAlerts, b.AppendTo(nil))
	produce(kafka.TopicStats, []byte("garbage"))
	b.Reset()
	ls = labels()
	if err := b.AddPane(&tpflowpb.PaneStat{Labels: ls, Method: b.Symbol("M"), PaneStartUnixMs: now.Truncate(10 * time.Second).UnixMilli(),
		PaneMs: 10000, Version: 1, Count: 4, CentroidMeans: []float64{1, 2}, CentroidWeights: []float64{2, 2}}); err != nil {
		t.Fatal(err)
	}
	// The same message carries the pane's 5-minute rollup: it goes to
	// call_rollups, not call_panes.
	if err := b.AddPane(&tpflowpb.PaneStat{Labels: ls, Method: b.Symbol("M"), PaneStartUnixMs: now.Truncate(5 * time.Minute).UnixMilli(),
		PaneMs: 300000, Version: 4, Count: 4, CentroidMeans: []float64{1, 2}, CentroidWeights: []float64{2, 2}, Rollup: true}); err != nil {
		t.Fatal(err)
	}
	produce(kafka.TopicStats, b.AppendTo(nil))
	// A good pane beside a broken rollup: the pane is stored and only the
	// rollup goes to the DLQ.
	b.Reset()
	ls = labels()
	for _, ps := range []*tpflowpb.PaneStat{
		{Labels: ls, Method: b.Symbol("N"), PaneStartUnixMs: now.Truncate(10 * time.Second).UnixMilli(), PaneMs: 10000, Version: 1, Count: 1,
			CentroidMeans: []float64{1}, CentroidWeights: []float64{1}},
		{Labels: ls, Method: b.Symbol("N"), PaneStartUnixMs: now.Truncate(5 * time.Minute).UnixMilli(), PaneMs: 300000, Version: 1, Count: 1,
			CentroidMeans: []float64{1, 2}, CentroidWeights: []float64{1}, Rollup: true},
	} {
		if err := b.AddPane(ps); err != nil {
			t.Fatal(err)
		}
	}
	produce(kafka.TopicStats, b.AppendTo(nil))

	done, stop := startSink(ctx, kcfg, ccfg, nil)
	conn := openDB(t, ctx, ccfg)
	want := map[string]uint64{"logs": 3, "metric_samples": 2, "alerts": 1, "call_panes": 2, "call_rollups": 1}
	got := map[string]uint64{}
	for ctx.Err() == nil {
		for table := range want {
			var n uint64
			if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT count() FROM %s.%s", ccfg.Database, table)).Scan(&n); err == nil {
				got[table] = n
			}
		}
		if fmt.Sprint(got) == fmt.Sprint(want) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("rows %v, want %v", got, want)
	}
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: kcfg.Brokers, Topic: kcfg.Topic(kafka.TopicDLQ), MaxWait: 100 * time.Millisecond})
	defer r.Close()
	m, err := r.ReadMessage(ctx)
	if err != nil || string(m.Value) != "garbage" {
		t.Fatalf("DLQ: %q, %v", m.Value, err)
	}
	if m, err = r.ReadMessage(ctx); err != nil || dlqHeader(m, HeaderRecordKind) != "pane" || dlqHeader(m, HeaderRecordIndex) != "1" {
		t.Fatalf("DLQ: %q %v, %v; want the broken rollup, pane 1 of its batch", m.Value, m.Headers, err)
	}
	var rollup tpflowpb.PaneStat
	if err := proto.Unmarshal(m.Value, &rollup); err != nil || !rollup.Rollup || len(rollup.CentroidMeans) != 2 {
		t.Fatalf("DLQ record %+v, %v; want the rollup with 2 means", &rollup, err)
	}
	var rolled struct {
		seconds uint32
		count   uint64
	}
	if err := conn.QueryRow(ctx, "SELECT pane_seconds, count FROM "+ccfg.Database+".call_rollups").Scan(&rolled.seconds, &rolled.count); err != nil ||
		rolled.seconds != 300 || rolled.count != 4 {
		t.Fatalf("call_rollups row %+v, %v; want the 300 s rollup of 4 calls", rolled, err)
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func dlqHeader(m kafkago.Message, key string) string {
	for _, h := range m.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
