package httpserver

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func get(t *testing.T, h http.Handler, url string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
	return rec.Code, rec.Body.String()
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
	srv := httptest.NewServer(ProfilerHandler())
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

// TestProfilerNeverOnTheMainHandler checks that the role's handler has no
// profiler, and that the profiler's handler serves nothing but it.
func TestProfilerNeverOnTheMainHandler(t *testing.T) {
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline"} {
		if code, _ := get(t, Handler(Options{}), path); code != http.StatusNotFound {
			t.Errorf("GET %s on Handler = %d, want 404", path, code)
		}
	}
	for _, path := range []string{"/metrics", "/healthz"} {
		if code, _ := get(t, ProfilerHandler(), path); code != http.StatusNotFound {
			t.Errorf("GET %s on ProfilerHandler = %d, want 404", path, code)
		}
	}
}

func TestRoutes(t *testing.T) {
	h := Handler(Options{Routes: []Route{{Pattern: "GET /api/v1/x", Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "x")
	})}}})
	if code, body := get(t, h, "/api/v1/x"); code != 200 || body != "x" {
		t.Fatalf("GET /api/v1/x = %d %q, want the route's answer", code, body)
	}
	if code, body := get(t, h, "/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz next to a route = %d %q", code, body)
	}
}

func TestServerTimeouts(t *testing.T) {
	srv := NewServer(http.NotFoundHandler())
	if srv.ReadHeaderTimeout != ReadHeaderTimeout || srv.ReadTimeout != ReadTimeout || srv.WriteTimeout != WriteTimeout || srv.IdleTimeout != IdleTimeout {
		t.Fatalf("timeouts %v %v %v %v, want the package's", srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout)
	}
	// The profiler refuses a profile longer than the write timeout; its
	// default of 30 s must fit.
	if srv.WriteTimeout <= 30*time.Second {
		t.Fatalf("WriteTimeout %v leaves no room for a 30 s CPU profile", srv.WriteTimeout)
	}
}

// TestBounded holds one request in a handler bounded to one: the next is
// answered 503 with Retry-After (the default refusal), and once the first
// is done a new one is served.
func TestBounded(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	h := Bounded(1, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		entered <- struct{}{}
		<-release
	}), nil)
	done := make(chan struct{})
	go func() { get(t, h, "/x"); close(done) }()
	<-entered
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/x", nil))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "1" || !strings.Contains(rec.Body.String(), "/x is serving its limit of 1 requests") {
		t.Errorf("second request: %d Retry-After %q %q", rec.Code, rec.Header().Get("Retry-After"), rec.Body.String())
	}
	close(release)
	<-done
	go func() { <-entered }()
	if code, _ := get(t, h, "/x"); code != http.StatusOK {
		t.Errorf("after the first finished: %d", code)
	}
}
