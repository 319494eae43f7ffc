package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tpflow/tpflow/aggregator"
)

// fakeSource records the last call and returns fixed windows, filtered by
// match as the engine does.
type fakeSource struct {
	windows []aggregator.KeyWindow
	gotD    time.Duration
}

func (f *fakeSource) Windows(match func(aggregator.Key) bool, d time.Duration) []aggregator.KeyWindow {
	f.gotD = d
	var out []aggregator.KeyWindow
	for _, w := range f.windows {
		if match == nil || match(w.Key) {
			out = append(out, w)
		}
	}
	return out
}

func kw(app, method string, p99 float64) aggregator.KeyWindow {
	return aggregator.KeyWindow{
		Key: aggregator.Key{System: "trade", App: app, Group: app + "-prod", IDC: "bj", Method: method},
		WindowStat: aggregator.WindowStat{
			Start: 1700000000000, End: 1700000060000, Count: 600, Errors: 6, QPS: 10, ErrorRate: 0.01,
			AvgUs: p99 / 4, P50: p99 / 5, P90: p99 / 2, P99: p99, P999: p99 * 2,
		},
	}
}

func get(t *testing.T, h http.Handler, url string) (int, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestWindows(t *testing.T) {
	src := &fakeSource{windows: []aggregator.KeyWindow{
		kw("cart", "getCart", 3000), kw("order", "createOrder", 90000), kw("order", "getOrder", 12000),
	}}
	h := Handler(Options{Windows: src, WindowLengths: []time.Duration{time.Minute, 5 * time.Minute}})

	code, body := get(t, h, "/api/v1/windows")
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	var resp WindowsResponse
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	if src.gotD != time.Minute || resp.Window != "1m" {
		t.Fatalf("default window: asked the source for %s, answered %q; want 1m", src.gotD, resp.Window)
	}
	if len(resp.Windows) != 3 || resp.Windows[0].Method != "createOrder" || resp.Windows[2].Method != "getCart" {
		t.Fatalf("want 3 windows sorted by p99 desc, got %+v", resp.Windows)
	}
	w := resp.Windows[0]
	if w.P99Us != 90000 || w.P999Us != 180000 || w.QPS != 10 || w.ErrorRate != 0.01 || w.Count != 600 ||
		w.Group != "order-prod" || w.IDC != "bj" || w.System != "trade" || w.Window != "1m" ||
		!w.Start.Equal(time.UnixMilli(1700000000000)) || !w.End.Equal(time.UnixMilli(1700000060000)) {
		t.Fatalf("fields not carried over: %+v", w)
	}
	for _, field := range []string{"system", "app", "group", "idc", "method", "window", "count", "qps", "error_rate",
		"avg_us", "p50_us", "p90_us", "p99_us", "p999_us", "start", "end"} {
		if !strings.Contains(body, `"`+field+`":`) {
			t.Errorf("field %q missing from %s", field, body)
		}
	}

	code, body = get(t, h, "/api/v1/windows?app=order&window=5m")
	if err := json.Unmarshal([]byte(body), &resp); err != nil || code != 200 {
		t.Fatalf("status %d, %v: %s", code, err, body)
	}
	if src.gotD != 5*time.Minute || len(resp.Windows) != 2 || resp.Windows[0].App != "order" || resp.Windows[1].App != "order" {
		t.Fatalf("app filter with 5m: asked %s, got %+v", src.gotD, resp.Windows)
	}
	_, body = get(t, h, "/api/v1/windows?app=order&method=getOrder")
	if err := json.Unmarshal([]byte(body), &resp); err != nil || len(resp.Windows) != 1 || resp.Windows[0].Method != "getOrder" {
		t.Fatalf("app+method filter: %v %s", err, body)
	}
	// Exact match only: a prefix selects nothing, and the list is [] not null.
	_, body = get(t, h, "/api/v1/windows?app=ord")
	if !strings.Contains(body, `"windows": []`) {
		t.Fatalf("prefix must not match; want an empty list, got %s", body)
	}
}

func TestWindowsBadInput(t *testing.T) {
	h := Handler(Options{Windows: &fakeSource{}, WindowLengths: []time.Duration{time.Minute, 5 * time.Minute}})
	f := func(url, want string) {
		t.Helper()
		code, body := get(t, h, url)
		var e errorResponse
		if code != http.StatusBadRequest || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, want) {
			t.Errorf("GET %s = %d %s, want 400 with %q", url, code, body, want)
		}
	}
	f("/api/v1/windows?window=2m", "2m is not a configured window; use one of 1m, 5m")
	f("/api/v1/windows?window=ten", `cannot parse "ten" as a duration`)
	f("/api/v1/windows?window=-1m", "not a configured window")
}

func TestWindowsDefaultWithout1m(t *testing.T) {
	src := &fakeSource{}
	h := Handler(Options{Windows: src, WindowLengths: []time.Duration{10 * time.Second, 30 * time.Second}})
	if code, body := get(t, h, "/api/v1/windows"); code != 200 || src.gotD != 10*time.Second {
		t.Fatalf("status %d, window %s: %s", code, src.gotD, body)
	}
	if code, _ := get(t, Handler(Options{}), "/api/v1/windows"); code != http.StatusNotFound {
		t.Fatalf("without a source: status %d, want 404", code)
	}
}

func TestHealthAndReady(t *testing.T) {
	var brokerErr error
	h := Handler(Options{Checks: map[string]Check{
		"broker": func(context.Context) error { return brokerErr },
		"engine": func(context.Context) error { return nil },
	}})
	if code, body := get(t, h, "/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	if code, body := get(t, h, "/readyz"); code != 200 || body != "ready\n" {
		t.Fatalf("/readyz = %d %q", code, body)
	}
	brokerErr = errors.New("cannot reach 127.0.0.1:9092")
	code, body := get(t, h, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "broker: cannot reach 127.0.0.1:9092") || strings.Contains(body, "engine") {
		t.Fatalf("/readyz with a failing check = %d %q", code, body)
	}
	// A check that hangs is cut by the timeout.
	h = Handler(Options{CheckTimeout: 50 * time.Millisecond, Checks: map[string]Check{
		"slow": func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() },
	}})
	if code, body := get(t, h, "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "slow: context deadline exceeded") {
		t.Fatalf("/readyz with a hanging check = %d %q", code, body)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "tpflow_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	code, body := get(t, Handler(Options{Gatherer: reg}), "/metrics")
	if code != 200 || !strings.Contains(body, "tpflow_test_total 3") {
		t.Fatalf("/metrics = %d %s", code, body)
	}
	if strings.Contains(body, "go_goroutines") {
		t.Fatalf("/metrics serves the default registry, not the given one")
	}
}

func TestServe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, l, Handler(Options{})) }()
	resp, err := http.Get("http://" + l.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve returned %v after cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

func TestProfiler(t *testing.T) {
	srv := httptest.NewServer(Handler(Options{}))
	defer srv.Close()
	for path, want := range map[string]string{
		"/debug/pprof/":                  "goroutine",
		"/debug/pprof/heap?debug=1":      "heap profile",
		"/debug/pprof/goroutine?debug=1": "goroutine profile",
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, body lacks %q", path, resp.StatusCode, want)
		}
	}
}
