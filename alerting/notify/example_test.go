package notify_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/tpflow/tpflow/alerting/notify"
)

// A receiver checks each webhook before it trusts it: the signature over
// the timestamp and the body, and a timestamp no more than five minutes
// from its own clock, so that a captured request cannot be replayed later.
func ExampleVerifySignature() {
	secret := []byte("the shared secret") // the webhook's secret in tpflow's configuration
	receiver := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		err = notify.VerifySignature(secret, r.Header.Get(notify.TimestampHeader), body,
			r.Header.Get(notify.SignatureHeader), time.Now(), 5*time.Minute)
		if err != nil {
			http.Error(w, "unauthenticated", http.StatusUnauthorized)
			return
		}
		// body is a notify.WebhookMessage in JSON.
	})

	// A request as tpflow sends it, and the same request replayed ten
	// minutes later.
	body := []byte(`{"version":"4","status":"firing"}`)
	post := func(sent time.Time) int {
		ts := fmt.Sprint(sent.Unix())
		r := httptest.NewRequest(http.MethodPost, "/hook", bytes.NewReader(body))
		r.Header.Set(notify.TimestampHeader, ts)
		r.Header.Set(notify.SignatureHeader, notify.Sign(secret, ts, body))
		w := httptest.NewRecorder()
		receiver.ServeHTTP(w, r)
		return w.Code
	}
	fmt.Println("fresh:", post(time.Now()))
	fmt.Println("replayed:", post(time.Now().Add(-10*time.Minute)))
	// Output:
	// fresh: 200
	// replayed: 401
}
