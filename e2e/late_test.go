package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest"
)

// mustMetric scrapes one sample, failing the test when it is absent.
func mustMetric(t *testing.T, addr, name string) float64 {
	t.Helper()
	ms, err := scrape(addr)
	if err != nil {
		t.Fatal(err)
	}
	v, ok := ms[name]
	if !ok {
		t.Fatalf("%s does not export %s", addr, name)
	}
	return v
}

// startDefaults starts ClickHouse, broker, aggregate and sink with the
// shipped default configuration: only the addresses, and extra (more YAML
// sections, e.g. collect's paths), are set. It returns the pipeline and the
// aggregate and sink roles' HTTP addresses.
func startDefaults(t *testing.T, extra string) (p *pipeline, aggAddr, sinkAddr string) {
	t.Helper()
	ch := chtest.Start(t)
	dir := t.TempDir()
	brokerAddr := freeAddr(t)
	dsn := dbDSN(t, ch, database)
	cfgFile := filepath.Join(dir, "tpflow.yaml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf("kafka:\n  brokers: [%q]\nclickhouse:\n  dsn: %q\n%s", brokerAddr, dsn, extra)), 0o644); err != nil {
		t.Fatal(err)
	}
	p = &pipeline{t: t, dir: dir, brokerAddr: brokerAddr, cfgFile: cfgFile, ch: ch, database: database}
	p.broker = start(t, dir, "broker", "broker", "--config", cfgFile, "--listen", brokerAddr,
		"--data-dir", filepath.Join(dir, "broker"), "--sync-writes")
	p.waitPort(brokerAddr)
	aggAddr, sinkAddr = freeAddr(t), freeAddr(t)
	p.agg = start(t, dir, "aggregate", "aggregate", "--config", cfgFile, "--listen", aggAddr)
	p.sink = start(t, dir, "sink", "sink", "--config", cfgFile, "--listen", sinkAddr)
	p.conn = openDB(t, ch, database)
	return p, aggAddr, sinkAddr
}

// checkLatePath scrapes the late-data counters of the aggregator at aggAddr
// and the sink at sinkAddr, logs them, and fails the test if the aggregator
// dropped a late event or the late merger merged other than what the
// aggregator handed it. It returns the events handed to the late path and
// the corrections within the grace.
func checkLatePath(t *testing.T, aggAddr, sinkAddr string) (toLate, corrections float64) {
	t.Helper()
	dropped := mustMetric(t, aggAddr, "tpflow_aggregate_late_dropped_events_total")
	toLate = mustMetric(t, aggAddr, "tpflow_aggregate_late_path_events_total")
	corrections = mustMetric(t, aggAddr, "tpflow_aggregate_late_events_total")
	merged := mustMetric(t, sinkAddr, "tpflow_sink_late_pane_events_merged_total")
	t.Logf("aggregator: late_dropped %v, to the late path %v, corrections within the grace %v; late merger merged %v into panes",
		dropped, toLate, corrections, merged)
	if dropped != 0 {
		t.Errorf("the aggregator dropped %v late events", dropped)
	}
	if merged != toLate {
		t.Errorf("the late merger merged %v events into panes, the aggregator handed it %v", merged, toLate)
	}
	return toLate, corrections
}

// watch waits for d, failing the test as soon as one of procs exits.
func watch(t *testing.T, d time.Duration, procs ...*proc) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-deadline.C:
			return
		case <-tick.C:
			for _, r := range procs {
				if !r.alive() {
					t.Fatalf("%s exited:\n%s", r.name, r.tail())
				}
			}
		}
	}
}

// TestLateDataAfterBrokerOutage runs broker, aggregate and sink with the
// shipped default configuration (only the addresses are set) and stops
// the broker for longer than the grace and than twice the idle time-out,
// as when a node is cut off from Kafka. The calls held back meanwhile
// (events dated when the broker stopped, produced when it is back, as a
// waiting producer sends them) are past their panes' grace and must take
// the late path; calls dated two minutes back are corrections within the
// grace; live calls flow alongside. In the end sum(count) per key in
// call_panes equals what the load generators produced, the aggregator
// dropped no late event, and the late merger merged exactly the events the
// aggregator handed to the late path.
func TestLateDataAfterBrokerOutage(t *testing.T) {
	// Most of this test is the outage itself: it waits beside the others.
	t.Parallel()
	begin := time.Now()
	binary(t)
	defaults := aggregator.DefaultConfig()
	outage := max(defaults.Grace, 2*defaults.IdleTimeout) + 2*defaults.IdleTimeout

	p, aggAddr, sinkAddr := startDefaults(t, "")
	dir, brokerAddr := p.dir, p.brokerAddr

	// Traffic before the cut; the broker is killed right after it, so part
	// of it may wait in the broker until the aggregator catches up.
	var truths []string
	truth := func(name string) string {
		f := filepath.Join(dir, name+".jsonl")
		truths = append(truths, f)
		return f
	}
	p.loadgen("before", "--keys", "20", "--duration", "5s", "--rate", "4000", "--seed", "21", "--truth", truth("before")).wait(60 * time.Second)
	stopped := time.Now()
	p.broker.kill()
	t.Logf("broker stopped for %s (grace %s, idle time-out %s)", outage, defaults.Grace, defaults.IdleTimeout)
	// The aggregator and the sink stay up through the outage: wait it out
	// while watching them.
	watch(t, outage, p.agg, p.sink)
	p.broker.start()
	p.waitPort(brokerAddr)
	back := time.Now()

	// Live traffic first, so that the aggregator's watermark is at the
	// wall clock again when the held-back calls arrive.
	//
	// Why an earlier version of this test saw no call take the late path:
	// the aggregator's watermark does not move during the outage at all.
	// The consumer's group generation ends as soon as the broker is gone
	// (its Revoked flush is the last Advance), and between generations
	// nothing flushes, so the watermark stays where the last pre-outage
	// call put it. The idle rules would hold it there as well (a partition
	// whose fetches fail is not idle, and after the outage it is idle only
	// once fetches succeeded for idle_timeout): the correct behaviour, a
	// consumer cut off from its backlog must not make that backlog late.
	// The test then waited on tpflow_aggregate_watermark_lag_seconds,
	// which only a flush that advances the watermark sets: right after
	// the restart it still held its pre-outage value (~31 s), the wait
	// passed at once, and the held-back calls reached the aggregator in
	// the same backlog as the live ones, before any flush moved the
	// watermark past them: on time, not late. The wait below needs a pane
	// emitted after the restart (so the lag was set by a flush after it)
	// and a lag within the lateness + 10 s, so the watermark is past the
	// held-back calls' panes + grace when they are produced.
	emitted := "tpflow_aggregate_panes_emitted_total"
	atBack := mustMetric(t, aggAddr, emitted)
	live := p.loadgen("live", "--keys", "20", "--duration", "30s", "--rate", "1000", "--seed", "22", "--truth", truth("live"))
	lag := "tpflow_aggregate_watermark_lag_seconds"
	for {
		ms, err := scrape(aggAddr)
		if v, ok := ms[lag]; err == nil && ok && ms[emitted] > atBack && v > 0 && v < (defaults.AllowedLateness+10*time.Second).Seconds() {
			break
		}
		if time.Since(back) > 2*time.Minute {
			t.Fatalf("the aggregator's watermark did not catch up with the wall clock (%s %v, %v):\n%s", lag, ms[lag], err, p.agg.tail())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if ms, err := scrape(aggAddr); err == nil {
		t.Logf("the held-back calls are produced %s after the broker came back, watermark lag %.1fs", time.Since(back).Round(time.Millisecond), ms[lag])
	}
	held := p.loadgen("held", "--keys", "20", "--duration", "3s", "--rate", "4000", "--seed", "23", "--truth", truth("held"),
		"--backdate", time.Since(stopped).Round(time.Second).String())
	within := p.loadgen("within", "--keys", "20", "--duration", "3s", "--rate", "4000", "--seed", "24", "--truth", truth("within"),
		"--backdate", "2m")
	held.wait(60 * time.Second)
	within.wait(60 * time.Second)
	live.wait(90 * time.Second)
	want, _, total := truthCounts(t, truths...)
	settle := p.waitCounts(want, 3*time.Minute)
	t.Logf("%d calls over %d keys stored exactly, %s after the last load generator, %s after the broker came back", total, len(want), settle, time.Since(back))

	// What matters: the exact counts above and nothing dropped
	// (checkLatePath). The late-path count is the precondition that the
	// held-back calls were beyond the grace when they came.
	toLate, corrections := checkLatePath(t, aggAddr, sinkAddr)
	t.Logf("held-back calls: %v through the late path, %v corrections", toLate, corrections)
	if toLate == 0 {
		t.Errorf("no held-back call took the late path: the watermark was not past their panes' grace when they came")
	}
	for _, r := range []*proc{p.agg, p.sink, p.broker} {
		if !r.alive() {
			t.Errorf("%s exited:\n%s", r.name, r.tail())
		}
	}
	t.Logf("total %s", time.Since(begin))
}
