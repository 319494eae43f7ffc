package windowsapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tpflow/tpflow/aggregator"
)

// fakeSource records the last call and returns fixed windows, filtered by
// match as the engine does.
type fakeSource struct {
	windows []aggregator.Window
	gotD    time.Duration
}

func (f *fakeSource) Windows(match func(aggregator.Key) bool, d time.Duration) []aggregator.Window {
	f.gotD = d
	var out []aggregator.Window
	for _, w := range f.windows {
		if match == nil || match(w.Key) {
			out = append(out, w)
		}
	}
	return out
}

func kw(app, method string, p99 float64) aggregator.Window {
	return aggregator.Window{
		Key:   aggregator.Key{System: "trade", App: app, Group: app + "-prod", IDC: "bj", Method: method},
		Start: 1700000000000, End: 1700000060000, Count: 600, Errors: 6, QPS: 10, ErrorRate: 0.01,
		AvgUs: p99 / 4, P50: p99 / 5, P90: p99 / 2, P99: p99, P999: p99 * 2,
	}
}

// mux serves the handler under Path, as a role mounts it.
func mux(src WindowSource, lengths []time.Duration) http.Handler {
	m := http.NewServeMux()
	m.Handle(Path, Handler(src, lengths))
	return m
}

func get(t *testing.T, h http.Handler, url string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
	return rec.Code, rec.Body.String()
}

func TestWindows(t *testing.T) {
	src := &fakeSource{windows: []aggregator.Window{
		kw("cart", "getCart", 3000), kw("order", "createOrder", 90000), kw("order", "getOrder", 12000),
	}}
	h := mux(src, []time.Duration{time.Minute, 5 * time.Minute})

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
	if len(resp.Windows) != 3 || resp.Windows[0].Key.Method != "createOrder" || resp.Windows[2].Key.Method != "getCart" {
		t.Fatalf("want 3 windows sorted by p99 desc, got %+v", resp.Windows)
	}
	w := resp.Windows[0]
	if w.P99 != 90000 || w.P999 != 180000 || w.QPS != 10 || w.ErrorRate != 0.01 || w.Count != 600 ||
		w.Key.Group != "order-prod" || w.Key.IDC != "bj" || w.Key.System != "trade" || w.Length() != time.Minute || !strings.Contains(body, `"window": "1m"`) ||
		w.Start != 1700000000000 || w.End != 1700000060000 {
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
	if src.gotD != 5*time.Minute || len(resp.Windows) != 2 || resp.Windows[0].Key.App != "order" || resp.Windows[1].Key.App != "order" {
		t.Fatalf("app filter with 5m: asked %s, got %+v", src.gotD, resp.Windows)
	}
	_, body = get(t, h, "/api/v1/windows?app=order&method=getOrder")
	if err := json.Unmarshal([]byte(body), &resp); err != nil || len(resp.Windows) != 1 || resp.Windows[0].Key.Method != "getOrder" {
		t.Fatalf("app+method filter: %v %s", err, body)
	}
	// Exact match only: a prefix selects nothing, and the list is [] not null.
	_, body = get(t, h, "/api/v1/windows?app=ord")
	if !strings.Contains(body, `"windows": []`) {
		t.Fatalf("prefix must not match; want an empty list, got %s", body)
	}
}

func TestWindowsBadInput(t *testing.T) {
	h := mux(&fakeSource{}, []time.Duration{time.Minute, 5 * time.Minute})
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
	f("/api/v1/windows?limit=0", "limit: want a whole number from 1 to 10000")
	f("/api/v1/windows?limit=10001", "limit: want a whole number from 1 to 10000")
	f("/api/v1/windows?limit=ten", `got "ten"`)
}

func TestWindowsDefaultWithout1m(t *testing.T) {
	src := &fakeSource{}
	h := mux(src, []time.Duration{10 * time.Second, 30 * time.Second})
	if code, body := get(t, h, "/api/v1/windows"); code != 200 || src.gotD != 10*time.Second {
		t.Fatalf("status %d, window %s: %s", code, src.gotD, body)
	}
}

// TestWindowsLimit checks that an answer holds at most limit windows, the
// slowest, and counts every matching key; the default bounds it too.
func TestWindowsLimit(t *testing.T) {
	src := &fakeSource{}
	for i := range DefaultLimit + 5 {
		src.windows = append(src.windows, kw("app", "m"+strconv.Itoa(i), float64(i)))
	}
	h := mux(src, []time.Duration{time.Minute})
	var resp WindowsResponse
	_, body := get(t, h, "/api/v1/windows?limit=3")
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Total != DefaultLimit+5 || resp.Limit != 3 || len(resp.Windows) != 3 || resp.Windows[0].P99 != DefaultLimit+4 || resp.Windows[2].P99 != DefaultLimit+2 {
		t.Fatalf("limit=3: total %d, limit %d, %d windows from p99 %v; want the 3 slowest of %d", resp.Total, resp.Limit, len(resp.Windows), resp.Windows[0].P99, DefaultLimit+5)
	}
	_, body = get(t, h, "/api/v1/windows")
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	if len(resp.Windows) != DefaultLimit || resp.Total != DefaultLimit+5 {
		t.Fatalf("default: %d windows of %d, want %d", len(resp.Windows), resp.Total, DefaultLimit)
	}
}

// blockingSource holds every Windows call until release is closed.
type blockingSource struct {
	started chan struct{}
	release chan struct{}
}

func (b *blockingSource) Windows(func(aggregator.Key) bool, time.Duration) []aggregator.Window {
	b.started <- struct{}{}
	<-b.release
	return nil
}

// TestWindowsConcurrencyLimit holds MaxConcurrent requests in the engine:
// the next is answered 503 with Retry-After at once, and the held ones
// finish once the engine answers.
func TestWindowsConcurrencyLimit(t *testing.T) {
	src := &blockingSource{started: make(chan struct{}, MaxConcurrent), release: make(chan struct{})}
	h := mux(src, []time.Duration{time.Minute})
	codes := make(chan int, MaxConcurrent)
	for range MaxConcurrent {
		go func() { code, _ := get(t, h, "/api/v1/windows"); codes <- code }()
	}
	for range MaxConcurrent {
		<-src.started
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/v1/windows", nil))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "1" || !strings.Contains(rec.Body.String(), "limit of 2 requests") {
		t.Errorf("request %d: %d Retry-After %q %s, want 503 with Retry-After", MaxConcurrent+1, rec.Code, rec.Header().Get("Retry-After"), rec.Body.String())
	}
	close(src.release)
	for range MaxConcurrent {
		if c := <-codes; c != http.StatusOK {
			t.Errorf("a held request answered %d", c)
		}
	}
}
