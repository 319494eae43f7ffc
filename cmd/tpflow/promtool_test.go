package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest"

	"github.com/tpflow/tpflow/internal/testkit"
)

// promtoolBin finds Debian's promtool (package prometheus, installed by
// scripts/install-deps.sh). Without it the test fails under CI and is
// skipped elsewhere.
func promtoolBin(t *testing.T) string {
	t.Helper()
	return testkit.LookPath(t, "promtool is not installed (Debian: apt-get install prometheus; scripts/install-deps.sh installs it)", "promtool")
}

// checkMetricsWithPromtool runs `promtool check metrics` on the exposition
// body of role and fails the test on any problem it reports, warnings
// included.
func checkMetricsWithPromtool(t *testing.T, role string, body []byte) {
	t.Helper()
	cmd := exec.Command(promtoolBin(t), "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics on the %s role's /metrics: %v\n%s", role, err, out)
	}
}

// scrape returns the /metrics body served at base.
func scrape(t *testing.T, base string) []byte {
	t.Helper()
	code, body, err := httpGet(base + "/metrics")
	if err != nil || code != 200 {
		t.Fatalf("GET %s/metrics: %d %v", base, code, err)
	}
	return body
}

// TestCheckMetricsWithPromtoolFails checks that the check can fail: an
// exposition with a counter without _total is refused.
func TestCheckMetricsWithPromtoolFails(t *testing.T) {
	bin := promtoolBin(t)
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = strings.NewReader("# HELP tpflow_x_counter_samples_total X.\n# TYPE tpflow_x_counter_samples_total counter\ntpflow_x_counter_samples_total 1\n")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "should not include type 'counter'") {
		t.Fatalf("promtool accepted a counter named after its type: %v %s", err, out)
	}
}

// TestEveryRoleMetricsPassPromtool runs every long-running role as its
// own process-in-test against one broker and ClickHouse, with log lines
// flowing from the collector through the aggregator to the sink and the
// alert role, and checks each role's /metrics with promtool.
func TestEveryRoleMetricsPassPromtool(t *testing.T) {
	promtoolBin(t)
	ch := chtest.Start(t)
	dir := t.TempDir()
	writeCallLog(t, dir, 200)
	rules := writeTemp(t, "rules.yaml", goodRules)
	brokerAddr, brokerHTTP := freeAddr(t), freeAddr(t)
	cfg := writeTemp(t, "tpflow.yaml", fmt.Sprintf(`kafka:
  brokers: [%q]
clickhouse:
  dsn: %q
  database: tpflow_promtool
  batch_age: 100ms
broker:
  http_listen: %q
aggregator:
  pane: 1s
  windows: [10s]
  allowed_lateness: 1s
  idle_timeout: 1s
aggregate:
  flush_interval: 100ms
alert:
  rules_files: [%q]
  eval_interval: 200ms
`, brokerAddr, "clickhouse://"+ch.Addr(), brokerHTTP, rules)+collectSection(dir))

	broker := startRole(t, brokerHTTP, "broker", "--config", cfg, "--listen", brokerAddr)
	broker.waitStatus("/readyz", 200, 10*time.Second)
	roles := map[string]*roleProcess{"broker": broker}
	for _, name := range []string{"sink", "aggregate", "alert", "collect", "api"} {
		listen := freeAddr(t)
		roles[name] = startRole(t, listen, name, "--config", cfg, "--listen", listen)
	}
	// Wait until each role has counted its traffic, so that its labelled
	// series are in the exposition too.
	want := map[string]string{
		"collect":   "tpflow_collect_lines_total{",
		"aggregate": `tpflow_kafka_consumed_messages_total{topic="tpflow.calls"}`,
		"sink":      "tpflow_sink_messages_total{",
		"alert":     "tpflow_alert_log_messages_total{",
		"api":       "\ngo_goroutines ",
		"broker":    "\ngo_goroutines ",
	}
	for name, p := range roles {
		p.waitStatus("/readyz", 200, 30*time.Second)
		deadline := time.Now().Add(30 * time.Second)
		for !bytes.Contains(scrape(t, p.base), []byte(want[name])) {
			if time.Now().After(deadline) {
				t.Fatalf("the %s role's /metrics lacks %s after 30 s:\n%s", name, want[name], scrape(t, p.base))
			}
			time.Sleep(100 * time.Millisecond)
		}
		checkMetricsWithPromtool(t, name, scrape(t, p.base))
		checkNoProfiler(t, name, p.base)
	}
}
