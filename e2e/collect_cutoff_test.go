package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/internal/devtools/loadgen"
)

// Labels of the calls the cut-off collector's file holds; no load
// generator key has them.
var cutoffKey = loadgen.Key{System: "cutoff", App: "node-x", Group: "g1", IDC: "dc1"}

// TestCollectCutOffLongerThanGrace runs broker, aggregate, sink and collect
// with the shipped default configuration (only addresses and paths are
// set). A load generator produces live calls all along and keeps every
// partition's watermark at the wall clock; a writer appends perf-json calls,
// dated when written, to the file the collector follows. The collector is
// killed with SIGKILL, as a crashed or evicted agent, and stays down for
// longer than the aggregator's grace + allowed lateness while its file
// keeps growing; then it starts again and catches up. The calls of its
// first seconds down are then older than their panes' end + grace behind
// the watermark the live source moved: they must take the late path. In
// the end sum(count) per key in call_panes equals what was written for
// every key of both sources, the aggregator dropped no late event, and the
// late merger merged into stored panes (> 0) exactly what the aggregator
// handed to the late path.
func TestCollectCutOffLongerThanGrace(t *testing.T) {
	// Most of this test is the cut-off itself: it waits beside the others.
	t.Parallel()
	begin := time.Now()
	binary(t)
	defaults := aggregator.DefaultConfig()
	// Past the grace by the lateness and five panes: the calls of the
	// first ~20 s of the cut-off are beyond the grace when read (with three
	// panes, runs saw 3 s to 10 s of them).
	cutoff := defaults.Grace + defaults.AllowedLateness + 5*defaults.Pane
	const warm, after = 10 * time.Second, 5 * time.Second

	dir := t.TempDir()
	logDir, logPath := emptyLog(t, dir)
	p, aggAddr, sinkAddr := startDefaults(t, fmt.Sprintf(`collect:
  host: node-x
  state_file: %q
  sources:
    - {name: app, globs: [%q], parser: perf-json, container: none}
`, filepath.Join(dir, "collect-state.json"), filepath.Join(logDir, "*.log")))
	collectAddr := freeAddr(t)
	collector := start(t, p.dir, "collect", "collect", "--config", p.cfgFile, "--listen", collectAddr)
	following := func() bool { v, ok := metricValue(collectAddr, "tpflow_collect_files"); return ok && v >= 1 }
	waitFollowing := func() {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); !following(); time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) || !collector.alive() {
				t.Fatalf("the collector does not follow %s:\n%s", logPath, collector.tail())
			}
		}
	}
	waitFollowing()

	liveTruth := filepath.Join(p.dir, "live.jsonl")
	live := p.loadgen("live", "--keys", "20", "--rate", "500", "--seed", "31", "--truth", liveTruth,
		"--duration", (warm + cutoff + after + 15*time.Second).String())
	w := &eoWriter{path: logPath, rate: 500, labels: fmt.Sprintf(`"system":%q,"app":%q,"group":%q,"idc":%q,`,
		cutoffKey.System, cutoffKey.App, cutoffKey.Group, cutoffKey.IDC)}
	wctx, stopWriting := context.WithCancel(context.Background())
	defer stopWriting()
	werr := make(chan error, 1)
	go func() { werr <- w.run(wctx) }()

	watch(t, warm, p.agg, p.sink, collector, live)
	collector.kill()
	killed := time.Now()
	atKill := w.written.Load()
	t.Logf("collector killed with SIGKILL at %s, %d lines written; down for %s (grace %s, allowed lateness %s, pane %s)",
		killed.Sub(begin).Round(time.Millisecond), atKill, cutoff, defaults.Grace, defaults.AllowedLateness, defaults.Pane)
	// The live source keeps the watermark moving while the file grows.
	watch(t, cutoff, p.agg, p.sink, live)
	collector.start()
	t.Logf("collector restarted after %s down, %d lines written meanwhile", time.Since(killed).Round(time.Millisecond), w.written.Load()-atKill)
	waitFollowing()
	watch(t, after, p.agg, p.sink, collector, live)
	stopWriting()
	if err := <-werr; err != nil {
		t.Fatalf("writer: %v", err)
	}
	live.wait(2 * time.Minute)

	want, _, liveTotal := truthCounts(t, liveTruth)
	written := w.written.Load()
	for id := range written {
		k := cutoffKey
		k.Method = fmt.Sprintf("M%d", id%eoMethods)
		want[k]++
	}
	settle := p.waitCounts(want, 4*time.Minute)
	t.Logf("call_panes: every one of %d keys exact, %d live calls and %d collected lines, %s after the writer stopped",
		len(want), liveTotal, written, settle)

	// The precondition this test exists for: the restarted collector's
	// oldest lines were beyond the grace and took the late path.
	if toLate, _ := checkLatePath(t, aggAddr, sinkAddr); toLate == 0 {
		t.Errorf("no event took the late path: the cut-off of %s did not put the collector's lines beyond the grace", cutoff)
	}
	for _, r := range []*proc{p.agg, p.sink, p.broker, collector} {
		if !r.alive() {
			t.Errorf("%s exited:\n%s", r.name, r.tail())
		}
	}
	t.Logf("total %s", time.Since(begin).Round(time.Second))
}
