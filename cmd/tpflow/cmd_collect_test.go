package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tpflow/tpflow/internal/cli"
	"github.com/tpflow/tpflow/pipeline/kafka"
)

const badCollect = `collect:
  sources:
    - name: app
      globs: [relative/*.log]
      parser: protobuf
    - name: app
      preset: podman
      sample: 2
      min_level: LOUD
  batch:
    max_age: 0s
`

// TestCollectRefusesBadConfig checks that every impossible collect value is
// reported with its file, line and column before anything starts.
func TestCollectRefusesBadConfig(t *testing.T) {
	bad := writeTemp(t, "bad.yaml", badCollect)
	code, out, errOut := runCLI(t, "collect", "--config", bad, "--listen", "127.0.0.1:1")
	if code == cli.ExitOK || out != "" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	for _, want := range []string{
		bad + ":4:15: collect.sources[0].globs[0]: must be an absolute path",
		bad + ":5:7: collect.sources[0].parser: unknown parser \"protobuf\"",
		bad + ":6:7: collect.sources[1].name: \"app\" is also the name of sources[0]",
		bad + ":7:7: collect.sources[1].preset: unknown preset \"podman\"",
		bad + ":8:7: collect.sources[1].sample: must be in (0, 1]",
		bad + ":9:7: collect.sources[1].min_level: unknown level \"LOUD\"",
		bad + ":11:5: collect.batch.max_age: must be 1ms to 1m",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	// A topology file that does not parse is refused with its line and column too.
	topo := writeTemp(t, "topology.yaml", "rules:\n  - match: {pod: \"[\"}\n    labels: {app: x}\n")
	code, _, errOut = runCLI(t, "collect", "--topology", topo, "--listen", "127.0.0.1:1")
	if code == cli.ExitOK || !strings.Contains(errOut, topo+":2:13: rules[0].match.pod: bad pattern") {
		t.Errorf("bad topology: exit %d, stderr %q", code, errOut)
	}
}

// writeCallLog writes n perf-json call lines, dated now, to dir/app.log;
// one in ten is an error.
func writeCallLog(t *testing.T, dir string, n int) {
	t.Helper()
	var lines strings.Builder
	for i := range n {
		fmt.Fprintf(&lines, `{"ts":%d,"method":"Cart.add","latency_ms":%d,"ok":%t}`+"\n", time.Now().UnixMilli(), i%50, i%10 != 9)
	}
	if err := os.WriteFile(filepath.Join(dir, "app.log"), []byte(lines.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// collectSection is the collect section that tails dir/*.log from the
// beginning, keeps its state in dir and reads no node metrics.
func collectSection(dir string) string {
	return fmt.Sprintf(`collect:
  sources:
    - {name: app, globs: [%q]}
  host: node-1
  state_file: %q
  metrics_enabled: false
  metrics: {kmsg: ""}
  tail: {start: beginning}
  batch: {max_age: 20ms}
`, filepath.Join(dir, "*.log"), filepath.Join(dir, "state.json"))
}

// TestCollectRoleServesMetrics runs the collect role against the embedded
// broker and reads its /readyz and /metrics: the lines of a log file are
// counted as acknowledged events.
func TestCollectRoleServesMetrics(t *testing.T) {
	bc := kafka.DefaultBrokerConfig()
	bc.Listen = "127.0.0.1:0"
	br, err := kafka.StartBroker(context.Background(), bc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	dir := t.TempDir()
	writeCallLog(t, dir, 50)
	listen := freeAddr(t)
	cfg := writeTemp(t, "tpflow.yaml", fmt.Sprintf("kafka:\n  brokers: [%q]\n", br.Addr())+collectSection(dir))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errOut bytes.Buffer
	go func() {
		done <- run(ctx, []string{"collect", "--config", cfg, "--listen", listen}, io.Discard, &errOut)
	}()
	get := func(path string) string {
		resp, err := http.Get("http://" + listen + path)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return ""
		}
		return string(b)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(get("/metrics"), "tpflow_collect_acked_events_total 100") {
		if time.Now().After(deadline) {
			t.Fatalf("50 lines (50 calls + 50 log events) not acknowledged in 30 s:\n%s\n%s", get("/metrics"), errOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if get("/readyz") != "ready\n" || get("/healthz") != "ok\n" {
		t.Error("readyz or healthz not ok")
	}
	cancel()
	if code := <-done; code != cli.ExitOK {
		t.Errorf("exit %d: %s", code, errOut.String())
	}
}
