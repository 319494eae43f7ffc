package notify

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tpflow/tpflow/internal/config"
)

// TestWebhookOutage takes the receiver down for a real minute (its port
// refuses connections) while alerts are queued: after it returns, every
// alert within the queue bound is delivered with a valid signature, and
// the ones the full queue dropped are counted.
func TestWebhookOutage(t *testing.T) {
	t.Parallel()
	const outage = 60 * time.Second
	secret := []byte("0utage")
	var mu sync.Mutex
	var names []string
	var bad int
	var lastAt time.Time
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if VerifySignature(secret, r.Header.Get(TimestampHeader), body, r.Header.Get(SignatureHeader), time.Now(), DefaultSignatureWindow) != nil {
			bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var m WebhookMessage
		if err := json.Unmarshal(body, &m); err != nil {
			t.Error(err)
			return
		}
		for _, a := range m.Alerts {
			names = append(names, a.Labels["alertname"])
		}
		lastAt = time.Now()
	})
	srv := httptest.NewServer(handler)
	addr := srv.Listener.Addr().String()

	cfg := DefaultWebhookConfig()
	cfg.URL, cfg.Secret = srv.URL, config.Secret(secret)
	cfg.QueueSize, cfg.BatchSize = 4, 2
	cfg.Timeout, cfg.MinBackoff, cfg.MaxBackoff = time.Second, 100*time.Millisecond, 2*time.Second
	w, err := NewWebhook(cfg, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	send := func(names ...string) {
		var as []Alert
		for _, n := range names {
			as = append(as, testAlert(n, time.Time{}))
		}
		w.Enqueue(as)
	}
	delivered := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(names)
	}
	send("Before")
	for deadline := time.Now().Add(5 * time.Second); len(delivered()) == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}

	srv.Close() // the port now refuses connections
	down := time.Now()
	send("A1", "A2") // taken at once and retried
	// A1 and A2 must have left the queue and failed once before the next
	// six arrive, or the queue would hold eight and drop other ones.
	for deadline := time.Now().Add(5 * time.Second); (w.Queued() != 0 || w.Retries() == 0) && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if q, r := w.Queued(), w.Retries(); q != 0 || r == 0 {
		t.Fatalf("A1 and A2 not taken and retried 5s after the receiver went down: %d queued, %d retries", q, r)
	}
	send("A3", "A4", "A5", "A6", "A7", "A8") // 6 for a queue of 4: A3 and A4 are dropped
	if w.Dropped() != 2 {
		t.Errorf("dropped %d, want 2", w.Dropped())
	}
	time.Sleep(time.Until(down.Add(outage)))
	if got := delivered(); len(got) != 1 {
		t.Fatalf("delivered during the outage: %v", got)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("cannot listen on %s again: %v", addr, err)
	}
	back := httptest.NewUnstartedServer(handler)
	back.Listener.Close()
	back.Listener = l
	back.Start()
	defer back.Close()
	up := time.Now()

	want := []string{"Before", "A1", "A2", "A5", "A6", "A7", "A8"}
	for deadline := time.Now().Add(15 * time.Second); len(delivered()) < len(want) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	got := delivered()
	if !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
	mu.Lock()
	took, badSigs := lastAt.Sub(up), bad
	mu.Unlock()
	t.Logf("outage %s; everything queued delivered %s after the receiver returned; %d retries", outage, took, w.Retries())
	if badSigs != 0 || w.Failed() != 0 || w.Dropped() != 2 {
		t.Errorf("bad signatures %d, failed %d, dropped %d", badSigs, w.Failed(), w.Dropped())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
