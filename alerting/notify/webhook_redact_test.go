package notify

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestWebhookErrorsHideTheURLPassword sends to a receiver whose URL holds
// a password and that fails every attempt: neither the error nor any log
// line shows the password.
func TestWebhookErrorsHideTheURLPassword(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	cfg := DefaultWebhookConfig()
	cfg.URL = strings.Replace(srv.URL, "http://", "http://alerts:hunter2-url-pw@", 1) + "/hook"
	cfg.MaxAttempts, cfg.MinBackoff, cfg.MaxBackoff = 2, time.Millisecond, time.Millisecond
	var logs bytes.Buffer
	w, err := NewWebhook(cfg, srv.Client(), nil, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	err = w.Send(context.Background(), w.Messages([]Alert{testAlert("SlowCheckout", time.Time{})})[0])
	if err == nil {
		t.Fatal("Send to a failing receiver succeeded")
	}
	if strings.Contains(err.Error()+logs.String(), "hunter2-url-pw") || !strings.Contains(err.Error(), "alerts:") {
		t.Errorf("error %q, logs %q: want the user and not the password", err, logs.String())
	}
	if w.Retries() != 1 {
		t.Errorf("retries %d, want 1 (the logged attempt)", w.Retries())
	}
}

// TestAlertmanagerErrorsHideTheURLPassword is the same for an Alertmanager
// URL with basic auth in it.
func TestAlertmanagerErrorsHideTheURLPassword(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	cfg := DefaultAlertmanagerConfig()
	cfg.URLs = []string{strings.Replace(srv.URL, "http://", "http://am:hunter2-am-pw@", 1)}
	var logs bytes.Buffer
	am, err := NewAlertmanager(cfg, srv.Client(), slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	err = am.Send(context.Background(), []Alert{testAlert("SlowCheckout", time.Time{})})
	if err == nil {
		t.Fatal("Send to a failing Alertmanager succeeded")
	}
	if strings.Contains(err.Error()+logs.String(), "hunter2-am-pw") || !strings.Contains(logs.String(), "cannot send alerts") {
		t.Errorf("error %q, logs %q: want the failure logged without the password", err, logs.String())
	}
}
