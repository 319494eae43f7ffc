package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tpflow/tpflow/internal/testkit"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas/codec"
)

// The collector under rotation, with the shipped tail and discovery
// settings: two writers append lines with unique ids for 30 s, one into a
// file rotated by rename every second, the other into a file rotated by
// copytruncate every two seconds, at 10 000 and at 25 000 lines/s each
// (20 000 and 50 000 lines/s together). A `tpflow collect` process ships
// them to a `tpflow broker` process; the test reads the logs topic and
// checks that every id arrived, counting duplicates. The kill run kills
// the collector with SIGKILL three times while the writers go on.
const rotDuration = 30 * time.Second

func TestCollectRotationUnderLoad(t *testing.T) {
	heavy(t)
	t.Run("rotation-20k", func(t *testing.T) { collectRotation(t, 10000, 0) })
	t.Run("rotation-50k", func(t *testing.T) { collectRotation(t, 25000, 0) })
	t.Run("kill", func(t *testing.T) { collectRotation(t, 25000, 3) })
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

// rotWriter appends "<tag> <id> <padding>" lines at rate and rotates.
type rotWriter struct {
	path    string
	rate    int // lines/s
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
		due := int(float64(now.Sub(start)) / float64(time.Second) * float64(w.rate))
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

func collectRotation(t *testing.T, rate, kills int) {
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
  metrics_enabled: false
  metrics: {kmsg: ""}
  sources:
    - {name: rot, globs: [%q], parser: none, container: none}
`, brokerAddr, filepath.Join(dir, "collect-state.json"), filepath.Join(logDir, "*.log"))
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	broker := start(t, dir, "broker", "broker", "--config", cfgFile, "--listen", brokerAddr, "--data-dir", filepath.Join(dir, "broker"))
	waitAddr(t, brokerAddr, broker)
	collector := start(t, dir, "collect", "collect", "--config", cfgFile, "--listen", freeAddr(t))
	// The files are created after the collector's first discovery round,
	// so they are new files, read from 0 although tail.start is end.
	collector.waitLog("following files")

	kcfg := kafka.DefaultConfig()
	kcfg.Brokers = []string{brokerAddr}
	byTag := map[byte]*idCounts{'r': {}, 'c': {}}
	var events atomic.Int64
	rctx, stopReading := context.WithCancel(context.Background())
	var rwg sync.WaitGroup
	rwg.Go(func() { readLogIDs(rctx, t, kcfg, byTag, &events) })
	defer func() { stopReading(); rwg.Wait() }()

	writers := []*rotWriter{
		{path: filepath.Join(logDir, "rename.log"), tag: 'r', rate: rate, mode: "rename", every: time.Second},
		{path: filepath.Join(logDir, "copytruncate.log"), tag: 'c', rate: rate, mode: "copytruncate", every: 2 * time.Second},
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
	if got := float64(total) / rotDuration.Seconds(); got < 0.9*2*float64(rate) {
		t.Errorf("writers reached %.0f lines/s, want about %d", got, 2*rate)
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

// waitLog waits until the process's current log has a line containing
// sub.
func (p *proc) waitLog(sub string) {
	p.t.Helper()
	end := time.Now().Add(60 * time.Second)
	for {
		b, _ := os.ReadFile(p.log)
		if strings.Contains(string(b), sub) {
			return
		}
		if !p.alive() {
			p.t.Fatalf("%s exited before logging %q:\n%s", p.name, sub, p.tail())
		}
		if time.Now().After(end) {
			p.t.Fatalf("%s did not log %q in 60 s:\n%s", p.name, sub, p.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitAddr waits until addr accepts connections.
func waitAddr(t *testing.T, addr string, p *proc) {
	t.Helper()
	(&pipeline{t: t, broker: p}).waitPort(addr)
}

// restartDowntime is how long the collector is down in
// TestCollectRestartAfterDowntime: longer than every time-out involved
// (rediscover_interval 10 s, rotate_wait 5 s, the minute after which a
// gone path's Tailer is retired, the state file's save_interval).
const restartDowntime = 65 * time.Second

// podWriter appends CRI lines "<ts> stdout F <tag> <id> <padding>" to a
// kubelet pod log at rate lines/s and rotates it the kubelet's way: the
// file is renamed to 0.log.<time> and a new 0.log is created. With
// renameOnce it renames the file once, after that long, and goes on in a
// new file only if reopen is set.
type podWriter struct {
	dir        string
	tag        byte
	rate       int
	every      time.Duration // rotation period; 0: none
	renameOnce time.Duration
	reopen     bool
	written    atomic.Int64
	rotated    atomic.Int64
}

func (w *podWriter) run(ctx context.Context) error {
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		return err
	}
	p := filepath.Join(w.dir, "0.log")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer func() { f.Close() }()
	start := time.Now()
	next := start.Add(w.every)
	if w.renameOnce > 0 {
		next = start.Add(w.renameOnce)
	}
	buf := make([]byte, 0, 1<<20)
	id := 0
	for ctx.Err() == nil {
		now := time.Now()
		due := int(float64(now.Sub(start)) / float64(time.Second) * float64(w.rate))
		buf = buf[:0]
		for ; id < due; id++ {
			buf = append(buf, "2026-12-02T18:00:00.000000000Z stdout F "...)
			buf = append(buf, w.tag, ' ')
			buf = strconv.AppendInt(buf, int64(id), 10)
			buf = append(buf, ' ')
			buf = append(buf, rotPad[:40]...)
			buf = append(buf, '\n')
		}
		if len(buf) > 0 {
			if _, err := f.Write(buf); err != nil {
				return err
			}
			w.written.Store(int64(id))
		}
		if (w.every > 0 || w.renameOnce > 0) && !now.Before(next) {
			if err := os.Rename(p, fmt.Sprintf("%s.%s", p, now.Format("20060102-150405.000000000"))); err != nil {
				return err
			}
			w.rotated.Add(1)
			if w.renameOnce > 0 && !w.reopen {
				return nil
			}
			nf, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
			if err != nil {
				return err
			}
			f.Close()
			f = nf
			if w.renameOnce > 0 {
				next = now.Add(time.Hour)
			} else {
				next = next.Add(w.every)
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// term sends SIGTERM and waits up to timeout for a clean exit.
func (p *proc) term(timeout time.Duration) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	p.wait(timeout)
}

// TestCollectRestartAfterDowntime follows kubelet pod logs with the
// shipped defaults (kubernetes preset, tail.start end) through a stop of
// the collector longer than every time-out: a pod whose log rotates every
// 3 s all along; two pods created while the collector runs whose logs are
// renamed away within a second (one with a new file after, one without);
// and, while it is down, a new pod whose log rotates and one whose log
// does not. Every line of every file arrives after the restart, and each
// run logs the node's missing Docker directory once.
func TestCollectRestartAfterDowntime(t *testing.T) {
	// Most of this test is the downtime itself: it waits beside the others.
	t.Parallel()
	begin := time.Now()
	dir := t.TempDir()
	base := filepath.Join(dir, "node")
	pods := filepath.Join(base, "var/log/pods")
	if err := os.MkdirAll(pods, 0o755); err != nil {
		t.Fatal(err)
	}
	brokerAddr := freeAddr(t)
	cfgFile := filepath.Join(dir, "tpflow.yaml")
	cfg := fmt.Sprintf(`kafka:
  brokers: [%q]
  partitions: {calls: 1, logs: 1, metrics: 1, stats: 1, alerts: 1, dlq: 1}
collect:
  host: node-e2e
  state_file: %q
  metrics_enabled: false
  metrics: {kmsg: ""}
  sources:
    - {name: pods, preset: kubernetes, base: %q, parser: none}
`, brokerAddr, filepath.Join(dir, "collect-state.json"), base)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	broker := start(t, dir, "broker", "broker", "--config", cfgFile, "--listen", brokerAddr, "--data-dir", filepath.Join(dir, "broker"))
	waitAddr(t, brokerAddr, broker)
	collector := start(t, dir, "collect", "collect", "--config", cfgFile, "--listen", freeAddr(t))
	collector.waitLog("following files")
	runLogs := []string{collector.log}

	kcfg := kafka.DefaultConfig()
	kcfg.Brokers = []string{brokerAddr}
	byTag := map[byte]*idCounts{}
	for _, tag := range []byte("abcde") {
		byTag[tag] = &idCounts{}
	}
	var events atomic.Int64
	rctx, stopReading := context.WithCancel(context.Background())
	var rwg sync.WaitGroup
	rwg.Go(func() { readLogIDs(rctx, t, kcfg, byTag, &events) })
	defer func() { stopReading(); rwg.Wait() }()

	pod := func(name string) string { return filepath.Join(pods, "shop_"+name+"_0000-"+name, "app") }
	wctx, stopWriting := context.WithCancel(context.Background())
	defer stopWriting()
	var wwg sync.WaitGroup
	var werrMu sync.Mutex
	var werrs []error
	run := func(w *podWriter, ctx context.Context) {
		wwg.Go(func() {
			if err := w.run(ctx); err != nil {
				werrMu.Lock()
				werrs = append(werrs, err)
				werrMu.Unlock()
			}
		})
	}
	a := &podWriter{dir: pod("a"), tag: 'a', rate: 2000, every: 3 * time.Second}
	run(a, wctx)
	short := func(d time.Duration) (context.Context, context.CancelFunc) { return context.WithTimeout(wctx, d) }
	b := &podWriter{dir: pod("b"), tag: 'b', rate: 2000, renameOnce: 700 * time.Millisecond}
	c := &podWriter{dir: pod("c"), tag: 'c', rate: 2000, renameOnce: 800 * time.Millisecond, reopen: true}
	bctx, cancelB := short(3 * time.Second)
	defer cancelB()
	cctx, cancelC := short(3 * time.Second)
	defer cancelC()
	run(b, bctx)
	run(c, cctx)
	waitUntil(t, "the short-lived pods' writers", func() bool { return bctx.Err() != nil && cctx.Err() != nil })

	collector.term(15 * time.Second)
	downAt := time.Now()
	t.Logf("collector stopped with SIGTERM at %s", downAt.Sub(begin).Round(time.Millisecond))
	d := &podWriter{dir: pod("d"), tag: 'd', rate: 2000, every: 3 * time.Second}
	e := &podWriter{dir: pod("e"), tag: 'e', rate: 2000}
	dctx, cancelD := short(10 * time.Second)
	defer cancelD()
	ectx, cancelE := short(10 * time.Second)
	defer cancelE()
	run(d, dctx)
	run(e, ectx)
	waitUntil(t, "the downtime", func() bool { return time.Since(downAt) >= restartDowntime })
	collector.start()
	runLogs = append(runLogs, collector.log)
	t.Logf("collector restarted after %s down", time.Since(downAt).Round(time.Millisecond))
	collector.waitLog("following files")
	waitUntil(t, "5 s of writing after the restart", func() bool { return time.Since(downAt) >= restartDowntime+5*time.Second })
	stopWriting()
	wwg.Wait()
	for _, err := range werrs {
		t.Fatalf("writer: %v", err)
	}
	writers := []*podWriter{a, b, c, d, e}
	deadline := time.Now().Add(90 * time.Second)
	for {
		done := true
		for _, w := range writers {
			if missing, _, _ := byTag[w.tag].tally(int(w.written.Load())); missing > 0 {
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
	for _, w := range writers {
		n := int(w.written.Load())
		missing, dups, unknown := byTag[w.tag].tally(n)
		t.Logf("pod %c: %d lines written, %d rotations, %d missing, %d duplicates, %d unknown", w.tag, n, w.rotated.Load(), missing, dups, unknown)
		if n == 0 || missing > 0 || unknown > 0 {
			t.Errorf("pod %c: %d of %d lines missing, %d unknown", w.tag, missing, n, unknown)
		}
	}
	// Each run logs its start once and the missing Docker directory once.
	for i, lf := range runLogs {
		b, err := os.ReadFile(lf)
		if err != nil {
			t.Fatal(err)
		}
		var summaries, docker int
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "following files") {
				summaries++
				t.Logf("run %d: %s", i+1, l)
			}
			if strings.Contains(l, "level=WARN") && strings.Contains(l, "var/lib/docker/containers") {
				docker++
			}
		}
		if summaries != 1 || docker != 1 {
			t.Errorf("run %d logged %d start summaries and %d warnings about the Docker directory, want 1 and 1", i+1, summaries, docker)
		}
	}
	if t.Failed() {
		t.Logf("collector log:\n%s", collector.tail())
	}
}

// waitUntil waits for cond, failing the test after 5 minutes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.WaitFor(t, 5*time.Minute, what, cond)
}
