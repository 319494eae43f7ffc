package main

import (
	"bytes"
	"context"
	"github.com/tpflow/tpflow/internal/cli"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tpflow/tpflow/internal/testkit"
)

func TestControlRefusesToStartWithoutAWriterOrWithABadStore(t *testing.T) {
	dir := t.TempDir()
	for name, auth := range map[string]string{
		"without http.auth": "",
		"with viewers only": "http:\n  auth:\n    tokens:\n      - {name: grafana, role: viewer, token: viewer-token-0123456789}\n",
	} {
		cfg := writeTemp(t, "tpflow.yaml", auth+"control:\n  store: "+filepath.Join(dir, "c.db")+"\n")
		code, _, errOut := runCLI(t, "control", "--config", cfg)
		if code != cli.ExitError || !strings.Contains(errOut, "cannot start the control plane: http.auth has no operator or admin credential") {
			t.Errorf("%s: exit %d, stderr %q", name, code, errOut)
		}
	}
	code, _, errOut := runCLI(t, "control", "--store", "c.db?_pragma=x")
	if code != cli.ExitError || !strings.Contains(errOut, "control.store: SQLite path \"c.db?_pragma=x\": options are set by tpflow, give the path only (set by --store)") {
		t.Errorf("bad --store: exit %d, stderr %q", code, errOut)
	}
}

// TestControlServesTheAPI runs `tpflow control` in-process under the
// shipped defaults but for the store path, the listener and two http.auth
// tokens: it refuses an invalid configuration version with its file and
// line, stores a valid one recorded as its author's, refuses a viewer's
// write, and stops cleanly when told to.
func TestControlServesTheAPI(t *testing.T) {
	addr := testkit.FreeAddr(t)
	store := filepath.Join(t.TempDir(), "state", "control.db")
	cfg := writeTemp(t, "tpflow.yaml", "http:\n  auth:\n    tokens:\n      - {name: olga, role: operator, token: op-token-0123456789}\n      - {name: vic, role: viewer, token: viewer-token-0123456789}\n"+
		"control:\n  store: "+store+"\n  operations:\n    export: false\n")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errOut bytes.Buffer
	go func() { done <- run(ctx, []string{"control", "--config", cfg, "--listen", addr}, io.Discard, &errOut) }()
	send := func(token, method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	testkit.WaitFor(t, 10*time.Second, "control /readyz", func() bool {
		code, _ := send("viewer-token-0123456789", "GET", "/readyz", "")
		return code == http.StatusOK
	})
	post := func(body string) (int, string) {
		return send("op-token-0123456789", "POST", "/api/v1/config/global/versions", body)
	}
	if code, body := post(`{"files":[{"name":"tpflow.yaml","body":"kafka:\n  brokers: []\n  linger: 1s\n"}]}`); code != http.StatusBadRequest || !strings.Contains(body, `tpflow.yaml:3:3: kafka: unknown key \"linger\"`) || !strings.Contains(body, "tpflow.yaml:2:3: kafka.brokers: at least one broker") {
		t.Errorf("invalid version = %d %s", code, body)
	}
	if code, body := post(`{"files":[{"name":"tpflow.yaml","body":"log:\n  level: debug\n"}]}`); code != http.StatusCreated || !strings.Contains(body, `"version": 1`) {
		t.Errorf("valid version = %d %s", code, body)
	}
	if code, body := send("viewer-token-0123456789", "POST", "/api/v1/config/global/versions", `{"files":[{"name":"tpflow.yaml","body":""}]}`); code != http.StatusForbidden {
		t.Errorf("a viewer's write = %d %s, want 403", code, body)
	}
	if code, body := send("viewer-token-0123456789", "GET", "/api/v1/operations", ""); code != http.StatusOK || !strings.Contains(body, `"who": "olga"`) || strings.Contains(body, `"who": "vic"`) {
		t.Errorf("operations = %d %s, want the version recorded as olga's and nothing of vic", code, body)
	}
	// Its /metrics, fleet gauges included, pass promtool.
	for _, w := range [][3]string{
		{"PUT", "/api/v1/systems/shop", `{}`}, {"PUT", "/api/v1/systems/shop/apps/cart", `{}`},
		{"PUT", "/api/v1/systems/shop/apps/cart/groups/blue", `{"idc":"dc1"}`},
		{"PUT", "/api/v1/instances/c1", `{"system":"shop","app":"cart","group":"blue","config_version":"x"}`},
	} {
		if code, body := send("op-token-0123456789", w[0], w[1], w[2]); code != http.StatusOK {
			t.Fatalf("%s %s: %d %s", w[0], w[1], code, body)
		}
	}
	code, metrics := send("viewer-token-0123456789", "GET", "/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics as a viewer = %d %s", code, metrics)
	}
	if !strings.Contains(metrics, `tpflow_control_instances{app="cart",group="blue",idc="dc1",state="behind",system="shop"} 1`) {
		t.Errorf("/metrics lacks the drift of group blue:\n%s", metrics)
	}
	checkMetricsWithPromtool(t, "control", []byte(metrics))
	cancel()
	select {
	case code := <-done:
		if code != cli.ExitOK {
			t.Errorf("exit %d, stderr %s", code, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tpflow control did not stop")
	}
}
