package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tpflow/tpflow/aggregator/windowsapi"
	"github.com/tpflow/tpflow/control/plane"
	"github.com/tpflow/tpflow/internal/cli"
	"github.com/tpflow/tpflow/internal/devtools/demo"
	"github.com/tpflow/tpflow/internal/testkit"
	"github.com/tpflow/tpflow/pipeline/kafka"
)

// syncBuffer is a buffer safe for the concurrent writes of a running
// role and the test's reads.
type syncBuffer = testkit.Buffer

// freeAddr returns a loopback address nobody listens on now.
var freeAddr = testkit.FreeAddr

func httpGet(url string) (int, []byte, error) { return httpDo(nil, "GET", url, nil) }

// httpDo sends a bodiless request with headers h through c (nil is
// http.DefaultClient) and returns the answer's status and body.
func httpDo(c *http.Client, method, url string, h http.Header) (int, []byte, error) {
	return httpSend(c, method, url, h, "")
}

// httpSend is httpDo with a request body.
func httpSend(c *http.Client, method, url string, h http.Header, reqBody string) (int, []byte, error) {
	if c == nil {
		c = http.DefaultClient
	}
	req, err := http.NewRequest(method, url, strings.NewReader(reqBody))
	if err != nil {
		return 0, nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// runProc is `tpflow run` running in-process for a test.
type runProc struct {
	dir, listen    string
	stdout, stderr syncBuffer
	cancel         context.CancelFunc
	done           chan int
}

// startRun writes config to tpflow.yaml in a fresh directory and runs
// `tpflow run --config FILE --listen ADDR --data-dir DIR args...` in
// process until stop or the end of the test.
func startRun(t *testing.T, config string, args ...string) *runProc {
	t.Helper()
	p := &runProc{dir: t.TempDir(), listen: freeAddr(t), done: make(chan int, 1)}
	cfgPath := filepath.Join(p.dir, "tpflow.yaml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	t.Cleanup(cancel)
	argv := append([]string{"run", "--config", cfgPath, "--listen", p.listen, "--data-dir", p.dir}, args...)
	go func() { p.done <- run(ctx, argv, &p.stdout, &p.stderr) }()
	return p
}

// exitedEarly fails t if run has returned.
func (p *runProc) exitedEarly(t *testing.T) {
	t.Helper()
	select {
	case code := <-p.done:
		t.Fatalf("run exited early with %d:\n%s", code, p.stderr.String())
	default:
	}
}

// stop cancels run and fails t unless it returns 0 within d.
func (p *runProc) stop(t *testing.T, d time.Duration) {
	t.Helper()
	p.cancel()
	select {
	case code := <-p.done:
		if code != cli.ExitOK {
			t.Fatalf("run exited with %d after cancel:\n%s", code, p.stderr.String())
		}
	case <-time.After(d):
		t.Fatalf("run did not stop within %s of cancel", d)
	}
}

// TestRunDemo runs `tpflow run --demo` in-process against the embedded
// broker with 2 s panes, and checks the HTTP API, the incident, the
// ClickHouse warning and a clean stop.
func TestRunDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline for ~20 s")
	}
	noClickHouse := "clickhouse://" + freeAddr(t) + "/tpflow"
	start := time.Now()
	p := startRun(t, "aggregator:\n  pane: 2s\n  windows: [10s, 1m]\n  allowed_lateness: 2s\n  idle_timeout: 4s\n",
		"--demo", "--clickhouse", noClickHouse, "--demo-rate", "4000", "--demo-incident-after", "2s")
	listen, stdout, stderr := p.listen, &p.stdout, &p.stderr

	gen, err := demo.New(demo.DefaultConfig(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, incApp, incMethod := gen.IncidentTarget()
	base := "http://" + listen

	// Poll the 10 s window until the incident method is in it.
	var resp windowsapi.WindowsResponse
	deadline := time.Now().Add(25 * time.Second)
	for {
		p.exitedEarly(t)
		code, body, err := httpGet(base + "/api/v1/windows?window=10s")
		if err == nil && code == 200 {
			if err := json.Unmarshal(body, &resp); err != nil {
				t.Fatalf("bad JSON %v: %s", err, body)
			}
			found := false
			for _, w := range resp.Windows {
				found = found || (w.Key.App == incApp && w.Key.Method == incMethod)
			}
			if len(resp.Windows) > 100 && found {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no windows with the incident method %s/%s after 25 s (last: %d windows, err %v)\nstderr:\n%s",
				incApp, incMethod, len(resp.Windows), err, stderr.String())
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("windows ready after %s: %d keys", time.Since(start).Round(100*time.Millisecond), len(resp.Windows))

	var p99s []float64
	incP99 := 0.0
	for i, w := range resp.Windows {
		if w.Count == 0 || w.QPS <= 0 || w.ErrorRate < 0 || w.ErrorRate > 1 || w.Length() != 10*time.Second ||
			!(w.P50 > 0 && w.P50 <= w.P90 && w.P90 <= w.P99 && w.P99 <= w.P999) ||
			w.P99 > 60e6 || w.AvgUs <= 0 || w.End <= w.Start || w.Key.System == "" || w.Key.Group == "" || w.Key.IDC == "" {
			t.Fatalf("implausible window: %+v", w)
		}
		if i > 0 && w.P99 > resp.Windows[i-1].P99 {
			t.Fatalf("windows not sorted by p99 desc at %d", i)
		}
		if w.Key.App == incApp && w.Key.Method == incMethod {
			incP99 = max(incP99, w.P99)
		} else {
			p99s = append(p99s, w.P99)
		}
	}
	sort.Float64s(p99s)
	median := p99s[len(p99s)/2]
	if incP99 < 3*median {
		t.Fatalf("incident method %s/%s TP99 %.0fµs, median method TP99 %.0fµs: want the incident well above", incApp, incMethod, incP99, median)
	}
	t.Logf("incident TP99 %.1f ms, median method TP99 %.1f ms", incP99/1000, median/1000)

	if code, body, err := httpGet(base + "/api/v1/windows?window=2m"); err != nil || code != 400 || !strings.Contains(string(body), "not a configured window") {
		t.Errorf("unknown window: %d %s %v", code, body, err)
	}
	if code, _, err := httpGet(base + "/healthz"); err != nil || code != 200 {
		t.Errorf("/healthz: %d %v", code, err)
	}
	if code, body, err := httpGet(base + "/readyz"); err != nil || code != 200 {
		t.Errorf("/readyz: %d %s %v", code, body, err)
	}
	if code, body, err := httpGet(base + "/metrics"); err != nil || code != 200 || !strings.Contains(string(body), "tpflow_demo_events_total") {
		t.Errorf("/metrics: %d %v, demo counter missing", code, err)
	}
	if code, _, err := httpGet(base + "/debug/pprof/cmdline"); err != nil || code != 404 {
		t.Errorf("/debug/pprof/cmdline with the default config: %d %v, want 404", code, err)
	}

	p.stop(t, 20*time.Second)
	if n := strings.Count(stderr.String(), "ClickHouse not reachable at "+noClickHouse+": panes are kept in memory only"); n != 1 {
		t.Errorf("want one ClickHouse warning line, got %d:\n%s", n, stderr.String())
	}
	out := stdout.String()
	if !strings.Contains(out, "window=1m keys=") || !strings.Contains(out, "demo=incident:"+incApp+"/"+incMethod) || strings.Contains(out, "\x1b") {
		t.Errorf("live view (plain mode) missing or wrong:\n%s", out)
	}
}
func TestRunBrokerConfig(t *testing.T) {
	// `tpflow run` bounds the broker's retention: 0 (for ever) and values
	// above the bounds become the bounds; smaller values stay.
	b := kafka.DefaultBrokerConfig()
	b.Advertise = "broker-1:9092"
	b.Retention, b.RetentionBytes = 0, 0
	got := runBrokerConfig(b, "data")
	if got.Listen != "127.0.0.1:0" || got.Advertise != "" || got.DataDir != filepath.Join("data", "broker") ||
		got.Retention != runBrokerRetention || got.RetentionBytes != runBrokerRetentionBytes {
		t.Errorf("unbounded: %+v", got)
	}
	b.Retention, b.RetentionBytes = time.Hour, 1<<20
	if got := runBrokerConfig(b, "data"); got.Retention != time.Hour || got.RetentionBytes != 1<<20 {
		t.Errorf("small: %+v", got)
	}
	b.Retention, b.RetentionBytes = 7*24*time.Hour, 1<<40
	if got := runBrokerConfig(b, "data"); got.Retention != runBrokerRetention || got.RetentionBytes != runBrokerRetentionBytes {
		t.Errorf("large: %+v", got)
	}
}

// TestRunServesTheControlPlane runs `tpflow run` with its defaults (no
// http.auth, no ClickHouse) and checks its control plane: an operator
// token in DATA-DIR/control.token, mode 0600, printed as a curl line but
// never itself; a version created with it is listed under /control/api/v1
// and recorded as the local operator's; without it, or with another, 401;
// the rest of the listener stays open.
func TestRunServesTheControlPlane(t *testing.T) {
	p := startRun(t, "", "--clickhouse", "clickhouse://"+freeAddr(t)+"/tpflow", "--no-live")
	base := "http://" + p.listen
	testkit.WaitFor(t, 10*time.Second, "tpflow run /readyz", func() bool {
		p.exitedEarly(t)
		code, _, _ := httpGet(base + "/readyz")
		return code == http.StatusOK
	})
	tokenPath := filepath.Join(p.dir, plane.TokenFile)
	fi, err := os.Stat(tokenPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file %s: %v, %v; want mode 0600", tokenPath, fi, err)
	}
	b, _ := os.ReadFile(tokenPath)
	token := strings.TrimSpace(string(b))
	if len(token) != 64 {
		t.Fatalf("token %q, want 64 hexadecimal digits", token)
	}
	send := func(token, method, path, body string) (int, string) {
		h := http.Header{}
		if token != "" {
			h.Set("Authorization", "Bearer "+token)
		}
		code, out, err := httpSend(nil, method, base+"/control/api/v1"+path, h, body)
		if err != nil {
			return 0, err.Error()
		}
		return code, string(out)
	}
	const version = `{"files":[{"name":"tpflow.yaml","body":"log:\n  level: debug\n"}],"message":"more logs"}`
	for _, tok := range []string{"", strings.Repeat("0", 64)} {
		if code, body := send(tok, "POST", "/config/global/versions", version); code != http.StatusUnauthorized {
			t.Errorf("a write with token %q = %d %s, want 401", tok, code, body)
		}
	}
	if code, body := send(token, "POST", "/config/global/versions", version); code != http.StatusCreated || !strings.Contains(body, `"version": 1`) {
		t.Fatalf("a write with the token = %d %s", code, body)
	}
	if code, body := send(token, "GET", "/config/global/versions", ""); code != http.StatusOK || !strings.Contains(body, `"message": "more logs"`) || !strings.Contains(body, `"author": "`+plane.LocalOperator+`"`) {
		t.Errorf("versions = %d %s, want version 1 by %s", code, body, plane.LocalOperator)
	}
	if code, body := send("", "GET", "/config/global/versions", ""); code != http.StatusUnauthorized {
		t.Errorf("a read without the token = %d %s, want 401", code, body)
	}
	if code, _, err := httpGet(base + "/api/v1/windows"); err != nil || code != http.StatusOK {
		t.Errorf("/api/v1/windows without a token = %d %v, want the rest of the listener open", code, err)
	}
	p.stop(t, 10*time.Second)
	errOut := p.stderr.String()
	if !strings.Contains(errOut, `curl -H "Authorization: Bearer $(cat `+tokenPath+`)" `+base+`/control/api/v1/operations`) || strings.Contains(errOut+p.stdout.String(), token) {
		t.Errorf("stderr lacks the curl line or shows the token:\n%s", errOut)
	}
	if _, err := os.Stat(filepath.Join(p.dir, "control.db")); err != nil {
		t.Errorf("the control store is not in the data directory: %v", err)
	}
}
