package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tpflow/tpflow/internal/config"
)

func testAlert(name string, ends time.Time) Alert {
	return Alert{
		Labels:      map[string]string{"alertname": name, "app": "checkout", "severity": "page"},
		Annotations: map[string]string{"summary": "slow"},
		StartsAt:    time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC),
		EndsAt:      ends,
	}
}

func TestWebhookSignatureAndRetries(t *testing.T) {
	secret := []byte("s3cret")
	now := time.Date(2026, 1, 1, 12, 5, 0, 0, time.UTC)
	var calls atomic.Int32
	var mu sync.Mutex
	var got []WebhookMessage
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := VerifySignature(secret, r.Header.Get(TimestampHeader), body, r.Header.Get(SignatureHeader), now, DefaultSignatureWindow); err != nil {
			t.Errorf("signature %q: %v", r.Header.Get(SignatureHeader), err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if calls.Add(1) <= 2 {
			http.Error(w, "try later", http.StatusInternalServerError)
			return
		}
		var m WebhookMessage
		if err := json.Unmarshal(body, &m); err != nil {
			t.Error(err)
		}
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	}))
	defer srv.Close()

	cfg := DefaultWebhookConfig()
	cfg.URL, cfg.Secret = srv.URL, config.Secret(secret)
	cfg.MinBackoff, cfg.MaxBackoff = time.Millisecond, 4*time.Millisecond
	w, err := NewWebhook(cfg, srv.Client(), func() time.Time { return now }, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	w.Enqueue([]Alert{testAlert("SlowCheckout", now.Add(time.Hour)), testAlert("SlowCheckout", now.Add(-time.Minute))})

	deadline := time.Now().Add(5 * time.Second)
	for w.Delivered() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if w.Delivered() != 1 || w.Retries() != 2 || calls.Load() != 3 || w.Failed() != 0 {
		t.Fatalf("delivered %d retries %d calls %d failed %d", w.Delivered(), w.Retries(), calls.Load(), w.Failed())
	}
	m := got[0]
	if m.Version != "4" || m.Status != "firing" || m.Receiver != "webhook" || m.GroupLabels["alertname"] != "SlowCheckout" ||
		m.CommonLabels["app"] != "checkout" || m.CommonAnnotations["summary"] != "slow" || len(m.Alerts) != 2 {
		t.Fatalf("message %+v", m)
	}
	if m.Alerts[0].Status != "firing" || m.Alerts[1].Status != "resolved" || !m.Alerts[1].EndsAt.Equal(now.Add(-time.Minute)) {
		t.Fatalf("alerts %+v", m.Alerts)
	}
}

func TestWebhookGivesUp(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		code := http.StatusServiceUnavailable
		if r.URL.Path == "/bad" {
			code = http.StatusBadRequest
		}
		w.WriteHeader(code)
	}))
	defer srv.Close()
	for _, tc := range []struct {
		path      string
		wantCalls int32
	}{{"/down", 3}, {"/bad", 1}} { // 4xx is not retried
		calls.Store(0)
		cfg := DefaultWebhookConfig()
		cfg.URL = srv.URL + tc.path
		cfg.MaxAttempts, cfg.MinBackoff, cfg.MaxBackoff = 3, time.Millisecond, time.Millisecond
		w, err := NewWebhook(cfg, srv.Client(), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = w.Send(context.Background(), w.Messages([]Alert{testAlert("A", time.Time{})})[0])
		if err == nil || calls.Load() != tc.wantCalls || w.Failed() != 1 {
			t.Fatalf("%s: err %v calls %d failed %d", tc.path, err, calls.Load(), w.Failed())
		}
	}
}

func TestWebhookTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	cfg := DefaultWebhookConfig()
	cfg.URL, cfg.Timeout, cfg.MaxAttempts = srv.URL, 20*time.Millisecond, 1
	w, err := NewWebhook(cfg, srv.Client(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := w.Send(context.Background(), w.Messages([]Alert{testAlert("A", time.Time{})})[0]); err == nil {
		t.Fatal("no error from a receiver that never answers")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("send took %s", d)
	}
}

func TestQueueOverflowCounted(t *testing.T) {
	cfg := DefaultWebhookConfig()
	cfg.URL, cfg.QueueSize = "http://127.0.0.1:1/hook", 3
	w, err := NewWebhook(cfg, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		w.Enqueue([]Alert{testAlert(string(rune('A'+i)), time.Time{})})
	}
	if w.Dropped() != 2 || w.Queued() != 3 {
		t.Fatalf("dropped %d queued %d; want 2, 3", w.Dropped(), w.Queued())
	}
	// The oldest were dropped.
	if as := w.q.pop(10); as[0].Labels["alertname"] != "C" {
		t.Fatalf("kept %v first", as[0].Labels)
	}
}

func TestAlertmanagerHA(t *testing.T) {
	var got atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/v2/alerts" {
			t.Errorf("%s %s", r.Method, r.URL.Path)
		}
		var as []Alert
		if err := json.NewDecoder(r.Body).Decode(&as); err != nil || len(as) != 1 || as[0].Labels["alertname"] != "A" {
			t.Errorf("alerts %+v err %v", as, err)
		}
		got.Add(1)
	}))
	defer up.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer down.Close()
	cfg := DefaultAlertmanagerConfig()
	cfg.URLs = []string{up.URL, down.URL}
	am, err := NewAlertmanager(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := am.Send(context.Background(), []Alert{testAlert("A", time.Time{})}); err != nil {
		t.Fatalf("one Alertmanager up is success: %v", err)
	}
	if got.Load() != 1 || am.Sent() != 1 || am.Failed() != 1 {
		t.Fatalf("got %d sent %d failed %d", got.Load(), am.Sent(), am.Failed())
	}
	cfg.URLs = []string{down.URL}
	am, _ = NewAlertmanager(cfg, nil, nil)
	if err := am.Send(context.Background(), []Alert{testAlert("A", time.Time{})}); err == nil {
		t.Fatal("no error when every Alertmanager fails")
	}
}

func TestWebhookConfigWithDefaults(t *testing.T) {
	d := DefaultWebhookConfig()
	got := WebhookConfig{URL: "https://hooks.example.net/x", Secret: "s", MaxBackoff: time.Minute, BatchSize: 3}.WithDefaults()
	want := d
	want.URL, want.Secret, want.MaxBackoff, want.BatchSize = "https://hooks.example.net/x", "s", time.Minute, 3
	if got != want {
		t.Errorf("WithDefaults:\n got %+v\nwant %+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("a webhook with a URL and the defaults: %v", err)
	}
}
