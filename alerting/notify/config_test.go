package notify

import (
	"errors"
	"reflect"
	"testing"

	"github.com/tpflow/tpflow/internal/config"
	"github.com/tpflow/tpflow/schemas"
)

// fields returns the field of every *schemas.FieldError in err, failing on
// any other error: the loader can only place field errors at a line.
func fields(t *testing.T, err error) []string {
	t.Helper()
	var out []string
	for _, e := range config.Flatten(err) {
		var fe *schemas.FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%T is not a *schemas.FieldError: %v", e, e)
		}
		out = append(out, fe.Field)
	}
	return out
}

func TestConfigValidateFieldErrors(t *testing.T) {
	w := DefaultWebhookConfig()
	w.URL, w.Timeout, w.MaxAttempts, w.MaxBackoff, w.QueueSize = "ftp://x", 0, -1, 0, 0
	want := []string{"url", "timeout", "max_attempts", "max_backoff", "queue_size"}
	if got := fields(t, w.Validate()); !reflect.DeepEqual(got, want) {
		t.Errorf("webhook: fields %v, want %v", got, want)
	}
	if _, err := NewWebhook(w, nil, nil, nil); err == nil {
		t.Error("NewWebhook accepted an invalid config")
	}
	a := DefaultAlertmanagerConfig()
	a.URLs, a.BatchSize = []string{"http://am:9093", "am:9093"}, 0
	if got, want := fields(t, a.Validate()), []string{"urls[1]", "batch_size"}; !reflect.DeepEqual(got, want) {
		t.Errorf("alertmanager: fields %v, want %v", got, want)
	}
	a.URLs = nil
	if got, want := fields(t, a.Validate()), []string{"urls", "batch_size"}; !reflect.DeepEqual(got, want) {
		t.Errorf("alertmanager without URLs: fields %v, want %v", got, want)
	}
	if err := DefaultWebhookConfig().Validate(); len(fields(t, err)) != 1 {
		t.Errorf("default webhook without URL: %v, want only the url", err)
	}
}
