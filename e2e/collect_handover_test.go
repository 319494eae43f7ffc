package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
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
		t.Errorf("%d of %d lines missing, %d sent twice, %d unknown\nlast collector:\n%s", missing, n, dups, unknown, old.tail())
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
