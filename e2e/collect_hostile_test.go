package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/collectors/parse/hostiletest"
	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

// scrapeAll returns the samples of the role's /metrics by name and labels as
// written (`name{a="x",b="y"}`).
func scrapeAll(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	ms, err := scrape(addr)
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	return ms
}

var goodMethodRE = regexp.MustCompile(`"method":"(Good\.[a-z]+\.[0-9]+)"`)

// TestCollectHostileCorpus runs `tpflow broker`, `tpflow collect` and
// `tpflow sink` as processes with the shipped defaults and a private
// ClickHouse, writes the hostile corpus between good lines to a raw file
// and a CRI-framed one, and checks: every good line is a call on the calls
// topic and a row of ClickHouse's logs table; no hostile line is a call;
// every line is a row of logs (the 10 MiB ones cut); the flags column and
// the collector's /metrics count every bad line under its reason; and the
// DLQ topic stays empty.
func TestCollectHostileCorpus(t *testing.T) {
	heavy(t)
	binary(t)
	ch := chtest.Start(t)
	dir := t.TempDir()
	brokerAddr := freeAddr(t)
	const db = "tpflow_hostile"
	dsn := dbDSN(t, ch, db)
	for _, d := range []string{"raw", "cri"} {
		if err := os.MkdirAll(filepath.Join(dir, "logs", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfgFile := filepath.Join(dir, "tpflow.yaml")
	cfg := fmt.Sprintf(`kafka:
  brokers: [%q]
clickhouse:
  dsn: %q
collect:
  host: node-e2e
  state_file: %q
  sources:
    - {name: raw, globs: [%q]}
    - {name: cri, globs: [%q], container: cri}
`, brokerAddr, dsn, filepath.Join(dir, "collect-state.json"),
		filepath.Join(dir, "logs", "raw", "*.log"), filepath.Join(dir, "logs", "cri", "*.log"))
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	broker := start(t, dir, "broker", "broker", "--config", cfgFile, "--listen", brokerAddr, "--data-dir", filepath.Join(dir, "broker"))
	waitAddr(t, brokerAddr, broker)
	collectAddr, sinkAddr := freeAddr(t), freeAddr(t)
	collector := start(t, dir, "collect", "collect", "--config", cfgFile, "--listen", collectAddr)
	sink := start(t, dir, "sink", "sink", "--config", cfgFile, "--listen", sinkAddr)
	waitReady(t, collectAddr, collector)

	kcfg := kafka.DefaultConfig()
	kcfg.Brokers = []string{brokerAddr}
	var mu sync.Mutex
	callMethods := map[string]int{}
	rctx, stopReading := context.WithCancel(context.Background())
	var rwg sync.WaitGroup
	readEvents(rctx, t, kcfg, kafka.TopicCalls, &rwg, func(b *tpflowpb.EventBatch) {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range b.Calls {
			callMethods[b.Symbols[b.Series[c.Series].Method]]++
		}
	})
	defer func() { stopReading(); rwg.Wait() }()

	// The files appear after the collector started: read from their start.
	corpus := hostiletest.Corpus()
	const rounds = 2
	good := map[string]bool{}
	lines := 0
	for _, src := range []string{"raw", "cri"} {
		var b strings.Builder
		n := 0
		for range rounds {
			for _, h := range corpus {
				m := fmt.Sprintf("Good.%s.%d", src, n)
				n++
				good[m] = true
				g := fmt.Sprintf(`{"ts":"%s","method":%q,"latency_ms":%d,"ok":true}`, time.Now().UTC().Format(time.RFC3339Nano), m, n)
				for _, l := range []string{g, h.Line} {
					if src == "cri" {
						b.WriteString(hostiletest.CRIFrame(l))
					} else {
						b.WriteString(l + "\n")
					}
					lines++
				}
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "logs", src, "app.log"), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	conn := openDB(t, ch, db)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var stored uint64
	for ctx.Err() == nil {
		if !collector.alive() || !sink.alive() {
			t.Fatalf("a role exited:\ncollect:\n%s\nsink:\n%s", collector.tail(), sink.tail())
		}
		if err := conn.QueryRow(ctx, "SELECT count() FROM "+db+".logs FINAL WHERE host = 'node-e2e' AND stream != 'kmsg'").Scan(&stored); err == nil && stored >= uint64(lines) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if stored != uint64(lines) {
		t.Fatalf("logs holds %d rows of the files, want %d (one per line)\ncollect:\n%s\nsink:\n%s", stored, lines, collector.tail(), sink.tail())
	}
	// Every good line is a row.
	rows, err := conn.Query(ctx, "SELECT message FROM "+db+".logs FINAL WHERE position(message, '\"method\":\"Good.') > 0")
	if err != nil {
		t.Fatal(err)
	}
	goodRows := map[string]int{}
	for rows.Next() {
		var msg string
		if err := rows.Scan(&msg); err != nil {
			t.Fatal(err)
		}
		if sm := goodMethodRE.FindStringSubmatch(msg); sm != nil {
			goodRows[sm[1]]++
		}
	}
	rows.Close()
	for g := range good {
		if goodRows[g] != 1 {
			t.Errorf("good line %s: %d rows in logs, want 1", g, goodRows[g])
		}
	}
	// Every good line is a call, and nothing else is.
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := 0
		for g := range good {
			if callMethods[g] > 0 {
				n++
			}
		}
		mu.Unlock()
		if n == len(good) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	for g := range good {
		if callMethods[g] != 1 {
			t.Errorf("good line %s: %d calls, want 1", g, callMethods[g])
		}
	}
	for m := range callMethods {
		if !good[m] {
			t.Errorf("hostile line became call %.60q", m)
		}
	}
	mu.Unlock()

	// Flags in ClickHouse and counters on /metrics, by reason.
	wantBad, wantUnparsed, wantTrunc := hostiletest.Want(corpus, rounds)
	frows, err := conn.Query(ctx, "SELECT arrayJoin(flags) AS f, count() FROM "+db+".logs FINAL GROUP BY f")
	if err != nil {
		t.Fatal(err)
	}
	flags := map[string]uint64{}
	for frows.Next() {
		var f string
		var n uint64
		if err := frows.Scan(&f, &n); err != nil {
			t.Fatal(err)
		}
		flags[f] = n
	}
	frows.Close()
	for reason, n := range wantBad {
		if flags[reason] != uint64(2*n) {
			t.Errorf("logs rows flagged %s: %d, want %d", reason, flags[reason], 2*n)
		}
	}
	if len(flags) != len(wantBad) {
		t.Errorf("flags in logs %v, want only %v (twice each)", flags, wantBad)
	}
	m := scrapeAll(t, collectAddr)
	for _, src := range []string{"raw", "cri"} {
		for reason, n := range wantBad {
			k := fmt.Sprintf(`tpflow_collect_bad_values_total{reason=%q,source=%q}`, reason, src)
			if m[k] != float64(n) {
				t.Errorf("%s = %v, want %d", k, m[k], n)
			}
		}
		for reason, n := range wantUnparsed {
			k := fmt.Sprintf(`tpflow_collect_unparsed_lines_total{reason=%q,source=%q}`, reason, src)
			if m[k] != float64(n) {
				t.Errorf("%s = %v, want %d", k, m[k], n)
			}
		}
		k := fmt.Sprintf(`tpflow_collect_truncated_lines_total{source=%q}`, src)
		if m[k] != float64(wantTrunc) {
			t.Errorf("%s = %v, want %d", k, m[k], wantTrunc)
		}
	}

	// The DLQ is empty: the sink stored every record it was given.
	for p := range kcfg.Partitions[kafka.TopicDLQ] {
		dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: kcfg.Brokers, Topic: kcfg.Topic(kafka.TopicDLQ), Partition: p, MaxWait: 100 * time.Millisecond})
		if msg, err := r.FetchMessage(dctx); err == nil {
			t.Errorf("a DLQ message: %.200q %v", msg.Value, msg.Headers)
		}
		r.Close()
		dcancel()
	}
	sm := scrapeAll(t, sinkAddr)
	for k, v := range sm {
		if (strings.HasPrefix(k, "tpflow_sink_bad_records_total") || strings.HasPrefix(k, "tpflow_sink_bad_messages_total")) && v != 0 {
			t.Errorf("sink %s = %v, want 0", k, v)
		}
	}
	if t.Failed() {
		t.Logf("collect:\n%s\nsink:\n%s", collector.tail(), sink.tail())
	}
}
