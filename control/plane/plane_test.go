package plane_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tpflow/tpflow/control"
	"github.com/tpflow/tpflow/control/plane"
	"github.com/tpflow/tpflow/internal/config/sections"
	"github.com/tpflow/tpflow/internal/role"
	"github.com/tpflow/tpflow/internal/testkit"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest"
	"github.com/tpflow/tpflow/pipeline/httpserver"
)

const opToken = "operator-token-0123456789"

func TestMain(m *testing.M) { os.Exit(chtest.RunMain(m)) }

type fixture struct {
	t   *testing.T
	r   *plane.Role
	srv *httptest.Server
	reg *prometheus.Registry
}

// start runs the control role under the shipped defaults, with a SQLite
// store in a temporary directory, one operator token and ccfg.
func start(t *testing.T, ccfg clickhouse.Config) *fixture {
	t.Helper()
	cfg := plane.DefaultConfig()
	cfg.Store = filepath.Join(t.TempDir(), ".data", "control.db")
	reg := prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	r, err := plane.New(ctx, cfg, ccfg, role.Settings{Registerer: reg}, plane.WithValidator(sections.ValidateFile))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return &fixture{t: t, r: r, srv: serve(t, r), reg: reg}
}

// serve serves r's routes as tpflow control does, behind the shared
// HTTP authentication, here with one operator token (opToken, "olga").
func serve(t *testing.T, r *plane.Role) *httptest.Server {
	t.Helper()
	c := httpserver.DefaultAuthConfig()
	c.Tokens = []httpserver.TokenConfig{{Name: "olga", Role: "operator", Token: opToken}}
	if err := plane.CheckAuth(c); err != nil {
		t.Fatal(err)
	}
	auth, err := httpserver.NewAuth(c, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	routes := make([]httpserver.Route, 0, len(r.Routes()))
	for _, rt := range r.Routes() {
		routes = append(routes, httpserver.Route(rt))
	}
	return newServer(t, httpserver.Handler(httpserver.Options{Routes: routes, Auth: auth, Checks: map[string]httpserver.Check{"store": r.Ready}}))
}

func newServer(t *testing.T, h http.Handler) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func (f *fixture) write(method, path, body string) {
	f.t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+opToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		f.t.Fatalf("%s %s = %d", method, path, resp.StatusCode)
	}
}

// writes makes n accepted writes: a system, then config versions.
func (f *fixture) writes(sys string, n int) {
	f.write("PUT", "/api/v1/systems/"+sys, `{}`)
	for i := 1; i < n; i++ {
		f.write("POST", "/api/v1/config/system/"+sys+"/versions",
			fmt.Sprintf(`{"files":[{"name":"tpflow.yaml","body":"log:\n  level: info\n# %d\n"}]}`, i))
	}
}

func chConfig(s *chtest.Server) clickhouse.Config {
	c := clickhouse.DefaultConfig()
	c.DSN, c.Database = "clickhouse://"+s.Addr()+"?dial_timeout=1s&read_timeout=10s", s.Database()
	return c
}

// exported returns the rows of the operations table, and how many ids
// they have, each counted once.
func exported(t *testing.T, conn driver.Conn, db string) (rows, ids uint64) {
	t.Helper()
	err := conn.QueryRow(context.Background(), "SELECT count(), uniqExact(id) FROM "+db+".operations FINAL").Scan(&rows, &ids)
	if err != nil {
		return 0, 0
	}
	return rows, ids
}

func open(t *testing.T, c clickhouse.Config) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestOperationsReachClickHouseOnceThroughAnOutage writes operations,
// stops ClickHouse for longer than every export time-out while the API
// goes on accepting writes, starts it again, and finds every operation of
// the history in ClickHouse exactly once, with its labels.
func TestOperationsReachClickHouseOnceThroughAnOutage(t *testing.T) {
	t.Parallel()
	ch := chtest.Start(t)
	ccfg := chConfig(ch)
	f := start(t, ccfg)
	ctx := context.Background()

	f.writes("shop", 5)
	f.write("PUT", "/api/v1/systems/shop/apps/cart", `{}`)
	f.write("PUT", "/api/v1/systems/shop/apps/cart/groups/blue", `{"env":"prod","idc":"dc1"}`)
	f.write("POST", "/api/v1/config/group/shop/cart/blue/versions", `{"files":[{"name":"tpflow.yaml","body":"log:\n  level: debug\n"}]}`)
	conn := open(t, ccfg)
	testkit.WaitFor(t, 30*time.Second, "8 operations in ClickHouse", func() bool { r, _ := exported(t, conn, ccfg.Database); return r == 8 })
	var who, action, sys, app, grp string
	if err := conn.QueryRow(ctx, "SELECT who, action, system, app, group_name FROM "+ccfg.Database+".operations FINAL WHERE id = 8").
		Scan(&who, &action, &sys, &app, &grp); err != nil {
		t.Fatal(err)
	}
	if who != "olga" || action != "config.create" || sys != "shop" || app != "cart" || grp != "blue" {
		t.Errorf("operation 8 in ClickHouse: %s %s %s/%s/%s", who, action, sys, app, grp)
	}

	ch.Stop()
	f.writes("bank", 6) // accepted while ClickHouse is down
	testkit.WaitFor(t, 30*time.Second, "a failed export", func() bool {
		return testkit.Metric(t, f.reg, plane.MetricsPrefix+"operations_export_failures_total", nil) > 0
	})
	pending, err := f.r.Store().Pending(ctx, 100)
	if err != nil || len(pending) != 6 {
		t.Fatalf("outbox while ClickHouse is down: %d operations, %v; want 6", len(pending), err)
	}
	ch.Start()
	conn2 := open(t, ccfg)
	testkit.WaitFor(t, 60*time.Second, "14 operations in ClickHouse", func() bool { r, _ := exported(t, conn2, ccfg.Database); return r == 14 })
	rows, ids := exported(t, conn2, ccfg.Database)
	hist, err := f.r.Store().Operations(ctx, control.OperationFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if rows != uint64(len(hist)) || ids != rows {
		t.Errorf("ClickHouse has %d rows with %d ids; the history has %d", rows, ids, len(hist))
	}
	if p, _ := f.r.Store().Pending(ctx, 100); len(p) != 0 {
		t.Errorf("%d operations still queued", len(p))
	}
	if n := testkit.Metric(t, f.reg, plane.MetricsPrefix+"operations_exported_total", nil); n != 14 {
		t.Errorf("exported_total = %v, want 14", n)
	}
}

func TestTargetLabels(t *testing.T) {
	for target, want := range map[string][3]string{
		"system:shop":               {"shop", "", ""},
		"app:shop/cart":             {"shop", "cart", ""},
		"group:shop/cart/blue":      {"shop", "cart", "blue"},
		"config:group:shop/cart/b":  {"shop", "cart", "b"},
		"config:system:shop":        {"shop", "", ""},
		"config:global":             {"", "", ""},
		"config:node:idc=dc1":       {"", "", ""},
		"instance:c0ffee":           {"", "", ""},
		"topology":                  {"", "", ""},
		"group:a/b/c/d":             {"a", "b", "c/d"},
		"":                          {"", "", ""},
		"config:app:shop/cart/more": {"shop", "cart", "more"},
	} {
		s, a, g := plane.TargetLabels(target)
		if [3]string{s, a, g} != want {
			t.Errorf("TargetLabels(%q) = %q %q %q, want %q", target, s, a, g, want)
		}
	}
}

func TestNewValidatesAndCheckAuthWantsAWriter(t *testing.T) {
	if err := plane.DefaultConfig().Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
	bad := plane.Config{Store: "x.db?mode=ro", Operations: plane.OperationsConfig{BatchSize: 0, Interval: 0}}
	err := bad.Validate()
	for _, want := range []string{"store: SQLite path", "operations.batch_size", "operations.interval", "rollout_interval"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to say %q", err, want)
		}
	}
	if _, err := plane.New(context.Background(), bad, clickhouse.DefaultConfig(), role.Settings{}); err == nil || !strings.Contains(err.Error(), "store: SQLite path") {
		t.Errorf("New with a bad store = %v", err)
	}
	viewer := httpserver.TokenConfig{Name: "v", Role: "viewer", Token: "viewer-token-0123456789"}
	for _, c := range []struct {
		auth httpserver.AuthConfig
		ok   bool
	}{
		{httpserver.DefaultAuthConfig(), false},
		{httpserver.AuthConfig{Tokens: []httpserver.TokenConfig{viewer}, Users: []httpserver.UserConfig{{Name: "u", Role: "viewer"}}, ClientCerts: []httpserver.ClientCertConfig{{CommonName: "p", Role: "viewer"}}}, false},
		{httpserver.AuthConfig{Tokens: []httpserver.TokenConfig{viewer, {Name: "o", Role: "operator"}}}, true},
		{httpserver.AuthConfig{Users: []httpserver.UserConfig{{Name: "a", Role: "admin"}}}, true},
		{httpserver.AuthConfig{ClientCerts: []httpserver.ClientCertConfig{{CommonName: "deployer", Role: "operator"}}}, true},
	} {
		if err := plane.CheckAuth(c.auth); (err == nil) != c.ok || (err != nil && (err != plane.ErrNoWriter || !strings.Contains(err.Error(), "http.auth"))) {
			t.Errorf("CheckAuth(%+v) = %v, want ok %v", c.auth, err, c.ok)
		}
	}
}
