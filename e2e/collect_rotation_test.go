package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tpflow/tpflow/pipeline/codec"
	"github.com/tpflow/tpflow/pipeline/kafka"
)

// The collector under rotation: two writers append lines with unique ids at
// 25 000 lines/s each (50 000 lines/s together) for 30 s, one into a file
// rotated by rename every second, the other into a file rotated by
// copytruncate every two seconds. A `tpflow collect` process ships them to
// a `tpflow broker` process; the test reads the logs topic and checks that
// every id arrived, counting duplicates. The second run kills the
// collector with SIGKILL three times while the writers go on.
const (
	rotRate     = 25000 // lines/s per writer
	rotDuration = 30 * time.Second
)

func TestCollectRotationUnderLoad(t *testing.T) {
	t.Run("rotation", func(t *testing.T) { collectRotation(t, 0) })
	t.Run("kill", func(t *testing.T) { collectRotation(t, 3) })
}

// idCounts counts the arrivals of each id of one writer.
type idCounts struct {
	mu     sync.Mutex
	counts []uint16
}

func (c *idCounts) add(id int) {
	c.mu.Lock()
	if id >= len(c.counts) {
		c.counts = append(c.counts, make([]uint16, id+1-len(c.counts)+4096)...)
	}
	c.counts[id]++
	c.mu.Unlock()
}

// tally returns how many of ids 0..n-1 are missing, how many extra copies
// arrived, and how many ids at or over n arrived (none were written).
func (c *idCounts) tally(n int) (missing, dups, unknown int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, k := range c.counts {
		switch {
		case id >= n:
			unknown += int(k)
		case k == 0:
			missing++
		default:
			dups += int(k) - 1
		}
	}
	if len(c.counts) < n {
		missing += n - len(c.counts)
	}
	return missing, dups, unknown
}

// rotWriter appends "<tag> <id> <padding>" lines at rotRate and rotates.
type rotWriter struct {
	path    string
	tag     byte
	mode    string // rename or copytruncate
	every   time.Duration
	written atomic.Int64
	rotated atomic.Int64
}

const rotPad = "................................................................................"

func (w *rotWriter) run(ctx context.Context) error {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer func() { f.Close() }()
	start := time.Now()
	nextRotate := start.Add(w.every)
	buf := make([]byte, 0, 1<<20)
	id := 0
	for ctx.Err() == nil {
		now := time.Now()
		due := int(float64(now.Sub(start)) / float64(time.Second) * rotRate)
		buf = buf[:0]
		for ; id < due; id++ {
			buf = append(buf, w.tag, ' ')
			buf = strconv.AppendInt(buf, int64(id), 10)
			buf = append(buf, ' ')
			buf = append(buf, rotPad...)
			buf = append(buf, '\n')
		}
		if len(buf) > 0 {
			if _, err := f.Write(buf); err != nil {
				return err
			}
			w.written.Store(int64(id))
		}
		if !now.Before(nextRotate) {
			nextRotate = nextRotate.Add(w.every)
			if err := w.rotate(&f); err != nil {
				return err
			}
			w.rotated.Add(1)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// rotate keeps two rotated files, as logrotate with rotate 2 does. The
// copytruncate writer does not write between the copy and the truncate:
// lines written in that window are lost by any tailer (the rotator's
// race, see collectors/logtail/DESIGN.md), which is not what this measures.
func (w *rotWriter) rotate(f **os.File) error {
	if err := os.Rename(w.path+".1", w.path+".2"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	switch w.mode {
	case "rename":
		if err := os.Rename(w.path, w.path+".1"); err != nil {
			return err
		}
		nf, err := os.OpenFile(w.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		(*f).Close()
		*f = nf
	case "copytruncate":
		src, err := os.Open(w.path)
		if err != nil {
			return err
		}
		dst, err := os.Create(w.path + ".1")
		if err != nil {
			src.Close()
			return err
		}
		_, err = io.Copy(dst, src)
		src.Close()
		if cerr := dst.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		if err := (*f).Truncate(0); err != nil {
			return err
		}
	}
	return nil
}

// readLogIDs reads the logs topic from the start until ctx is done and
// counts the ids of each writer's lines. It reads committed records only,
// as the roles do: the collector writes in transactions (a kafka-go reader
// would also return the commit markers and aborted records).
func readLogIDs(ctx context.Context, t *testing.T, kcfg kafka.Config, byTag map[byte]*idCounts, events *atomic.Int64) {
	r, err := kafka.NewConsumer(kcfg, kcfg.Topic(kafka.TopicLogs), fmt.Sprintf("rotation-check-%d", time.Now().UnixNano()), nil)
	if err != nil {
		t.Error(err)
		return
	}
	defer r.Close()
	var b codec.Batch
	for {
		m, err := r.Fetch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if err := codec.Decode(m.Value, &b); err != nil {
			t.Errorf("undecodable logs message at %d: %v", m.Offset, err)
			continue
		}
		full, err := b.Full()
		if err != nil {
			t.Errorf("undecodable logs message at %d: %v", m.Offset, err)
			continue
		}
		for _, e := range full.Logs {
			events.Add(1)
			msg := e.Message
			c := byTag[msg[0]]
			if c == nil || len(msg) < 3 {
				t.Errorf("unexpected log line %q", msg)
				continue
			}
			end := 2
			for end < len(msg) && msg[end] != ' ' {
				end++
			}
			id, err := strconv.Atoi(msg[2:end])
			if err != nil {
				t.Errorf("unexpected log line %q", msg)
				continue
			}
			c.add(id)
		}
	}
}

func collectRotation(t *testing.T, kills int) {
	begin := time.Now()
	dir := t.TempDir()
	logDir := filepath.Join(dir, "logs")
	if err := os.Mkdir(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	brokerAddr := freeAddr(t)
	cfgFile := filepath.Join(dir, "tpflow.yaml")
	cfg := fmt.Sprintf(`kafka:
  brokers: [%q]
  partitions: {calls: 1, logs: 1, metrics: 1, stats: 1, alerts: 1, dlq: 1}
  max_message_bytes: 4194304
collect:
  host: node-e2e
  state_file: %q
  save_interval: 200ms
  rediscover_interval: 500ms
  metrics_enabled: false
  metrics: {kmsg: ""}
  tail: {start: beginning, poll_interval: 250ms, rotate_wait: 500ms}
  sources:
    - {name: rot, globs: [%q], parser: none, container: none}
  batch: {max_age: 50ms, max_bytes: 2097152}
`, brokerAddr, filepath.Join(dir, "collect-state.json"), filepath.Join(logDir, "*.log"))
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	broker := start(t, dir, "broker", "broker", "--config", cfgFile, "--listen", brokerAddr, "--data-dir", filepath.Join(dir, "broker"))
	waitAddr(t, brokerAddr, broker)
	collector := start(t, dir, "collect", "collect", "--config", cfgFile, "--listen", freeAddr(t))

	kcfg := kafka.DefaultConfig()
	kcfg.Brokers = []string{brokerAddr}
	byTag := map[byte]*idCounts{'r': {}, 'c': {}}
	var events atomic.Int64
	rctx, stopReading := context.WithCancel(context.Background())
	var rwg sync.WaitGroup
	rwg.Go(func() { readLogIDs(rctx, t, kcfg, byTag, &events) })
	defer func() { stopReading(); rwg.Wait() }()

	writers := []*rotWriter{
		{path: filepath.Join(logDir, "rename.log"), tag: 'r', mode: "rename", every: time.Second},
		{path: filepath.Join(logDir, "copytruncate.log"), tag: 'c', mode: "copytruncate", every: 2 * time.Second},
	}
	wctx, stopWriting := context.WithTimeout(context.Background(), rotDuration)
	defer stopWriting()
	var wwg sync.WaitGroup
	werrs := make([]error, len(writers))
	for i, w := range writers {
		wwg.Go(func() { werrs[i] = w.run(wctx) })
	}
	for k := range kills {
		select {
		case <-time.After(rotDuration / time.Duration(kills+1)):
		case <-wctx.Done():
		}
		if !collector.alive() {
			t.Fatalf("collector exited:\n%s", collector.tail())
		}
		collector.restart()
		t.Logf("collector killed with SIGKILL and restarted (%d of %d) at %s", k+1, kills, time.Since(begin).Round(time.Millisecond))
	}
	wwg.Wait()
	for _, err := range werrs {
		if err != nil {
			t.Fatalf("writer: %v", err)
		}
	}
	written := map[byte]int{}
	var total int
	for _, w := range writers {
		written[w.tag] = int(w.written.Load())
		total += written[w.tag]
	}
	elapsed := time.Since(begin)
	// Wait for every id, up to 60 s after the writers stopped.
	deadline := time.Now().Add(60 * time.Second)
	for {
		done := true
		for tag, c := range byTag {
			if missing, _, _ := c.tally(written[tag]); missing > 0 {
				done = false
			}
		}
		if done || time.Now().After(deadline) {
			break
		}
		if !collector.alive() {
			t.Fatalf("collector exited:\n%s", collector.tail())
		}
		time.Sleep(200 * time.Millisecond)
	}
	caughtUp := time.Since(begin) - elapsed
	time.Sleep(500 * time.Millisecond) // late duplicates, if any
	if rate := float64(total) / rotDuration.Seconds(); rate < 0.9*2*rotRate {
		t.Errorf("writers reached %.0f lines/s, want about %d", rate, 2*rotRate)
	}
	for _, w := range writers {
		missing, dups, unknown := byTag[w.tag].tally(written[w.tag])
		t.Logf("%s: %d lines written, %d rotations, %d missing, %d duplicates (%.3f%%), %d unknown; collector caught up %s after the writers stopped",
			w.mode, written[w.tag], w.rotated.Load(), missing, dups, 100*float64(dups)/float64(written[w.tag]), unknown, caughtUp.Round(time.Millisecond))
		if missing > 0 || unknown > 0 {
			t.Errorf("%s: %d of %d ids missing, %d unknown", w.mode, missing, written[w.tag], unknown)
		}
		if kills == 0 {
			limit := 0
			if w.mode == "copytruncate" {
				limit = written[w.tag] / 1000 // 0.1 %
			}
			if dups > limit {
				t.Errorf("%s: %d duplicates, want at most %d", w.mode, dups, limit)
			}
		}
	}
	if t.Failed() {
		t.Logf("collector log:\n%s", collector.tail())
	}
}

// waitAddr waits until addr accepts connections.
func waitAddr(t *testing.T, addr string, p *proc) {
	t.Helper()
	(&pipeline{t: t, broker: p}).waitPort(addr)
}
