package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

// TestCollectHandOverDuringSurge is a DaemonSet rolling update with
// maxSurge 1 and maxUnavailable 0, done by hand on one node: while a
// writer appends perf-json lines with ids at 5 000 lines/s, a new
// `tpflow collect` process is started beside the running one on the same
// state file (the chart's hostPath), it must become ready while it stands
// by for the state lock (or the rollout would never delete the old pod),
// and only then is the old one sent SIGTERM, as the DaemonSet controller
// does. Three such surges, then one SIGKILL of the agent and a restart,
// with the shipped defaults (only the brokers, host, state file and
// source are set). The broker must hold every line exactly once.
func TestCollectHandOverDuringSurge(t *testing.T) {
	t.Parallel()
	binary(t)
	dir := t.TempDir()
	logDir, logPath := emptyLog(t, dir)
	brokerAddr := freeAddr(t)
	stateFile := filepath.Join(dir, "state", "collect.json")
	if err := os.Mkdir(filepath.Dir(stateFile), 0o755); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "tpflow.yaml")
	if err := os.WriteFile(cfgFile, []byte(collectConfig(brokerAddr, stateFile, filepath.Join(logDir, "*.log"), "")), 0o644); err != nil {
		t.Fatal(err)
	}
	broker := start(t, dir, "broker", "broker", "--config", cfgFile, "--listen", brokerAddr, "--data-dir", filepath.Join(dir, "broker"))
	waitAddr(t, brokerAddr, broker)

	kcfg := kafka.DefaultConfig()
	kcfg.Brokers = []string{brokerAddr}
	var counts idCounts
	rctx, stopReading := context.WithCancel(context.Background())
	var rwg sync.WaitGroup
	readEvents(rctx, t, kcfg, kafka.TopicLogs, &rwg, func(full *tpflowpb.EventBatch) {
		for _, e := range full.Logs {
			if sm := idRE.FindStringSubmatch(e.Message); sm != nil {
				id, _ := strconv.Atoi(sm[1])
				counts.add(id)
			}
		}
	})
	defer func() { stopReading(); rwg.Wait() }()

	agent := func(gen int) (*proc, string) {
		listen := freeAddr(t)
		return start(t, dir, fmt.Sprintf("collect-%d", gen), "collect", "--config", cfgFile, "--listen", listen), listen
	}
	old, oldAddr := agent(0)
	waitReady(t, oldAddr, old)
	// Ready means Kafka answered; a first start reads the files present at
	// its first discovery from tail.start (the end), so the writer starts
	// once the agent follows the file, as the rotation tests do.
	old.waitLog("following files")

	w := &eoWriter{path: logPath, rate: 5000}
	wctx, stopWriting := context.WithCancel(context.Background())
	defer stopWriting()
	werr := make(chan error, 1)
	go func() { werr <- w.run(wctx) }()
	// progress waits until the agent at addr has committed more lines.
	progress := func(p *proc, addr string) {
		t.Helper()
		v0, _ := metricValue(addr, "tpflow_collect_acked_events_total")
		deadline := time.Now().Add(20 * time.Second)
		for {
			if v, ok := metricValue(addr, "tpflow_collect_acked_events_total"); ok && v > v0+1000 {
				return
			}
			if !p.alive() || time.Now().After(deadline) {
				t.Fatalf("%s commits nothing (alive %v):\n%s", p.name, p.alive(), p.tail())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	progress(old, oldAddr)

	const surges = 3
	for gen := 1; gen <= surges; gen++ {
		next, nextAddr := agent(gen)
		waitReady(t, nextAddr, next) // ready while it stands by
		if v, ok := metricValue(nextAddr, "tpflow_collect_standby"); !ok || v != 1 {
			t.Fatalf("surge %d: the new agent is not standing by (tpflow_collect_standby %v, %v):\n%s", gen, v, ok, next.tail())
		}
		// Both run at once for a while; the old one keeps committing.
		progress(old, oldAddr)
		if v, _ := metricValue(nextAddr, "tpflow_collect_acked_events_total"); v != 0 {
			t.Fatalf("surge %d: the standby agent committed %v events while the old one held the lock", gen, v)
		}
		if err := old.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		old.wait(15 * time.Second)
		progress(next, nextAddr)
		t.Logf("surge %d: handed over, %d lines written", gen, w.written.Load())
		old, oldAddr = next, nextAddr
	}
	t.Logf("SIGKILL at %d lines written", w.written.Load())
	old.restart() // SIGKILL: the kernel releases the lock with the process
	waitReady(t, oldAddr, old)
	progress(old, oldAddr)
	stopWriting()
	if err := <-werr; err != nil {
		t.Fatalf("writer: %v", err)
	}
	n := int(w.written.Load())
	missing, dups, unknown := counts.settle(n, 30*time.Second)
	t.Logf("%d lines written across %d surges and a SIGKILL: %d missing, %d duplicates, %d unknown", n, surges, missing, dups, unknown)
	if missing > 0 || dups > 0 || unknown > 0 {
		t.Errorf("%d of %d lines missing (ids %s), %d sent twice (ids %s), %d unknown\nlast collector:\n%s",
			missing, n, counts.ranges(n, func(k uint16) bool { return k == 0 }), dups, counts.ranges(n, func(k uint16) bool { return k > 1 }), unknown, old.tail())
	}
}

// settle waits up to timeout for every id of 0..n-1 to arrive, then
// returns the tally.
func (c *idCounts) settle(n int, timeout time.Duration) (missing, dups, unknown int) {
	deadline := time.Now().Add(timeout)
	for {
		missing, dups, unknown = c.tally(n)
		if missing == 0 || time.Now().After(deadline) {
			return missing, dups, unknown
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ranges lists the runs of ids among 0..n-1 whose count matches, as
// "a-b" (at most 20 of them), to tell a lost batch (one run) from lines
// lost here and there, and to place the run against the surges' counts.
func (c *idCounts) ranges(n int, match func(uint16) bool) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	count := func(id int) uint16 {
		if id < len(c.counts) {
			return c.counts[id]
		}
		return 0
	}
	var out []string
	runs := 0
	for id := 0; id < n; id++ {
		if !match(count(id)) {
			continue
		}
		end := id
		for end+1 < n && match(count(end+1)) {
			end++
		}
		if runs++; runs <= 20 {
			out = append(out, fmt.Sprintf("%d-%d", id, end))
		}
		id = end
	}
	if runs > 20 {
		out = append(out, fmt.Sprintf("and %d more runs", runs-20))
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

func TestIDCountsRanges(t *testing.T) {
	var c idCounts
	for _, id := range []int{0, 1, 1, 4, 5, 6} {
		c.add(id)
	}
	if got, want := c.ranges(9, func(k uint16) bool { return k == 0 }), "2-3, 7-8"; got != want {
		t.Errorf("missing ranges %q, want %q", got, want)
	}
	if got, want := c.ranges(9, func(k uint16) bool { return k > 1 }), "1-1"; got != want {
		t.Errorf("duplicate ranges %q, want %q", got, want)
	}
	if got, want := c.ranges(2, func(k uint16) bool { return k == 0 }), "none"; got != want {
		t.Errorf("ranges %q, want %q", got, want)
	}
}
