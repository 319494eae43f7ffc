package collect

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/collectors/parse/hostiletest"
	"github.com/tpflow/tpflow/internal/role"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/pipeline/kafka/kafkatest"
	"github.com/tpflow/tpflow/schemas/codec"
	"github.com/tpflow/tpflow/schemas/tpflowpb"

	"github.com/tpflow/tpflow/internal/testkit"
)

// sizedReader reads a topic from the start as the sink would: each
// message decoded with kafka.max_message_bytes as the limit.
type sizedReader struct {
	mu       sync.Mutex
	batches  []*tpflowpb.EventBatch
	maxValue int
	refused  []string
}

func readSized(t *testing.T, k kafka.Config, name string) *sizedReader {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	sr := &sizedReader{}
	dec := codec.DecodeOptions{MaxBytes: k.MaxMessageBytes}
	// A read_committed consumer, as the sink's: the collector writes in
	// transactions, whose commit markers a plain reader would take for
	// messages.
	c, err := kafka.NewConsumer(k, k.Topic(name), fmt.Sprintf("%s-sized-%s", t.Name(), name), nil)
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() {
		defer c.Close()
		kafkatest.FetchAll(ctx, c, func(m kafkago.Message) {
			full, err := decodeFull(dec, m.Value)
			sr.mu.Lock()
			defer sr.mu.Unlock()
			sr.maxValue = max(sr.maxValue, len(m.Value))
			if err != nil {
				sr.refused = append(sr.refused, err.Error())
			} else {
				sr.batches = append(sr.batches, full)
			}
		})
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return sr
}

func (sr *sizedReader) snapshot() (logs []*tpflowpb.LogEvent, methods map[string]int) {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	methods = map[string]int{}
	for _, b := range sr.batches {
		logs = append(logs, b.Logs...)
		for _, c := range b.Calls {
			methods[b.Symbols[b.Series[c.Series].Method]]++
		}
	}
	return logs, methods
}

// TestAgentHostileCorpus writes the hostile corpus (NULs, invalid UTF-8,
// NaN, negative, 1e400, 1970 and 2999 times, no time, a 100 kB method, a
// 10 MiB line, CR-only lines, deep nesting) between good lines, raw and
// CRI-framed, to an agent with the shipped defaults and reads what
// reached Kafka: every good line is a call and a log event, no bad line is
// a call, every message fits kafka.max_message_bytes and decodes as the
// sink decodes it, every bad line is counted under its reason and its log
// event is flagged with it.
func TestAgentHostileCorpus(t *testing.T) {
	br := startBroker(t)
	k := defaultKafka(br.Addr())
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Host = "node-1"
	cfg.Sources = []Source{
		{Name: "raw", Globs: []string{filepath.Join(dir, "raw", "*.log")}},
		{Name: "cri", Globs: []string{filepath.Join(dir, "cri", "*.log")}, Container: ContainerCRI},
	}
	cfg.Tail.Start = "beginning" // the files are there before the agent starts
	cfg.StateFile = filepath.Join(t.TempDir(), "state.json")
	cfg.MetricsEnabled = false
	cfg.Metrics.Kmsg = ""

	corpus := hostiletest.Corpus()
	const rounds = 3
	good := map[string]bool{}
	for _, src := range []string{"raw", "cri"} {
		if err := os.Mkdir(filepath.Join(dir, src), 0o755); err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		n := 0
		for r := range rounds {
			for _, h := range corpus {
				m := fmt.Sprintf("Good.%s.%d", src, n)
				n++
				good[m] = true
				g := fmt.Sprintf(`{"ts":"%s","method":%q,"latency_ms":%d,"ok":true,"id":"%s-%d"}`, time.Now().UTC().Format(time.RFC3339Nano), m, n, h.Name, r)
				for _, l := range []string{g, h.Line} {
					if src == "cri" {
						b.WriteString(hostiletest.CRIFrame(l))
					} else {
						b.WriteString(l + "\n")
					}
				}
			}
		}
		m := fmt.Sprintf("Good.%s.last", src)
		good[m] = true
		last := fmt.Sprintf(`{"ts":"%s","method":%q,"latency_ms":1,"ok":true}`, time.Now().UTC().Format(time.RFC3339Nano), m)
		if src == "cri" {
			last = hostiletest.CRIFrame(last)
		} else {
			last += "\n"
		}
		b.WriteString(last)
		if err := os.WriteFile(filepath.Join(dir, src, "app.log"), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	logs := readSized(t, k, kafka.TopicLogs)
	calls := readSized(t, k, kafka.TopicCalls)
	reg := prometheus.NewRegistry()
	a, err := New(cfg, k, role.Settings{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer testkit.Go(t, a.Run)()

	wantLogs := 2 * (2*rounds*len(corpus) + 1)
	waitFor(t, "every good call and every log event", func() bool {
		_, m := calls.snapshot()
		n := 0
		for g := range good {
			if m[g] > 0 {
				n++
			}
		}
		ll, _ := logs.snapshot()
		return n == len(good) && len(ll) >= wantLogs
	})
	_, methods := calls.snapshot()
	for m := range methods {
		if !good[m] {
			t.Errorf("a hostile line became call %.60q", m)
		}
	}
	events, _ := logs.snapshot()
	goodLogs := map[string]int{}
	flagged := map[string]int{}
	for _, e := range events {
		for g := range good {
			if strings.Contains(e.Message, `"method":"`+g+`"`) {
				goodLogs[g]++
				if e.Unparsed || e.Truncated || len(e.Flags) > 0 {
					t.Errorf("good line flagged: %+v", e)
				}
			}
		}
		for _, f := range e.Flags {
			flagged[f]++
		}
	}
	for g := range good {
		if goodLogs[g] == 0 {
			t.Errorf("good line %s has no log event", g)
		}
	}
	for _, sr := range []*sizedReader{logs, calls} {
		sr.mu.Lock()
		if sr.maxValue > cfg.Batch.MaxBytes {
			t.Errorf("a message of %d bytes, over batch.max_bytes %d", sr.maxValue, cfg.Batch.MaxBytes)
		}
		if len(sr.refused) > 0 {
			t.Errorf("%d messages the sink would refuse: %v", len(sr.refused), sr.refused[0])
		}
		sr.mu.Unlock()
	}

	wantBad, wantUnparsed, wantTruncated := hostiletest.Want(corpus, rounds)
	for _, src := range []string{"raw", "cri"} {
		for reason, n := range wantBad {
			if got := testutil.ToFloat64(a.m.badValues.WithLabelValues(src, reason)); int(got) != n {
				t.Errorf("%s: tpflow_collect_bad_values_total{reason=%q} = %v, want %d", src, reason, got, n)
			}
		}
		for reason, n := range wantUnparsed {
			if got := testutil.ToFloat64(a.m.unparsed.WithLabelValues(src, reason)); int(got) != n {
				t.Errorf("%s: tpflow_collect_unparsed_lines_total{reason=%q} = %v, want %d", src, reason, got, n)
			}
		}
		if got := testutil.ToFloat64(a.m.truncated.WithLabelValues(src)); int(got) != wantTruncated {
			t.Errorf("%s: tpflow_collect_truncated_lines_total = %v, want %d", src, got, wantTruncated)
		}
	}
	for reason, n := range wantBad {
		if flagged[reason] != 2*n {
			t.Errorf("%d log events flagged %s, want %d", flagged[reason], reason, 2*n)
		}
	}
}

// TestBatchBudget writes lines of random sizes up to 300 KiB, a third of
// them invalid UTF-8 (which grows by up to three times on its way to
// U+FFFD), and a 10 MiB line among them, through an agent with the shipped
// defaults: no message on Kafka is over batch.max_bytes, and every line
// arrives, the 10 MiB one cut.
func TestBatchBudget(t *testing.T) {
	br := startBroker(t)
	k := defaultKafka(br.Addr())
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Host = "node-1"
	cfg.Sources = []Source{{Name: "app", Globs: []string{filepath.Join(dir, "*.log")}, Parser: ParserNone}}
	cfg.Tail.Start = "beginning"
	cfg.StateFile = filepath.Join(t.TempDir(), "state.json")
	cfg.MetricsEnabled = false
	cfg.Metrics.Kmsg = ""

	rng := uint64(1)
	next := func(n uint64) uint64 { rng = rng*6364136223846793005 + 1442695040888963407; return (rng >> 33) % n }
	var b strings.Builder
	const n = 200
	for i := range n {
		if i == n/2 {
			fmt.Fprintf(&b, "line %d %s\n", i, strings.Repeat("h", 10<<20))
			continue
		}
		size := int(next(300 << 10))
		fill := "x"
		if i%3 == 0 {
			fill = "\xff"
		}
		fmt.Fprintf(&b, "line %d %s\n", i, strings.Repeat(fill, size))
	}
	if err := os.WriteFile(filepath.Join(dir, "app.log"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := readSized(t, k, kafka.TopicLogs)
	r := runAgent(t, cfg, k)
	waitFor(t, "every line", func() bool { l, _ := logs.snapshot(); return len(l) >= n })
	r.stop(t)
	l, _ := logs.snapshot()
	seen := map[string]bool{}
	for _, e := range l {
		f := strings.Fields(e.Message[:min(len(e.Message), 20)])
		if len(f) >= 2 {
			seen[f[1]] = true
		}
		if strings.HasPrefix(e.Message, fmt.Sprintf("line %d ", n/2)) && !e.Truncated {
			t.Errorf("the 10 MiB line arrived whole (%d bytes) or unflagged", len(e.Message))
		}
	}
	for i := range n {
		if !seen[fmt.Sprint(i)] {
			t.Errorf("line %d missing", i)
		}
	}
	logs.mu.Lock()
	defer logs.mu.Unlock()
	if logs.maxValue > cfg.Batch.MaxBytes {
		t.Errorf("a message of %d bytes, over batch.max_bytes %d", logs.maxValue, cfg.Batch.MaxBytes)
	}
	if len(logs.refused) > 0 {
		t.Errorf("%d messages the sink would refuse: %s", len(logs.refused), logs.refused[0])
	}
	t.Logf("largest message %d bytes of a %d budget", logs.maxValue, cfg.Batch.MaxBytes)
}
