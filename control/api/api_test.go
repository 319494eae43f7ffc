package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tpflow/tpflow/control"
	"github.com/tpflow/tpflow/control/api"
	"github.com/tpflow/tpflow/control/store"
	"github.com/tpflow/tpflow/internal/config/sections"
	"github.com/tpflow/tpflow/pipeline/httpserver"
)

const (
	operatorToken = "operator-token-0123456789"
	adminToken    = "admin-token-0123456789"
	viewerToken   = "viewer-token-0123456789"
)

// behindAuth serves h behind the shared HTTP authentication
// (pipeline/httpserver) with the test's three tokens, as tpflow control
// serves the API with http.auth. Its failure limit is raised: these tests
// send a wrong token to every route, and the limit is httpserver's to
// test.
func behindAuth(t *testing.T, h http.Handler) http.Handler {
	t.Helper()
	c := httpserver.DefaultAuthConfig()
	c.Tokens = []httpserver.TokenConfig{
		{Name: "olga", Role: "operator", Token: operatorToken},
		{Name: "adam", Role: "admin", Token: adminToken},
		{Name: "vic", Role: "viewer", Token: viewerToken},
	}
	c.MaxFailures = 1 << 20
	auth, err := httpserver.NewAuth(c, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return auth.Wrap(h)
}

type env struct {
	t     *testing.T
	store store.Store
	srv   *httptest.Server
	woken int
}

func newEnv(t *testing.T) *env {
	t.Helper()
	s, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "control.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e := &env{t: t, store: s}
	a := api.New(s, sections.ValidateFile, api.Options{Written: func() { e.woken++ }})
	e.srv = httptest.NewServer(behindAuth(t, a.Handler()))
	t.Cleanup(e.srv.Close)
	return e
}

// do sends a request and returns the status and body.
func (e *env) do(token, method, path, body string, hdr ...string) (int, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// ok sends a request with the operator token and fails unless it is 2xx.
func (e *env) ok(method, path, body string) string {
	e.t.Helper()
	code, out := e.do(operatorToken, method, path, body)
	if code/100 != 2 {
		e.t.Fatalf("%s %s = %d %s", method, path, code, out)
	}
	return out
}

func (e *env) operations() []control.Operation {
	e.t.Helper()
	ops, err := e.store.Operations(context.Background(), control.OperationFilter{Limit: control.MaxOperationLimit})
	if err != nil {
		e.t.Fatal(err)
	}
	return ops
}

func (e *env) seed() {
	e.ok("PUT", "/api/v1/systems/shop", `{"description":"the shop"}`)
	e.ok("PUT", "/api/v1/systems/shop/apps/cart", `{}`)
	e.ok("PUT", "/api/v1/systems/shop/apps/cart/groups/blue", `{"env":"prod","idc":"dc1"}`)
}

const goodConfig = `{"files":[{"name":"tpflow.yaml","body":"aggregator:\n  pane: 10s\n"}],"message":"m"}`

// writeCases are one accepted request per write route, in an order in
// which each succeeds after the ones before it.
var writeCases = []struct{ method, path, body string }{
	{"PUT", "/api/v1/systems/bank", `{"description":"b"}`},
	{"PUT", "/api/v1/systems/bank/apps/ledger", `{}`},
	{"PUT", "/api/v1/systems/bank/apps/ledger/groups/g1", `{"env":"prod","idc":"dc1"}`},
	{"PUT", "/api/v1/instances/abc123", `{"system":"bank","app":"ledger","group":"g1","node":"n1","status":"running"}`},
	{"POST", "/api/v1/topology/import", "rules:\n  - match: {pod: \"pay-*\"}\n    labels: {system: bank, app: pay, group: g2}\n"},
	{"POST", "/api/v1/config/global/versions", goodConfig},
	{"POST", "/api/v1/config/system/bank/versions", goodConfig},
	{"POST", "/api/v1/config/app/bank/ledger/versions", goodConfig},
	{"POST", "/api/v1/config/group/bank/ledger/g1/versions", goodConfig},
	{"POST", "/api/v1/config/node/idc=dc1/versions", goodConfig},
	{"POST", "/api/v1/config/global/rollback", `{"to":1}`},
	{"POST", "/api/v1/config/system/bank/rollback", `{"to":1}`},
	{"POST", "/api/v1/config/app/bank/ledger/rollback", `{"to":1}`},
	{"POST", "/api/v1/config/group/bank/ledger/g1/rollback", `{"to":1}`},
	{"POST", "/api/v1/config/node/idc=dc1/rollback", `{"to":1}`},
	{"POST", "/api/v1/rollouts", `{"scope":"global","waves":[{"percent":50,"soak":"1m","failure_budget":1},{"percent":100,"soak":"2m","failure_budget":2}]}`},
	{"POST", "/api/v1/rollouts/1/pause", ``},
	{"POST", "/api/v1/rollouts/1/resume", ``},
	{"POST", "/api/v1/rollouts/1/abort", ``},
	{"DELETE", "/api/v1/instances/abc123", ""},
	{"DELETE", "/api/v1/systems/bank/apps/ledger/groups/g1", ""},
	{"DELETE", "/api/v1/systems/bank/apps/pay/groups/g2", ""},
	{"DELETE", "/api/v1/systems/bank/apps/ledger", ""},
	{"DELETE", "/api/v1/systems/bank/apps/pay", ""},
	{"DELETE", "/api/v1/systems/bank", ""},
}

// TestEveryWriteNeedsAnOperator sends every write route without a token,
// with an unknown one and with a viewer's (refused, nothing recorded),
// then with an operator's or admin's: accepted and recorded exactly once,
// with who made it and the reason given.
func TestEveryWriteNeedsAnOperator(t *testing.T) {
	e := newEnv(t)
	// Every write route of the API has a case.
	mux := http.NewServeMux()
	for _, r := range api.New(e.store, nil, api.Options{}).Routes() {
		mux.Handle(r.Pattern, r.Handler)
	}
	covered := map[string]bool{}
	for _, c := range writeCases {
		_, pattern := mux.Handler(httptest.NewRequest(c.method, c.path, nil))
		covered[pattern] = true
	}
	for _, r := range api.New(e.store, nil, api.Options{}).Routes() {
		if !strings.HasPrefix(r.Pattern, "GET ") && !covered[r.Pattern] {
			t.Errorf("write route %s has no case", r.Pattern)
		}
	}
	for i, c := range writeCases {
		for _, tok := range []string{"", "wrong-token-0123456789", viewerToken} {
			code, body := e.do(tok, c.method, c.path, c.body)
			want := http.StatusUnauthorized
			if tok == viewerToken {
				want = http.StatusForbidden
			}
			if code != want {
				t.Errorf("%s %s with token %q = %d %s, want %d", c.method, c.path, tok, code, body, want)
			}
		}
		if n := len(e.operations()); n != i {
			t.Fatalf("after refused %s %s: %d operations, want %d", c.method, c.path, n, i)
		}
		tok, who := operatorToken, "olga"
		if i%2 == 1 {
			tok, who = adminToken, "adam"
		}
		code, body := e.do(tok, c.method, c.path, c.body, api.ReasonHeader, "case "+c.path)
		if code/100 != 2 {
			t.Fatalf("%s %s = %d %s", c.method, c.path, code, body)
		}
		ops := e.operations()
		if len(ops) != i+1 {
			t.Fatalf("after %s %s: %d operations, want %d", c.method, c.path, len(ops), i+1)
		}
		if ops[0].Who != who || ops[0].Reason != "case "+c.path || ops[0].Result != control.ResultOK {
			t.Errorf("%s %s recorded %+v", c.method, c.path, ops[0])
		}
	}
	if e.woken != len(writeCases) {
		t.Errorf("the exporter was woken %d times, want %d", e.woken, len(writeCases))
	}
	// Reads need a token too, and a viewer's is enough.
	for _, p := range []string{"/api/v1/topology", "/api/v1/operations", "/api/v1/config/global/versions", "/api/v1/effective"} {
		if code, _ := e.do("", "GET", p, ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s without a token = %d, want 401", p, code)
		}
		if code, body := e.do(viewerToken, "GET", p, ""); code != http.StatusOK {
			t.Errorf("GET %s as viewer = %d %s", p, code, body)
		}
	}
}

// TestAPIRefusesWithoutAPrincipal serves the API with no authentication
// in front of it: it answers every route 401 itself, so that a write can
// never be recorded without who made it, and refuses a viewer's write
// 403 even where the layer in front lets it through.
func TestAPIRefusesWithoutAPrincipal(t *testing.T) {
	e := newEnv(t)
	h := api.New(e.store, nil, api.Options{}).Handler()
	viewer := httpserver.WithPrincipal(context.Background(), httpserver.Principal{Name: "vic", Role: httpserver.RoleViewer})
	operator := httpserver.WithPrincipal(context.Background(), httpserver.Principal{Name: "olga", Role: httpserver.RoleOperator})
	for _, c := range append(writeCases[:1:1], struct{ method, path, body string }{"GET", "/api/v1/topology", ""}) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(c.method, c.path, strings.NewReader(c.body)))
		if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "http.auth") {
			t.Errorf("%s %s without a principal = %d %s, want 401 naming http.auth", c.method, c.path, w.Code, w.Body)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("PUT", "/api/v1/systems/x", strings.NewReader(`{}`)).WithContext(viewer))
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "vic is a viewer") {
		t.Errorf("PUT as a viewer = %d %s, want 403", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("PUT", "/api/v1/systems/x", strings.NewReader(`{}`)).WithContext(operator))
	if ops := e.operations(); w.Code != http.StatusOK || len(ops) != 1 || ops[0].Who != "olga" {
		t.Errorf("PUT as an operator = %d %s, operations %+v; want 200 recorded as olga", w.Code, w.Body, ops)
	}
}

func TestVersionsValidateDiffRollbackEffective(t *testing.T) {
	e := newEnv(t)
	e.seed()
	n := len(e.operations())
	// Invalid content is refused with every problem as FILE:LINE:COLUMN.
	bad := `{"files":[{"name":"tpflow.yaml","body":"aggregator:\n  pane: ten\nkafak: {}\n"},{"name":"rules/x.yaml","body":"groups: 1\n"},{"name":"notes.txt","body":"x"}]}`
	code, body := e.do(operatorToken, "POST", "/api/v1/config/global/versions", bad)
	var ae struct {
		Error    string
		Problems []string
	}
	_ = json.Unmarshal([]byte(body), &ae)
	if code != http.StatusBadRequest || len(ae.Problems) < 4 {
		t.Fatalf("invalid version = %d %s", code, body)
	}
	for _, want := range []string{`tpflow.yaml:2:9: aggregator.pane: cannot parse "ten" as a duration`, `tpflow.yaml:3:1: unknown key "kafak"`, "rules/x.yaml:", "notes.txt: unknown file"} {
		if !strings.Contains(strings.Join(ae.Problems, "\n"), want) {
			t.Errorf("problems %q lack %q", ae.Problems, want)
		}
	}
	if len(e.operations()) != n {
		t.Error("a refused version was recorded")
	}

	create := func(path, body string) control.Version {
		var ans struct{ Version control.Version }
		if err := json.Unmarshal([]byte(e.ok("POST", path, body)), &ans); err != nil {
			t.Fatal(err)
		}
		return ans.Version
	}
	v1 := create("/api/v1/config/global/versions", `{"files":[{"name":"tpflow.yaml","body":"aggregator:\n  pane: 10s\nlog:\n  level: info\n"}]}`)
	v2 := create("/api/v1/config/global/versions", `{"files":[{"name":"tpflow.yaml","body":"aggregator:\n  pane: 20s\nlog:\n  level: info\n"}],"parent":1}`)
	if v1.Version != 1 || v2.Version != 2 || v2.Parent != 1 || v2.Author != "olga" {
		t.Fatalf("versions %+v %+v", v1, v2)
	}
	if code, body := e.do(operatorToken, "POST", "/api/v1/config/global/versions", `{"files":[{"name":"tpflow.yaml","body":""}],"parent":1}`); code != http.StatusConflict {
		t.Errorf("stale parent = %d %s, want 409", code, body)
	}
	var d struct {
		From, To int64
		Files    []control.FileDiff
	}
	_ = json.Unmarshal([]byte(e.ok("GET", "/api/v1/config/global/diff?from=1&to=latest", "")), &d)
	if d.From != 1 || d.To != 2 || len(d.Files) != 1 || !strings.Contains(d.Files[0].Unified, "-  pane: 10s\n+  pane: 20s") {
		t.Errorf("diff = %+v", d)
	}
	rb := create("/api/v1/config/global/rollback", `{"to":1}`)
	if rb.Version != 3 || rb.SHA256 != v1.SHA256 {
		t.Errorf("rollback = %+v, want version 3 with sha %s", rb, v1.SHA256)
	}
	var list []control.Version
	_ = json.Unmarshal([]byte(e.ok("GET", "/api/v1/config/global/versions", "")), &list)
	if len(list) != 3 || list[0].Version != 3 || list[0].Message != "rollback to version 1" {
		t.Errorf("list = %+v", list)
	}
	var got control.Version
	_ = json.Unmarshal([]byte(e.ok("GET", "/api/v1/config/global/versions/2", "")), &got)
	if got.SHA256 != v2.SHA256 || got.Files[0].Body != "aggregator:\n  pane: 20s\nlog:\n  level: info\n" {
		t.Errorf("version 2 = %+v", got)
	}

	// The group overrides one key; the node selector another.
	create("/api/v1/config/group/shop/cart/blue/versions", `{"files":[{"name":"tpflow.yaml","body":"log:\n  level: debug\n"}]}`)
	create("/api/v1/config/node/node=n1,idc=dc1/versions", `{"files":[{"name":"tpflow.yaml","body":"log:\n  format: json\n"}]}`)
	var eff struct {
		control.Effective
		Problems []string
	}
	_ = json.Unmarshal([]byte(e.ok("GET", "/api/v1/effective?system=shop&app=cart&group=blue&idc=dc1&node=n1", "")), &eff)
	if len(eff.Scopes) != 3 || len(eff.Files) != 1 || len(eff.Problems) != 0 {
		t.Fatalf("effective = %+v", eff)
	}
	cfg, err := sections.Load("effective", []byte(eff.Files[0].Body), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Aggregator.Pane.Seconds() != 10 || cfg.Log.Level != "debug" || cfg.Log.Format != "json" || eff.SHA256 != control.Hash(eff.Files) {
		t.Errorf("effective config: pane %s, log %+v, body:\n%s", cfg.Aggregator.Pane, cfg.Log, eff.Files[0].Body)
	}
	// Another node gets the group's level but not the node's format.
	_ = json.Unmarshal([]byte(e.ok("GET", "/api/v1/effective?system=shop&app=cart&group=blue&idc=dc1&node=n2", "")), &eff)
	if len(eff.Scopes) != 2 || strings.Contains(eff.Files[0].Body, "json") {
		t.Errorf("effective of n2 = %+v", eff)
	}
}

func TestBadRequestsAreAnswered400(t *testing.T) {
	e := newEnv(t)
	e.seed()
	cases := []struct {
		method, path, body string
		want               int
		says               string
	}{
		{"PUT", "/api/v1/systems/x", `{"name":"y"}`, 400, "differs from"},
		{"PUT", "/api/v1/systems/x", `{"nmae":"x"}`, 400, "unknown field"},
		{"PUT", "/api/v1/systems/x", `{} {}`, 400, "after the object"},
		{"PUT", "/api/v1/systems/x", `[`, 400, "cannot decode"},
		{"PUT", "/api/v1/systems/x", "\xff\xfe", 400, "cannot decode"},
		{"PUT", "/api/v1/systems/bad%20name", `{}`, 400, "must be 1-63"},
		{"PUT", "/api/v1/systems/x", `{"description":"` + strings.Repeat("a", api.MaxBody) + `"}`, 413, "larger than"},
		{"PUT", "/api/v1/systems/nosuch/apps/a", `{}`, 409, "does not exist"},
		{"DELETE", "/api/v1/systems/shop", ``, 409, "still has apps"},
		{"DELETE", "/api/v1/systems/nosuch", ``, 404, "not found"},
		{"POST", "/api/v1/config/node/rack=1/versions", goodConfig, 400, "node selector"},
		{"POST", "/api/v1/config/global/versions", `{"files":[]}`, 400, "at least one file"},
		{"POST", "/api/v1/config/global/versions", `{"files":[{"name":"../tpflow.yaml","body":""}]}`, 400, "relative path"},
		{"POST", "/api/v1/config/global/rollback", `{"to":0}`, 400, "rollback needs"},
		{"POST", "/api/v1/config/global/rollback", `{"to":5}`, 404, "not found"},
		{"GET", "/api/v1/config/global/versions/0", ``, 400, "must be a number"},
		{"GET", "/api/v1/config/global/versions/latest", ``, 404, "no version"},
		{"GET", "/api/v1/config/global/diff", ``, 400, "needs from"},
		{"GET", "/api/v1/operations?since=yesterday", ``, 400, "RFC 3339"},
		{"GET", "/api/v1/operations?until=9999-12-31T23:59:59Z", ``, 400, "between the years"},
		{"GET", "/api/v1/operations?since=0001-01-01T00:00:00Z", ``, 400, "between the years"},
		{"PUT", "/api/v1/instances/x%00y", `{"system":"shop","app":"cart","group":"blue"}`, 400, "printable"},
		{"PUT", "/api/v1/instances/i1", `{"system":"shop","app":"cart","group":"blue","started_at":"9999-01-01T00:00:00Z"}`, 400, "out of range"},
		{"GET", "/api/v1/operations?limit=-1", ``, 400, "must be a number"},
		{"GET", "/api/v1/operations?limit=100000", ``, 400, "above"},
		{"GET", "/api/v1/effective?group=blue", ``, 400, "needs its system"},
		{"POST", "/api/v1/rollouts", `{"scope":"global"}`, 404, "no version"},
		{"POST", "/api/v1/rollouts", `{"scope":"team:x"}`, 400, "kind must be"},
		{"POST", "/api/v1/rollouts", `{"scope":"global","waves":[{"percent":50,"soak":"1m","failure_budget":1}]}`, 400, "reach 100 percent"},
		{"POST", "/api/v1/rollouts", `{"scope":"global","waves":[{"percent":100,"soak":"soon","failure_budget":1}]}`, 400, "not a duration"},
		{"POST", "/api/v1/rollouts/x/pause", ``, 400, "must be a number"},
		{"POST", "/api/v1/rollouts/7/abort", ``, 404, "not found"},
		{"GET", "/api/v1/rollouts?state=late", ``, 400, "must be running"},
		{"POST", "/api/v1/topology/import", "rules:\n  - match: {}\n    labels: {app: x}\n", 400, "topology.yaml:2:5: rules[0].match: has no pattern"},
	}
	n := len(e.operations())
	for _, c := range cases {
		code, body := e.do(operatorToken, c.method, c.path, c.body)
		if code != c.want || !strings.Contains(body, c.says) {
			t.Errorf("%s %s = %d %.200s, want %d saying %q", c.method, c.path, code, body, c.want, c.says)
		}
	}
	if len(e.operations()) != n {
		t.Error("a refused request was recorded")
	}
}

func TestTopologyImportExportAndView(t *testing.T) {
	e := newEnv(t)
	src := "default:\n  system: shop\n  idc: dc1\nrules:\n  - match: {namespace: shop, pod: cart-*}\n    labels: {app: cart, group: blue, env: prod}\n"
	e.ok("POST", "/api/v1/topology/import", src)
	e.ok("PUT", "/api/v1/instances/c1", `{"system":"shop","app":"cart","group":"blue","node":"n1","pod":"cart-1"}`)
	e.ok("PUT", "/api/v1/instances/c2", `{"system":"shop","app":"cart","group":"blue","node":"n2","pod":"cart-2"}`)
	var view struct {
		Systems []control.System
		Groups  []struct {
			control.Group
			Instances int
		}
	}
	_ = json.Unmarshal([]byte(e.ok("GET", "/api/v1/topology", "")), &view)
	if len(view.Systems) != 1 || len(view.Groups) != 1 || view.Groups[0].Instances != 2 || view.Groups[0].IDC != "dc1" || view.Groups[0].Env != "prod" {
		t.Errorf("topology view = %+v", view)
	}
	var ins []control.Instance
	_ = json.Unmarshal([]byte(e.ok("GET", "/api/v1/instances?node=n2", "")), &ins)
	if len(ins) != 1 || ins[0].ID != "c2" {
		t.Errorf("instances on n2 = %+v", ins)
	}
	out := e.ok("GET", "/api/v1/topology/export", "")
	// The export is a topology file that imports back to the same rules.
	e.ok("POST", "/api/v1/topology/import", out)
	if again := e.ok("GET", "/api/v1/topology/export", ""); again != out || !strings.Contains(out, "pod: cart-*") {
		t.Errorf("export is not stable:\n%s\n---\n%s", out, again)
	}
	var ops []json.RawMessage
	_ = json.Unmarshal([]byte(e.ok("GET", "/api/v1/operations?target=topology", "")), &ops)
	if len(ops) != 2 || !bytes.Contains(ops[1], []byte(`"before": null`)) || !bytes.Contains(ops[1], []byte(`"created": [`)) {
		t.Errorf("topology operations = %s", ops)
	}
}

func TestRolloutEndpoints(t *testing.T) {
	e := newEnv(t)
	e.seed()
	e.ok("POST", "/api/v1/config/group/shop/cart/blue/versions", `{"files":[{"name":"tpflow.yaml","body":"log:\n  level: debug\n"}]}`)
	out := e.ok("POST", "/api/v1/rollouts", `{"scope":"group:shop/cart/blue"}`)
	if !strings.Contains(out, `"soak": "5m0s"`) || !strings.Contains(out, `"state": "running"`) {
		t.Errorf("created rollout with the default waves:\n%s", out)
	}
	if code, body := e.do(operatorToken, "POST", "/api/v1/rollouts", `{"scope":"group:shop/cart/blue"}`); code != http.StatusConflict {
		t.Errorf("second rollout of a scope = %d %s", code, body)
	}
	e.ok("POST", "/api/v1/rollouts/1/pause", "")
	var view struct {
		control.Rollout
		WaveAgents []int `json:"wave_agents"`
	}
	_ = json.Unmarshal([]byte(e.ok("GET", "/api/v1/rollouts/1", "")), &view)
	if view.State != control.RolloutPaused || len(view.Waves) != 3 || view.Waves[0].Soak.Minutes() != 5 || len(view.WaveAgents) != 3 {
		t.Errorf("rollout view = %+v", view)
	}
	var list []control.Rollout
	_ = json.Unmarshal([]byte(e.ok("GET", "/api/v1/rollouts?state=running", "")), &list)
	if len(list) != 0 {
		t.Errorf("running rollouts = %+v", list)
	}
	_ = json.Unmarshal([]byte(e.ok("GET", "/api/v1/rollouts?state=paused,done", "")), &list)
	if len(list) != 1 || list[0].ID != 1 {
		t.Errorf("paused or done rollouts = %+v", list)
	}
	if code, _ := e.do(operatorToken, "POST", "/api/v1/rollouts/1/pause", ""); code != http.StatusConflict {
		t.Errorf("pausing a paused rollout = %d, want 409", code)
	}
}

// TestDriftCountsWhatInstancesRun reports instances of two groups running
// their effective configuration, an older one, or none, and checks the
// counts per group and IDC, a node selector changing one node's effective
// configuration.
func TestDriftCountsWhatInstancesRun(t *testing.T) {
	e := newEnv(t)
	e.seed() // shop/cart/blue in dc1
	e.ok("PUT", "/api/v1/systems/shop/apps/cart/groups/green", `{"env":"prod","idc":"dc2"}`)
	e.ok("POST", "/api/v1/config/global/versions", `{"files":[{"name":"tpflow.yaml","body":"log:\n  level: info\n"}]}`)
	old := control.Hash([]control.File{{Name: "tpflow.yaml", ContentType: control.ContentYAML, Body: "log:\n  level: info\n"}})
	e.ok("POST", "/api/v1/config/group/shop/cart/blue/versions", `{"files":[{"name":"tpflow.yaml","body":"log:\n  level: debug\n"}]}`)
	e.ok("POST", "/api/v1/config/node/node=n9/versions", `{"files":[{"name":"tpflow.yaml","body":"log:\n  format: json\n"}]}`)
	eff := func(q string) string {
		var ans control.Effective
		_ = json.Unmarshal([]byte(e.ok("GET", "/api/v1/effective?"+q, "")), &ans)
		return ans.SHA256
	}
	blue, blue9, green := eff("system=shop&app=cart&group=blue&idc=dc1&env=prod&node=n1"), eff("system=shop&app=cart&group=blue&idc=dc1&env=prod&node=n9"), eff("system=shop&app=cart&group=green&idc=dc2&env=prod&node=n2")
	if green != old || blue == old || blue9 == blue {
		t.Fatalf("effective hashes: blue %s, blue on n9 %s, green %s, global %s", blue, blue9, green, old)
	}
	for id, in := range map[string]string{
		"b1": `"group":"blue","node":"n1","config_version":"` + blue + `"`,
		"b2": `"group":"blue","node":"n1","config_version":"` + old + `"`,
		"b3": `"group":"blue","node":"n9","config_version":"` + blue9 + `"`,
		"b4": `"group":"blue","node":"n9","config_version":"` + blue + `"`,
		"b5": `"group":"blue","node":"n1"`,
		"g1": `"group":"green","node":"n2","config_version":"` + green + `"`,
	} {
		e.ok("PUT", "/api/v1/instances/"+id, `{"system":"shop","app":"cart",`+in+`}`)
	}
	var rows []struct {
		Group, IDC                         string
		Instances, Latest, Behind, Unknown int
		BehindIDs                          []string `json:"behind_ids"`
	}
	_ = json.Unmarshal([]byte(e.ok("GET", "/api/v1/drift", "")), &rows)
	got := fmt.Sprint(rows)
	if want := "[{blue dc1 5 2 2 1 [b2 b4]} {green dc2 1 1 0 0 []}]"; got != want {
		t.Errorf("drift = %s\nwant  %s", got, want)
	}
}
