package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tpflow/tpflow/internal/testkit"
)

func TestControlRefusesToStartWithoutTokensOrWithABadStore(t *testing.T) {
	dir := t.TempDir()
	cfg := writeTemp(t, "tpflow.yaml", "control:\n  store: "+filepath.Join(dir, "c.db")+"\n")
	code, _, errOut := runCLI(t, "control", "--config", cfg)
	if code != exitError || !strings.Contains(errOut, "control.tokens is empty") {
		t.Errorf("without tokens: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCLI(t, "control", "--store", "c.db?_pragma=x")
	if code != exitError || !strings.Contains(errOut, "control.store: SQLite path \"c.db?_pragma=x\": options are set by tpflow, give the path only (set by --store)") {
		t.Errorf("bad --store: exit %d, stderr %q", code, errOut)
	}
}

// TestControlServesTheAPI runs `tpflow control` in-process under the
// shipped defaults but for the store path, the listener and one token:
// it refuses an invalid configuration version with its file and line,
// stores a valid one, and stops cleanly when told to.
func TestControlServesTheAPI(t *testing.T) {
	addr := testkit.FreeAddr(t)
	store := filepath.Join(t.TempDir(), "state", "control.db")
	cfg := writeTemp(t, "tpflow.yaml", "control:\n  store: "+store+"\n  tokens:\n    - {name: olga, role: operator, token: op-token-0123456789}\n  operations:\n    export: false\n")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var errOut bytes.Buffer
	go func() { done <- run(ctx, []string{"control", "--config", cfg, "--listen", addr}, io.Discard, &errOut) }()
	testkit.WaitFor(t, 10*time.Second, "control /readyz", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	post := func(body string) (int, string) {
		req, _ := http.NewRequest("POST", "http://"+addr+"/api/v1/config/global/versions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer op-token-0123456789")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post(`{"files":[{"name":"tpflow.yaml","body":"kafka:\n  brokers: []\n  linger: 1s\n"}]}`); code != http.StatusBadRequest || !strings.Contains(body, `tpflow.yaml:3:3: kafka: unknown key \"linger\"`) || !strings.Contains(body, "tpflow.yaml:2:3: kafka.brokers: at least one broker") {
		t.Errorf("invalid version = %d %s", code, body)
	}
	if code, body := post(`{"files":[{"name":"tpflow.yaml","body":"log:\n  level: debug\n"}]}`); code != http.StatusCreated || !strings.Contains(body, `"version": 1`) {
		t.Errorf("valid version = %d %s", code, body)
	}
	// Its /metrics, fleet gauges included, pass promtool.
	for _, w := range [][3]string{
		{"PUT", "/api/v1/systems/shop", `{}`}, {"PUT", "/api/v1/systems/shop/apps/cart", `{}`},
		{"PUT", "/api/v1/systems/shop/apps/cart/groups/blue", `{"idc":"dc1"}`},
		{"PUT", "/api/v1/instances/c1", `{"system":"shop","app":"cart","group":"blue","config_version":"x"}`},
	} {
		req, _ := http.NewRequest(w[0], "http://"+addr+w[1], strings.NewReader(w[2]))
		req.Header.Set("Authorization", "Bearer op-token-0123456789")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %v %v", w[0], w[1], resp, err)
		}
		resp.Body.Close()
	}
	metrics := scrape(t, "http://"+addr)
	if !strings.Contains(string(metrics), `tpflow_control_instances{app="cart",group="blue",idc="dc1",state="behind",system="shop"} 1`) {
		t.Errorf("/metrics lacks the drift of group blue:\n%s", metrics)
	}
	checkMetricsWithPromtool(t, "control", metrics)
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("exit %d, stderr %s", code, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tpflow control did not stop")
	}
}
