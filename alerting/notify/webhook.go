package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tpflow/tpflow/internal/config"
	"github.com/tpflow/tpflow/pipeline"
	"github.com/tpflow/tpflow/schemas"
)

// Webhook signatures. Each attempt sends the Unix time in seconds in
// TimestampHeader and, in SignatureHeader, "sha256=" and the lower-case
// hex HMAC-SHA256 under the shared secret of the timestamp, ".", and the
// body. The timestamp is signed with the body, so a receiver that refuses
// one outside a window (VerifySignature) refuses a captured request
// replayed later.
const (
	SignatureHeader = "X-Tpflow-Signature"
	TimestampHeader = "X-Tpflow-Timestamp"
)

// DefaultSignatureWindow is the age, and the clock skew, a receiver
// should accept in a signed timestamp.
const DefaultSignatureWindow = 5 * time.Minute

// Errors of VerifySignature.
var (
	ErrBadSignature = errors.New("webhook signature does not match")
	ErrStale        = errors.New("webhook timestamp outside the accepted window")
)

// Sign returns the SignatureHeader value for body sent at ts (Unix
// seconds, as in TimestampHeader) under secret.
func Sign(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature checks a received webhook: sig (SignatureHeader) must be
// the signature of ts (TimestampHeader) and body under secret, compared in
// constant time, and ts must be within window of now either way. It
// returns nil for a valid request, else an error wrapping ErrBadSignature
// or ErrStale.
func VerifySignature(secret []byte, ts string, body []byte, sig string, now time.Time, window time.Duration) error {
	if !hmac.Equal([]byte(sig), []byte(Sign(secret, ts, body))) {
		return ErrBadSignature
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: bad timestamp %q", ErrBadSignature, ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > window || d < -window {
		return fmt.Errorf("%w: sent %s, %s from now", ErrStale, time.Unix(sec, 0).UTC().Format(time.RFC3339), d.Round(time.Second))
	}
	return nil
}

// WebhookConfig configures a webhook sender.
type WebhookConfig struct {
	// Name is the receiver name sent in the payload.
	Name string `yaml:"name"`
	URL  string `yaml:"url"`
	// Secret signs each attempt's timestamp and body (SignatureHeader,
	// TimestampHeader); empty sends no signature. SecretFile, the path of a
	// file holding it, is read instead when set (config.Secret).
	Secret     config.Secret `yaml:"secret"`
	SecretFile string        `yaml:"secret_file"`
	// Timeout bounds one attempt.
	Timeout time.Duration `yaml:"timeout"`
	// MaxAttempts bounds the attempts per message, the first included; 0,
	// the default, retries a retriable failure (network error, 5xx, 429)
	// until the receiver takes the message or the sender stops, while newer
	// alerts wait in the bounded queue.
	MaxAttempts int `yaml:"max_attempts"`
	// MinBackoff is the wait after the first failure; it doubles per
	// failure up to MaxBackoff.
	MinBackoff time.Duration `yaml:"min_backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// QueueSize bounds the alerts waiting to be sent; the oldest are dropped
	// and counted when it overflows.
	QueueSize int `yaml:"queue_size"`
	// BatchSize is the most alerts taken from the queue at once.
	BatchSize int `yaml:"batch_size"`
	// ExternalURL is sent as the payload's externalURL.
	ExternalURL string `yaml:"external_url"`
}

// DefaultWebhookConfig returns a configuration without URL.
func DefaultWebhookConfig() WebhookConfig {
	return WebhookConfig{Name: "webhook", Timeout: 10 * time.Second, MaxAttempts: 0,
		MinBackoff: 500 * time.Millisecond, MaxBackoff: 30 * time.Second, QueueSize: 10000, BatchSize: 256}
}

// WithDefaults returns c with every field left zero set to
// DefaultWebhookConfig's value: a configured webhook names its URL and
// secret and takes the rest.
func (c WebhookConfig) WithDefaults() WebhookConfig {
	d := DefaultWebhookConfig()
	for _, f := range []struct {
		dst *time.Duration
		def time.Duration
	}{{&c.Timeout, d.Timeout}, {&c.MinBackoff, d.MinBackoff}, {&c.MaxBackoff, d.MaxBackoff}} {
		if *f.dst == 0 {
			*f.dst = f.def
		}
	}
	if c.Name == "" {
		c.Name = d.Name
	}
	if c.QueueSize == 0 {
		c.QueueSize = d.QueueSize
	}
	if c.BatchSize == 0 {
		c.BatchSize = d.BatchSize
	}
	return c
}

// Validate reports every value that cannot work, each as a
// *schemas.FieldError.
func (c WebhookConfig) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, schemas.Fieldf(field, format, args...))
	}
	if pu, err := url.Parse(c.URL); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
		add("url", "bad url %q: want http(s)://host/path", c.URL)
	}
	if c.Timeout <= 0 {
		add("timeout", "must be positive, got %s", c.Timeout)
	}
	if c.MaxAttempts < 0 {
		add("max_attempts", "must not be negative, got %d", c.MaxAttempts)
	}
	if c.MinBackoff <= 0 {
		add("min_backoff", "must be positive, got %s", c.MinBackoff)
	}
	if c.MaxBackoff < c.MinBackoff {
		add("max_backoff", "must be at least min_backoff %s, got %s", c.MinBackoff, c.MaxBackoff)
	}
	if c.QueueSize <= 0 {
		add("queue_size", "must be positive, got %d", c.QueueSize)
	}
	if c.BatchSize <= 0 {
		add("batch_size", "must be positive, got %d", c.BatchSize)
	}
	return errors.Join(errs...)
}

// WebhookMessage is Alertmanager's webhook payload (version 4).
type WebhookMessage struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []WebhookAlert    `json:"alerts"`
}

// WebhookAlert is one alert of a WebhookMessage.
type WebhookAlert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// Webhook posts alerts, one message per alertname, to a URL with retries
// and exponential backoff. It follows no redirect: a 3xx answer is a
// failure, so a signed body goes only to the configured URL. Webhook is
// safe for concurrent use.
type Webhook struct {
	cfg    WebhookConfig
	client *http.Client
	log    *slog.Logger
	now    func() time.Time
	q      *queue

	delivered, failed, retries atomic.Uint64
}

// NewWebhook returns a sender. client may be nil for a default client;
// the sender uses a copy of it that follows no redirect. now may be nil
// for time.Now (it also stamps the signatures) and log nil to discard.
func NewWebhook(cfg WebhookConfig, client *http.Client, now func() time.Time, log *slog.Logger) (*Webhook, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("notify: webhook %q: %w", cfg.Name, err)
	}
	c := http.Client{}
	if client != nil {
		c = *client
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Webhook{cfg: cfg, client: &c, log: log, now: now, q: newQueue(cfg.QueueSize, log, cfg.Name)}, nil
}

// Enqueue queues alerts for Run to send; it does not block. Callers must not
// modify as's maps afterwards.
func (w *Webhook) Enqueue(as []Alert) { w.q.push(as) }

// Dropped is the number of alerts dropped because the queue was full.
func (w *Webhook) Dropped() uint64 { return w.q.dropped.Load() }

// Queued is the number of alerts waiting to be sent.
func (w *Webhook) Queued() int { return w.q.len() }

// Delivered is the number of messages the receiver accepted.
func (w *Webhook) Delivered() uint64 { return w.delivered.Load() }

// Failed is the number of messages given up after the last attempt or a
// permanent error.
func (w *Webhook) Failed() uint64 { return w.failed.Load() }

// Retries is the number of attempts after a first failed one.
func (w *Webhook) Retries() uint64 { return w.retries.Load() }

// Run sends queued alerts until ctx ends, then flushes what is queued
// within one Timeout.
func (w *Webhook) Run(ctx context.Context) error {
	return w.q.drain(ctx, w.cfg.BatchSize, w.cfg.Timeout, func(ctx context.Context, as []Alert) {
		for _, msg := range w.Messages(as) {
			if err := w.Send(ctx, msg); err != nil {
				w.log.Warn("cannot deliver webhook", "receiver", w.cfg.Name, "alerts", len(msg.Alerts), "err", err)
			}
		}
	})
}

// Messages groups as by alertname into webhook messages.
func (w *Webhook) Messages(as []Alert) []WebhookMessage {
	now := w.now()
	byName := map[string][]Alert{}
	for _, a := range as {
		byName[a.Labels["alertname"]] = append(byName[a.Labels["alertname"]], a)
	}
	var out []WebhookMessage
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		group := byName[name]
		msg := WebhookMessage{
			Version:           "4",
			GroupKey:          fmt.Sprintf("{}:{alertname=%q}", name),
			Status:            "resolved",
			Receiver:          w.cfg.Name,
			GroupLabels:       map[string]string{"alertname": name},
			CommonLabels:      common(group, func(a Alert) map[string]string { return a.Labels }),
			CommonAnnotations: common(group, func(a Alert) map[string]string { return a.Annotations }),
			ExternalURL:       w.cfg.ExternalURL,
		}
		for _, a := range group {
			wa := WebhookAlert{Status: "firing", Labels: a.Labels, Annotations: a.Annotations, StartsAt: a.StartsAt,
				GeneratorURL: a.GeneratorURL, Fingerprint: fmt.Sprintf("%016x", a.Fingerprint())}
			if wa.Annotations == nil {
				wa.Annotations = map[string]string{}
			}
			if a.Resolved(now) {
				wa.Status, wa.EndsAt = "resolved", a.EndsAt
			} else {
				msg.Status = "firing"
			}
			msg.Alerts = append(msg.Alerts, wa)
		}
		out = append(out, msg)
	}
	return out
}

func common(as []Alert, get func(Alert) map[string]string) map[string]string {
	out := map[string]string{}
	if len(as) == 0 {
		return out
	}
	maps.Copy(out, get(as[0]))
	for _, a := range as[1:] {
		m := get(a)
		for k, v := range out {
			if m[k] != v {
				delete(out, k)
			}
		}
	}
	return out
}

// Send posts msg, retrying network errors, 5xx and 429 responses with
// exponential backoff up to MaxAttempts attempts (without limit for 0).
func (w *Webhook) Send(ctx context.Context, msg WebhookMessage) error {
	body, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("cannot encode webhook message: %w", err)
	}
	b := pipeline.Backoff{Min: w.cfg.MinBackoff, Max: w.cfg.MaxBackoff}
	attempts, err := pipeline.Retry(ctx, &b, w.cfg.MaxAttempts, func() error { return w.post(ctx, body) },
		func(attempt int, pause time.Duration, err error) {
			w.log.Debug("webhook attempt failed, retrying", "receiver", w.cfg.Name, "attempt", attempt, "backoff", pause, "err", err)
			w.retries.Add(1)
		})
	switch {
	case err == nil:
		w.delivered.Add(1)
		return nil
	case ctx.Err() != nil:
		w.failed.Add(1)
		return fmt.Errorf("cannot deliver webhook to %s: %w", config.RedactURL(w.cfg.URL), err)
	}
	w.failed.Add(1)
	return fmt.Errorf("cannot deliver webhook to %s after %d attempts: %w", config.RedactURL(w.cfg.URL), attempts, err)
}

func (w *Webhook) post(ctx context.Context, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return pipeline.Permanent(fmt.Errorf("cannot build request: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	if w.cfg.Secret != "" {
		ts := strconv.FormatInt(w.now().Unix(), 10)
		req.Header.Set(TimestampHeader, ts)
		req.Header.Set(SignatureHeader, Sign([]byte(w.cfg.Secret.Reveal()), ts, body))
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode/100 == 3:
		return pipeline.Permanent(fmt.Errorf("%s: redirect to %q not followed", resp.Status, resp.Header.Get("Location")))
	case resp.StatusCode/100 == 5 || resp.StatusCode == http.StatusTooManyRequests:
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(msg)))
	default:
		return pipeline.Permanent(fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(msg))))
	}
}
