package sink

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	kafkago "github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

// TestRowBufBisectsPermanentFailures inserts through a fake that refuses
// permanently any insert holding a poisoned row: every other row is
// stored and exactly the poisoned ones are reported, with their records.
func TestRowBufBisectsPermanentFailures(t *testing.T) {
	stored := map[string]int{}
	calls := 0
	r := &rowBuf[clickhouse.LogRow]{kind: "log",
		insert: func(_ *clickhouse.Writer, _ context.Context, rows []clickhouse.LogRow) error {
			calls++
			for _, row := range rows {
				if strings.HasPrefix(row.Message, "poison") {
					return fmt.Errorf("cannot send batch: code 53: %w", clickhouse.ErrPermanent)
				}
			}
			for _, row := range rows {
				stored[row.Message]++
			}
			return nil
		}}
	for i := range 100 {
		msg := fmt.Sprintf("good %d", i)
		if i == 17 || i == 64 {
			msg = fmt.Sprintf("poison %d", i)
		}
		r.buf = append(r.buf, clickhouse.LogRow{Message: msg})
		r.refs = append(r.refs, rowRef{msg: i / 10, rec: i % 10, raw: []byte(msg)})
	}
	bad, err := r.write(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) != 2 || string(bad[0].raw) != "poison 17" || bad[0].msg != 1 || bad[0].rec != 7 ||
		string(bad[1].raw) != "poison 64" || bad[1].msg != 6 || bad[1].rec != 4 {
		t.Fatalf("bad records %+v, want poison 17 (message 1, record 7) and poison 64 (message 6, record 4)", bad)
	}
	if !errors.Is(bad[0].err, clickhouse.ErrPermanent) {
		t.Errorf("bad record error %v", bad[0].err)
	}
	for i := range 100 {
		if i == 17 || i == 64 {
			continue
		}
		if stored[fmt.Sprintf("good %d", i)] != 1 {
			t.Errorf("good %d stored %d times, want once", i, stored[fmt.Sprintf("good %d", i)])
		}
	}
	if calls > 30 {
		t.Errorf("%d inserts to isolate 2 rows among 100, want about 2·log2(100)", calls)
	}

	// A transient failure is not bisected: it is returned for the loop to
	// stop or retry the whole batch.
	transient := errors.New("connection reset")
	r.insert = func(*clickhouse.Writer, context.Context, []clickhouse.LogRow) error { return transient }
	if _, err := r.write(context.Background(), nil); !errors.Is(err, transient) {
		t.Errorf("transient failure: %v", err)
	}
}

// TestSinkIsolatesBadRecords runs the sink with the default settings
// against the embedded broker and a real ClickHouse on a logs batch with
// a record that does not decode, a record whose time ClickHouse cannot
// hold and good records around them, and on a batch larger than
// kafka.max_message_bytes: every good record is stored, with its flags,
// and only the two bad records are in the DLQ, each alone.
func TestSinkIsolatesBadRecords(t *testing.T) {
	ctx, kcfg, ccfg := startBackends(t, 90*time.Second, 1)

	var b codec.Builder
	ls := b.LabelSet([]schemas.Label{{Name: "system", Value: "s"}, {Name: "app", Value: "a"}, {Name: "host", Value: "h"}})
	now := time.Now()
	good := 0
	addLog := func(ts int64, msg string, flags ...string) {
		t.Helper()
		if err := b.AddLog(&tpflowpb.LogEvent{TsUnixNano: ts, Labels: ls, Stream: b.Symbol("stdout"), Message: msg,
			Source: b.Symbol("/var/log/app.log"), SourceId: 7, Offset: uint64(good + 1000*len(msg)), Flags: flags}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 5 {
		addLog(now.UnixNano()+int64(i), fmt.Sprintf("good %d", i))
		good++
	}
	addLog(now.UnixNano(), "flagged", "too_old")
	good++
	// Record 6: a log field that is not Protobuf; record 7: year 2300.
	value := b.AppendTo(nil)
	value = append(value, 6<<3|2, 3, 0xff, 0xff, 0xff)
	bad2300 := &tpflowpb.LogEvent{TsUnixNano: time.Date(2250, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano(), Labels: ls, Message: "year 2250", Offset: 99}
	raw, err := proto.Marshal(bad2300)
	if err != nil {
		t.Fatal(err)
	}
	value = append(value, 6<<3|2, byte(len(raw)))
	value = append(value, raw...)

	// A batch over kafka.max_message_bytes of good records.
	var big codec.Builder
	bls := big.LabelSet([]schemas.Label{{Name: "system", Value: "s"}, {Name: "app", Value: "big"}})
	line := strings.Repeat("x", 100<<10)
	for i := range 12 {
		if err := big.AddLog(&tpflowpb.LogEvent{TsUnixNano: now.UnixNano(), Labels: bls, Message: line, SourceId: 8, Offset: uint64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	bigValue := big.AppendTo(nil)
	if len(bigValue) <= kcfg.MaxMessageBytes {
		t.Fatalf("big batch %d bytes, want over %d", len(bigValue), kcfg.MaxMessageBytes)
	}
	pcfg := kcfg
	pcfg.MaxMessageBytes = 4 << 20
	p, err := kafka.NewProducer(pcfg, kcfg.Topic(kafka.TopicLogs), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Produce(ctx, kafkago.Message{Key: []byte("k"), Value: value}, kafkago.Message{Key: []byte("k"), Value: bigValue}); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	done, stop := startSink(ctx, kcfg, ccfg, reg)
	conn := openDB(t, ctx, ccfg)
	count := func(where string) uint64 {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+ccfg.Database+".logs FINAL WHERE "+where).Scan(&n); err != nil {
			return 0
		}
		return n
	}
	for ctx.Err() == nil && (count("app = 'a'") < uint64(good) || count("app = 'big'") < 12) {
		select {
		case err := <-done:
			t.Fatalf("sink stopped: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if n := count("app = 'a'"); n != uint64(good) {
		t.Errorf("%d rows of the mixed batch stored, want the %d good ones", n, good)
	}
	if n := count("app = 'big'"); n != 12 {
		t.Errorf("%d rows of the oversized batch stored, want 12", n)
	}
	if n := count("message = 'flagged' AND has(flags, 'too_old')"); n != 1 {
		t.Errorf("flagged row: %d with flags [too_old], want 1", n)
	}

	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: kcfg.Brokers, Topic: kcfg.Topic(kafka.TopicDLQ), MaxWait: 100 * time.Millisecond})
	defer r.Close()
	// The DLQ is at least once: a batch delivered again (a commit that
	// timed out, a rebalance) dead-letters its records again, with the same
	// source offset and record index. Read until both bad records were
	// seen; every DLQ message must be one of them.
	wantIdx := map[string]bool{"6": true, "7": true}
	seen := map[string]int{}
	for len(seen) < len(wantIdx) {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		idx := dlqHeader(m, HeaderRecordIndex)
		if dlqHeader(m, HeaderRecordKind) != "log" || !wantIdx[idx] {
			t.Fatalf("DLQ message %q with headers %v, want log record 6 or 7", m.Value, m.Headers)
		}
		seen[idx]++
		if idx == "7" && string(m.Value) != string(raw) {
			t.Errorf("DLQ record 7 is %x, want the year-2250 record %x", m.Value, raw)
		}
		if idx == "6" && string(m.Value) != "\xff\xff\xff" {
			t.Errorf("DLQ record 6 is %x, want the 3 broken bytes", m.Value)
		}
	}
	// Each delivery of the mixed batch counts its two bad records and the
	// oversized batch once: the counters agree with the deliveries.
	deliveries := float64(max(seen["6"], seen["7"]))
	if got := testutil.ToFloat64(mustCounter(t, reg, "tpflow_sink_bad_records_total")); got < 2 || got > 2*deliveries {
		t.Errorf("tpflow_sink_bad_records_total = %v, want 2 per delivery of the batch (%v deliveries)", got, deliveries)
	}
	if got := testutil.ToFloat64(mustCounter(t, reg, "tpflow_sink_oversized_messages_total")); got < 1 {
		t.Errorf("tpflow_sink_oversized_messages_total = %v, want at least 1", got)
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	// Nothing else went to the DLQ.
	rctx, rcancel := context.WithTimeout(ctx, time.Second)
	defer rcancel()
	for {
		m, err := r.ReadMessage(rctx)
		if err != nil {
			break
		}
		if idx := dlqHeader(m, HeaderRecordIndex); dlqHeader(m, HeaderRecordKind) != "log" || !wantIdx[idx] || dlqHeader(m, kafka.HeaderSourceOffset) != "0" {
			t.Errorf("a DLQ message that is neither bad record: %q %v", m.Value, m.Headers)
		}
	}
}

// mustCounter gathers the sum of the counter family name from reg as a
// collector testutil can read.
func mustCounter(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name})
	c.Add(sum)
	return c
}
