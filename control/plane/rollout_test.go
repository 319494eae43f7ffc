package plane_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tpflow/tpflow/control"
	"github.com/tpflow/tpflow/control/plane"
	"github.com/tpflow/tpflow/control/rollout/rollouttest"
	"github.com/tpflow/tpflow/internal/config/sections"
	"github.com/tpflow/tpflow/internal/role"
	"github.com/tpflow/tpflow/internal/testkit"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
)

// TestRoleRunsRollouts runs the control role with twelve agents, ten of them in group blue:
// a rollout created through the API reaches every agent of its group, and
// no other, and ends done.
func TestRoleRunsRollouts(t *testing.T) {
	fl := rollouttest.New()
	for i := range 12 {
		g := "blue"
		if i >= 10 {
			g = "green"
		}
		id := fmt.Sprintf("a%02d", i)
		fl.Add(id, control.Agent{System: "shop", App: "cart", Group: g, Node: id}, "")
	}
	cfg := plane.DefaultConfig()
	cfg.Store = filepath.Join(t.TempDir(), "control.db")
	cfg.Operations.Export = false
	cfg.RolloutInterval = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	reg := prometheus.NewRegistry()
	r, err := plane.New(ctx, cfg, clickhouse.DefaultConfig(), role.Settings{Registerer: reg}, plane.WithValidator(sections.ValidateFile), plane.WithFleet(fl))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	f := &fixture{t: t, r: r}
	f.srv = serve(t, r)
	for _, w := range []struct{ m, p, b string }{
		{"PUT", "/api/v1/systems/shop", `{}`},
		{"PUT", "/api/v1/systems/shop/apps/cart", `{}`},
		{"PUT", "/api/v1/systems/shop/apps/cart/groups/blue", `{}`},
		{"POST", "/api/v1/config/group/shop/cart/blue/versions", `{"files":[{"name":"tpflow.yaml","body":"log:\n  level: debug\n"}]}`},
		{"POST", "/api/v1/rollouts", `{"scope":"group:shop/cart/blue","waves":[{"percent":10,"soak":"0s","failure_budget":1},{"percent":100,"soak":"0s","failure_budget":1}]}`},
	} {
		f.write(w.m, w.p, w.b)
	}
	v, err := r.Store().Version(ctx, control.Scope{Kind: control.ScopeGroup, Name: "shop/cart/blue"}, 1)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "the rollout to be done", func() bool {
		ro, err := r.Store().Rollout(ctx, 1)
		return err == nil && ro.State == control.RolloutDone
	})
	if n, _ := fl.Count(v.SHA256); n != 10 {
		t.Errorf("%d agents run the version, want the 10 of group blue", n)
	}
	// The fleet metrics: rollouts by state, instances by what they run.
	f.write("PUT", "/api/v1/instances/i1", `{"system":"shop","app":"cart","group":"blue","config_version":"`+v.SHA256+`"}`)
	f.write("PUT", "/api/v1/instances/i2", `{"system":"shop","app":"cart","group":"blue","config_version":"old"}`)
	f.write("PUT", "/api/v1/instances/i3", `{"system":"shop","app":"cart","group":"blue"}`)
	for _, m := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"rollouts", map[string]string{"state": "done"}, 1},
		{"rollouts", map[string]string{"state": "running"}, 0},
		{"instances", map[string]string{"system": "shop", "app": "cart", "group": "blue", "idc": "", "state": "latest"}, 1},
		{"instances", map[string]string{"system": "shop", "app": "cart", "group": "blue", "idc": "", "state": "behind"}, 1},
		{"instances", map[string]string{"system": "shop", "app": "cart", "group": "blue", "idc": "", "state": "unknown"}, 1},
	} {
		if got := testkit.Metric(t, reg, plane.MetricsPrefix+m.name, m.labels); got != m.want {
			t.Errorf("%s%s%v = %v, want %v", plane.MetricsPrefix, m.name, m.labels, got, m.want)
		}
	}
	req, _ := http.NewRequest("GET", f.srv.URL+"/api/v1/rollouts/1", nil)
	req.Header.Set("Authorization", "Bearer "+opToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var view struct {
		WaveAgents []int `json:"wave_agents"`
	}
	if err := json.Unmarshal(body, &view); err != nil || fmt.Sprint(view.WaveAgents) != "[1 9]" || !strings.Contains(string(body), `"state": "done"`) {
		t.Errorf("rollout view %s", body)
	}
}
