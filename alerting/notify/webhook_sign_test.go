package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tpflow/tpflow/internal/config"
)

// TestWebhookReplayRefused captures a signed request and checks what the
// documented verification makes of it: accepted when fresh, refused when
// replayed ten minutes later, with its timestamp moved, its body changed,
// or signed over the body alone.
func TestWebhookReplayRefused(t *testing.T) {
	secret := []byte("s3cret")
	sent := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	var ts, sig string
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		ts, sig, body = r.Header.Get(TimestampHeader), r.Header.Get(SignatureHeader), b
	}))
	defer srv.Close()
	cfg := DefaultWebhookConfig()
	cfg.URL, cfg.Secret = srv.URL, config.Secret(secret)
	w, err := NewWebhook(cfg, srv.Client(), func() time.Time { return sent }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Send(context.Background(), w.Messages([]Alert{testAlert("SlowCheckout", time.Time{})})[0]); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if ts != strconv.FormatInt(sent.Unix(), 10) {
		t.Fatalf("timestamp header %q, want %d", ts, sent.Unix())
	}
	const window = 5 * time.Minute
	if err := VerifySignature(secret, ts, body, sig, sent.Add(30*time.Second), window); err != nil {
		t.Fatalf("fresh request refused: %v", err)
	}
	later := sent.Add(10 * time.Minute)
	if err := VerifySignature(secret, ts, body, sig, later, window); !errors.Is(err, ErrStale) {
		t.Fatalf("replay 10 minutes later: %v, want ErrStale", err)
	}
	if err := VerifySignature(secret, ts, body, sig, sent.Add(-10*time.Minute), window); !errors.Is(err, ErrStale) {
		t.Fatalf("timestamp 10 minutes ahead: %v, want ErrStale", err)
	}
	moved := strconv.FormatInt(later.Unix(), 10)
	if err := VerifySignature(secret, moved, body, sig, later, window); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("replay with a new timestamp: %v, want ErrBadSignature", err)
	}
	changed := append([]byte(nil), body...)
	changed[len(changed)-2] ^= 1
	if err := VerifySignature(secret, ts, changed, sig, sent, window); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("changed body: %v, want ErrBadSignature", err)
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	if err := VerifySignature(secret, ts, body, "sha256="+hex.EncodeToString(m.Sum(nil)), sent, window); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("signature of the body alone: %v, want ErrBadSignature", err)
	}
	if err := VerifySignature([]byte("other"), ts, body, sig, sent, window); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("other secret: %v, want ErrBadSignature", err)
	}
}

// TestWebhookDoesNotFollowRedirect: a 307 from the receiver is a
// permanent failure; the signed body is not posted to where it points.
func TestWebhookDoesNotFollowRedirect(t *testing.T) {
	var elsewhere, first atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first.Add(1)
		http.Redirect(w, r, other.URL+"/hook", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	cfg := DefaultWebhookConfig()
	cfg.URL, cfg.Secret = srv.URL, "s3cret"
	client := srv.Client()
	w, err := NewWebhook(cfg, client, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = w.Send(ctx, w.Messages([]Alert{testAlert("SlowCheckout", time.Time{})})[0])
	if err == nil || ctx.Err() != nil {
		t.Fatalf("Send: %v (context %v), want a failure at once", err, ctx.Err())
	}
	if first.Load() != 1 || elsewhere.Load() != 0 || w.Failed() != 1 || w.Retries() != 0 {
		t.Fatalf("receiver %d, redirect target %d, failed %d, retries %d; want 1, 0, 1, 0",
			first.Load(), elsewhere.Load(), w.Failed(), w.Retries())
	}
	if client.CheckRedirect != nil {
		t.Fatal("the caller's client was changed")
	}
}
