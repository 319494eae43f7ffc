package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest"
)

// Exactly once from file to ClickHouse: real broker, aggregate, sink and
// collect processes with the shipped defaults (only addresses, paths and
// the log source are configured), a writer appending perf-json call lines
// with unique ids at eoRate lines/s for eoDuration, and three SIGKILLs of
// the collector while it writes, each followed by a restart. Every line
// must be in the logs table once, and sum(count) in call_panes must equal
// the number of lines: nothing lost, no call counted twice.
//
// The writer only appends: rotation under load is the subject of
// collect_rotation_test.go.
const (
	eoRate     = 20000
	eoDuration = 30 * time.Second
	eoMethods  = 20
	eoDatabase = "tpflow_eo"
)

// eoWriter appends perf-json lines "id" 0, 1, ... dated now, at rate
// lines/s (eoRate if 0), each with the JSON members labels (e.g.
// `"app":"x",`) before its method.
type eoWriter struct {
	path    string
	rate    int
	labels  string
	written atomic.Int64
}

func (w *eoWriter) run(ctx context.Context) error {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	rate := w.rate
	if rate == 0 {
		rate = eoRate
	}
	start := time.Now()
	buf := make([]byte, 0, 1<<20)
	id := 0
	for ctx.Err() == nil {
		now := time.Now()
		due := int(float64(now.Sub(start)) / float64(time.Second) * float64(rate))
		ts := now.UTC().Format(time.RFC3339Nano)
		buf = buf[:0]
		for ; id < due; id++ {
			buf = fmt.Appendf(buf, `{"ts":%q,%s"method":"M%d","latency_ms":%d,"ok":true,"level":"info","id":%d}`+"\n",
				ts, w.labels, id%eoMethods, 1+id%97, id)
		}
		if len(buf) > 0 {
			if _, err := f.Write(buf); err != nil {
				return err
			}
			w.written.Store(int64(id))
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// metricValue returns the value of an unlabelled metric served on addr.
func metricValue(addr, name string) (float64, bool) {
	ms, err := scrape(addr)
	if err != nil {
		return 0, false
	}
	v, ok := ms[name]
	return v, ok
}

// emptyLog creates dir/logs/app.log, empty, and returns the directory and
// the file. The file exists before the collector's first start, so the
// default tail.start (end) starts it at 0.
func emptyLog(t *testing.T, dir string) (logDir, logPath string) {
	t.Helper()
	logDir = filepath.Join(dir, "logs")
	if err := os.Mkdir(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	logPath = filepath.Join(logDir, "app.log")
	if err := os.WriteFile(logPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return logDir, logPath
}

func TestCollectExactlyOnceAcrossKills(t *testing.T) {
	heavy(t)
	binary(t)
	ch := chtest.Start(t)
	dir := t.TempDir()
	logDir, logPath := emptyLog(t, dir)
	dsn := dbDSN(t, ch, eoDatabase)
	brokerAddr := freeAddr(t)
	cfgFile := filepath.Join(dir, "tpflow.yaml")
	cfg := fmt.Sprintf(`kafka:
  brokers: [%q]
clickhouse:
  dsn: %q
collect:
  host: node-eo
  state_file: %q
  sources:
    - {name: app, globs: [%q], parser: perf-json, container: none}
`, brokerAddr, dsn, filepath.Join(dir, "collect-state.json"), filepath.Join(logDir, "*.log"))
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	broker := start(t, dir, "broker", "broker", "--config", cfgFile, "--listen", brokerAddr, "--data-dir", filepath.Join(dir, "broker"))
	waitAddr(t, brokerAddr, broker)
	agg := start(t, dir, "aggregate", "aggregate", "--config", cfgFile, "--listen", freeAddr(t))
	sink := start(t, dir, "sink", "sink", "--config", cfgFile, "--listen", freeAddr(t))
	collectAddr := freeAddr(t)
	collector := start(t, dir, "collect", "collect", "--config", cfgFile, "--listen", collectAddr)
	waitMetric := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s:\n%s", what, collector.tail())
			}
			if !collector.alive() {
				t.Fatalf("collector exited:\n%s", collector.tail())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	following := func() bool { v, ok := metricValue(collectAddr, "tpflow_collect_files"); return ok && v >= 1 }
	waitMetric("the collector to follow the log file", following)

	w := &eoWriter{path: logPath}
	wctx, stopWriting := context.WithTimeout(context.Background(), eoDuration)
	defer stopWriting()
	werr := make(chan error, 1)
	go func() { werr <- w.run(wctx) }()
	const kills = 3
	for k := range kills {
		select {
		case <-time.After(eoDuration / (kills + 1)):
		case <-wctx.Done():
		}
		if !collector.alive() {
			t.Fatalf("collector exited:\n%s", collector.tail())
		}
		collector.restart()
		t.Logf("collector killed with SIGKILL and restarted (%d of %d) at %s, %d lines written", k+1, kills, time.Since(begin).Round(time.Millisecond), w.written.Load())
	}
	if err := <-werr; err != nil {
		t.Fatalf("writer: %v", err)
	}
	written := w.written.Load()
	if rate := float64(written) / eoDuration.Seconds(); rate < 0.9*eoRate {
		t.Errorf("writer reached %.0f lines/s, want about %d", rate, eoRate)
	}
	perMethod := map[string]uint64{}
	for id := range written {
		perMethod[fmt.Sprintf("M%d", id%eoMethods)]++
	}
	t.Logf("%d lines written in %s", written, eoDuration)

	conn := openDB(t, ch, eoDatabase)
	query := func(q string, dest ...any) error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return conn.QueryRow(ctx, q).Scan(dest...)
	}
	alive := func() {
		t.Helper()
		for _, p := range []*proc{broker, agg, sink, collector} {
			if !p.alive() {
				t.Fatalf("%s exited:\n%s", p.name, p.tail())
			}
		}
	}

	// Logs: every line once. The table is a ReplacingMergeTree on
	// (source_id, offset), so the raw count is reported too.
	var rows, distinct, raw uint64
	logsQ := fmt.Sprintf("SELECT count(), uniqExact(message) FROM %s.logs FINAL WHERE source = '%s'", eoDatabase, logPath)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		err := query(logsQ, &rows, &distinct)
		if err == nil && rows >= uint64(written) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("logs table holds %d of %d lines (err %v)\nsink:\n%s\ncollector:\n%s", rows, written, err, sink.tail(), collector.tail())
		}
		alive()
		time.Sleep(500 * time.Millisecond)
	}
	if err := query(fmt.Sprintf("SELECT count() FROM %s.logs WHERE source = '%s'", eoDatabase, logPath), &raw); err != nil {
		t.Fatal(err)
	}
	t.Logf("logs table: %d rows (FINAL), %d distinct lines, %d rows before merging, %s after start", rows, distinct, raw, time.Since(begin).Round(time.Second))
	if rows != uint64(written) || distinct != uint64(written) {
		t.Errorf("logs table: %d rows and %d distinct lines, want %d of each", rows, distinct, written)
	}

	// Calls: sum(count) per method equals the lines written. Panes become
	// final after the default lateness and idle timeout.
	callsQ := fmt.Sprintf("SELECT method, sum(count) FROM %s.call_panes FINAL GROUP BY method", eoDatabase)
	stored := func() (map[string]uint64, uint64, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		rs, err := conn.Query(ctx, callsQ)
		if err != nil {
			return nil, 0, err
		}
		defer rs.Close()
		out := map[string]uint64{}
		var total uint64
		for rs.Next() {
			var m string
			var n uint64
			if err := rs.Scan(&m, &n); err != nil {
				return nil, 0, err
			}
			out[m] = n
			total += n
		}
		return out, total, rs.Err()
	}
	deadline = time.Now().Add(4 * time.Minute)
	var got map[string]uint64
	var total uint64
	var err error
	for {
		got, total, err = stored()
		if err == nil && total >= uint64(written) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("call_panes holds sum(count) %d of %d calls (err %v)\naggregate:\n%s", total, written, err, agg.tail())
		}
		alive()
		time.Sleep(time.Second)
	}
	t.Logf("call_panes: sum(count) %d for %d lines (%+d), %s after start", total, written, int64(total)-written, time.Since(begin).Round(time.Second))
	if total != uint64(written) {
		t.Errorf("call_panes sum(count) = %d, want %d distinct lines", total, written)
	}
	for m, want := range perMethod {
		if got[m] != want {
			t.Errorf("%s: sum(count) %d, want %d", m, got[m], want)
		}
	}
	for m := range got {
		if _, ok := perMethod[m]; !ok {
			t.Errorf("call_panes has method %q that was never written", m)
		}
	}
	if t.Failed() {
		t.Logf("collector log:\n%s", collector.tail())
	}
}
