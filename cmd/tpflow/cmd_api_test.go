package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest"
)

// TestRunServesQueryAPI runs `tpflow run --demo` with a real ClickHouse and
// reads the demo's panes back through /api/v1/topology and /api/v1/tp on
// the same listener as /api/v1/windows.
func TestRunServesQueryAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline for ~15 s")
	}
	srv := chtest.Start(t)
	p := startRun(t, "aggregator:\n  pane: 2s\n  windows: [10s, 1m]\n  allowed_lateness: 2s\n  idle_timeout: 4s\nclickhouse:\n  batch_age: 500ms\n",
		"--demo", "--no-live", "--clickhouse", "clickhouse://"+srv.Addr()+"/tpflow", "--demo-rate", "2000")
	listen, stderr := p.listen, &p.stderr
	base := "http://" + listen
	var topo struct {
		Systems []struct {
			Name string
			Apps []struct{ Name string }
		}
	}
	deadline := time.Now().Add(40 * time.Second)
	for {
		code, body, err := httpGet(base + "/api/v1/topology?from=now-10m")
		if err == nil && code == 200 && json.Unmarshal(body, &topo) == nil && len(topo.Systems) > 0 && len(topo.Systems[0].Apps) > 0 && topo.Systems[0].Apps[0].Name != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no topology from the demo's panes: %d %s %v\nstderr:\n%s", code, body, err, stderr.String())
		}
		time.Sleep(500 * time.Millisecond)
	}
	app := topo.Systems[0].Apps[0].Name
	code, body, err := httpGet(base + "/api/v1/tp?from=now-10m&by=method&q=tp99&app=" + app)
	var tp struct {
		Series []struct {
			Points []struct{ Calls uint64 }
		}
	}
	if err != nil || code != 200 || json.Unmarshal(body, &tp) != nil || len(tp.Series) == 0 || tp.Series[0].Points[0].Calls == 0 {
		t.Errorf("tp of app %s: %d %v %s", app, code, err, body)
	}
	if code, body, _ := httpGet(base + "/api/v1/tp?step=-1s"); code != 400 || !strings.Contains(string(body), "step") {
		t.Errorf("bad step: %d %s", code, body)
	}
	if code, _, _ := httpGet(base + "/api/v1/windows?window=10s"); code != 200 {
		t.Errorf("/api/v1/windows answers %d next to the query API", code)
	}
	p.stop(t, 30*time.Second)
}
