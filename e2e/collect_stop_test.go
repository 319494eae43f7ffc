package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/pipeline/kafka/kafkatest"
	"github.com/tpflow/tpflow/schemas/codec"
	"github.com/tpflow/tpflow/schemas/tpflowpb"

	"github.com/tpflow/tpflow/internal/testkit"
)

// collectConfig is the shipped default configuration with only what a
// deployment must say: the brokers, the host, the state file and the files
// to follow. Everything else, /dev/kmsg included, is the default.
func collectConfig(brokerAddr, stateFile, glob, extra string) string {
	return fmt.Sprintf(`kafka:
  brokers: [%q]
collect:
  host: node-e2e
  state_file: %q
  sources:
    - {name: app, globs: [%q]}
%s`, brokerAddr, stateFile, glob, extra)
}

// waitReady polls the role's /readyz until it answers 200.
func waitReady(t *testing.T, addr string, p *proc) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if !p.alive() {
			t.Fatalf("%s exited:\n%s", p.name, p.tail())
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s not ready in 30 s:\n%s", p.name, p.tail())
}

var idRE = regexp.MustCompile(`"id":(\d+)`)

// readEvents reads every partition of topic from the start, committed
// records only, and hands each decoded batch to fn (from one goroutine per
// partition, so fn must be safe for concurrent use) until ctx is done.
func readEvents(ctx context.Context, t *testing.T, kcfg kafka.Config, topic string, wg *sync.WaitGroup, fn func(*tpflowpb.EventBatch)) {
	// A group consumer of the project's (franz-go, read_committed): a
	// kafka-go reader hands out transaction markers and aborted records.
	c, err := kafka.NewConsumer(kcfg, kcfg.Topic(topic), fmt.Sprintf("read-events-%s-%d", topic, time.Now().UnixNano()), nil)
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() {
		defer c.Close()
		var b codec.Batch
		kafkatest.FetchAll(ctx, c, func(m kafkago.Message) {
			err := codec.DecodeOptions{MaxBytes: kcfg.MaxMessageBytes}.Decode(m.Value, &b)
			var full *tpflowpb.EventBatch
			if err == nil {
				full, err = b.Full()
			}
			if err != nil {
				t.Errorf("%s message %d/%d of %d bytes does not decode as the sink decodes it: %v", topic, m.Partition, m.Offset, len(m.Value), err)
				return
			}
			fn(full)
		})
	})
}

// TestCollectStopWhileReadingKmsg runs `tpflow collect` with the default
// settings (reading the real /dev/kmsg) on a file written at 5 000
// lines/s, stops it with SIGTERM, and checks that it exits within 5 s with
// its offsets saved; then starts it again while the writer goes on, and
// checks that every line arrives exactly once: the restart re-sent
// nothing the first run had acknowledged.
func TestCollectStopWhileReadingKmsg(t *testing.T) {
	heavy(t)
	if f, err := os.Open("/dev/kmsg"); err != nil {
		testkit.Missing(t, "/dev/kmsg not readable: "+err.Error())
	} else {
		f.Close()
	}
	dir := t.TempDir()
	logDir := filepath.Join(dir, "logs")
	if err := os.Mkdir(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	brokerAddr := freeAddr(t)
	stateFile := filepath.Join(dir, "collect-state.json")
	cfgFile := filepath.Join(dir, "tpflow.yaml")
	if err := os.WriteFile(cfgFile, []byte(collectConfig(brokerAddr, stateFile, filepath.Join(logDir, "*.log"), "")), 0o644); err != nil {
		t.Fatal(err)
	}
	broker := start(t, dir, "broker", "broker", "--config", cfgFile, "--listen", brokerAddr, "--data-dir", filepath.Join(dir, "broker"))
	waitAddr(t, brokerAddr, broker)
	listen := freeAddr(t)
	collector := start(t, dir, "collect", "collect", "--config", cfgFile, "--listen", listen)
	waitReady(t, listen, collector)

	// The reader counts each id's arrivals and remembers the greatest line
	// offset that reached Kafka.
	kcfg := kafka.DefaultConfig()
	kcfg.Brokers = []string{brokerAddr}
	var counts idCounts
	var maxOffset atomic.Int64
	var arrived atomic.Int64
	rctx, stopReading := context.WithCancel(context.Background())
	var rwg sync.WaitGroup
	readEvents(rctx, t, kcfg, kafka.TopicLogs, &rwg, func(full *tpflowpb.EventBatch) {
		for _, e := range full.Logs {
			sm := idRE.FindStringSubmatch(e.Message)
			if sm == nil {
				continue // a kernel message
			}
			id, _ := strconv.Atoi(sm[1])
			counts.add(id)
			arrived.Add(1)
			for {
				cur := maxOffset.Load()
				if int64(e.Offset) <= cur || maxOffset.CompareAndSwap(cur, int64(e.Offset)) {
					break
				}
			}
		}
	})
	defer func() { stopReading(); rwg.Wait() }()

	// The writer: perf-json lines with ids at 5 000 lines/s, into a file
	// created after the collector started (so it is read from its start).
	const rate = 5000
	var written atomic.Int64
	wctx, stopWriting := context.WithCancel(context.Background())
	defer stopWriting()
	var wwg sync.WaitGroup
	werr := make(chan error, 1)
	logFile := filepath.Join(logDir, "app.log")
	wwg.Go(func() {
		f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			werr <- err
			return
		}
		defer f.Close()
		begin := time.Now()
		id := 0
		var buf []byte
		for wctx.Err() == nil {
			due := int(time.Since(begin).Seconds() * rate)
			buf = buf[:0]
			for ; id < due; id++ {
				buf = fmt.Appendf(buf, `{"ts":"%s","method":"Stop.m","latency_ms":%d,"ok":true,"id":%d}`+"\n",
					time.Now().UTC().Format(time.RFC3339Nano), id%100, id)
			}
			if len(buf) > 0 {
				if _, err := f.Write(buf); err != nil {
					werr <- err
					return
				}
				written.Store(int64(id))
			}
			time.Sleep(5 * time.Millisecond)
		}
	})

	// Under load: wait until a good part of the lines flows, then stop.
	deadline := time.Now().Add(60 * time.Second)
	for arrived.Load() < 3*rate {
		if time.Now().After(deadline) {
			t.Fatalf("only %d lines arrived in 60 s:\n%s", arrived.Load(), collector.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopAt := time.Now()
	if err := collector.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-collector.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("collector still running 5 s after SIGTERM:\n%s", collector.tail())
	}
	stopped := time.Since(stopAt)
	if collector.err != nil {
		t.Fatalf("collector exited with %v after SIGTERM:\n%s", collector.err, collector.tail())
	}
	t.Logf("collector exited %s after SIGTERM", stopped.Round(time.Millisecond))

	// Its offsets are saved: the state file holds the file at or past the
	// last line that reached Kafka (the reader is given a moment to drain
	// what was produced before the exit).
	var state struct {
		Files []struct {
			Offset int64 `json:"offset"`
		} `json:"files"`
	}
	b, err := os.ReadFile(stateFile)
	if err != nil {
		t.Fatalf("no state file after SIGTERM: %v", err)
	}
	if err := json.Unmarshal(b, &state); err != nil || len(state.Files) != 1 {
		t.Fatalf("state file %s: %v, want one file", b, err)
	}
	saved := state.Files[0].Offset
	drain := time.Now().Add(10 * time.Second)
	for maxOffset.Load() >= saved || arrived.Load() == 0 {
		if time.Now().After(drain) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if last := maxOffset.Load(); last >= saved {
		t.Errorf("a line at offset %d reached Kafka, the saved offset is %d: not every acknowledged line was saved", last, saved)
	}
	t.Logf("saved offset %d, %d lines arrived before the stop", saved, arrived.Load())

	// Restart while the writer goes on, stop writing after a while, and
	// expect every line exactly once.
	w0 := written.Load()
	collector.start()
	waitReady(t, listen, collector)
	for arrived.Load() < w0+2*rate {
		if time.Now().After(deadline.Add(60 * time.Second)) {
			t.Fatalf("the restarted collector does not keep up: %d of %d lines", arrived.Load(), written.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopWriting()
	wwg.Wait()
	select {
	case err := <-werr:
		t.Fatalf("writer: %v", err)
	default:
	}
	n := int(written.Load())
	missing, dups, unknown := counts.settle(n, 60*time.Second)
	t.Logf("%d lines written, %d missing, %d duplicates, %d unknown", n, missing, dups, unknown)
	if missing > 0 || dups > 0 || unknown > 0 {
		t.Errorf("%d of %d lines missing, %d sent twice, %d unknown", missing, n, dups, unknown)
	}
	if t.Failed() {
		t.Logf("collector log:\n%s", collector.tail())
	}
}
