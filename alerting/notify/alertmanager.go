package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tpflow/tpflow/internal/config"
	"github.com/tpflow/tpflow/schemas"
)

// AlertmanagerConfig configures an Alertmanager sender.
type AlertmanagerConfig struct {
	// URLs are the base URLs of the Alertmanagers, e.g.
	// http://am-0:9093. Every alert goes to each of them, as Prometheus
	// does for an HA pair or cluster; Alertmanager deduplicates.
	URLs []string `yaml:"urls"`
	// Timeout bounds one POST to one Alertmanager.
	Timeout time.Duration `yaml:"timeout"`
	// QueueSize bounds the alerts waiting to be sent.
	QueueSize int `yaml:"queue_size"`
	// BatchSize is the most alerts sent in one POST.
	BatchSize int `yaml:"batch_size"`
}

// DefaultAlertmanagerConfig returns the defaults Prometheus uses.
func DefaultAlertmanagerConfig() AlertmanagerConfig {
	return AlertmanagerConfig{Timeout: 10 * time.Second, QueueSize: 10000, BatchSize: 256}
}

// Validate reports every value that cannot work, each as a
// *schemas.FieldError.
func (c AlertmanagerConfig) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, schemas.Fieldf(field, format, args...))
	}
	if len(c.URLs) == 0 {
		add("urls", "at least one URL is required")
	}
	for i, u := range c.URLs {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			add(fmt.Sprintf("urls[%d]", i), "bad URL %q: want http(s)://host:port", u)
		}
	}
	if c.Timeout <= 0 {
		add("timeout", "must be positive, got %s", c.Timeout)
	}
	if c.QueueSize <= 0 {
		add("queue_size", "must be positive, got %d", c.QueueSize)
	}
	if c.BatchSize <= 0 {
		add("batch_size", "must be positive, got %d", c.BatchSize)
	}
	return errors.Join(errs...)
}

// Alertmanager sends alerts to Alertmanagers with POST /api/v2/alerts.
// Resending firing alerts is the alerting manager's job (its resend delay);
// a failed POST is not retried here, the next resend repairs it.
// Alertmanager is safe for concurrent use.
type Alertmanager struct {
	cfg    AlertmanagerConfig
	client *http.Client
	log    *slog.Logger
	q      *queue

	sent, failed atomic.Uint64 // alerts, counted per Alertmanager
}

// NewAlertmanager returns a sender. client may be nil for a default client;
// log may be nil.
func NewAlertmanager(cfg AlertmanagerConfig, client *http.Client, log *slog.Logger) (*Alertmanager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("notify: alertmanager: %w", err)
	}
	if client == nil {
		client = &http.Client{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Alertmanager{cfg: cfg, client: client, log: log, q: newQueue(cfg.QueueSize, log, "alertmanager")}, nil
}

// Enqueue queues alerts for Run to send; it does not block. Enqueue does not
// retain as's maps beyond the send; callers must not modify them afterwards.
func (am *Alertmanager) Enqueue(as []Alert) { am.q.push(as) }

// Dropped is the number of alerts dropped because the queue was full.
func (am *Alertmanager) Dropped() uint64 { return am.q.dropped.Load() }

// Sent is the number of alerts an Alertmanager accepted, counted once per
// Alertmanager.
func (am *Alertmanager) Sent() uint64 { return am.sent.Load() }

// Failed is the number of alerts an Alertmanager did not accept, counted
// once per Alertmanager.
func (am *Alertmanager) Failed() uint64 { return am.failed.Load() }

// Run sends queued alerts until ctx ends, then flushes what is queued.
func (am *Alertmanager) Run(ctx context.Context) error {
	return am.q.drain(ctx, am.cfg.BatchSize, am.cfg.Timeout, func(ctx context.Context, as []Alert) {
		if err := am.Send(ctx, as); err != nil {
			am.log.Warn("cannot send alerts to any alertmanager", "alerts", len(as), "err", err)
		}
	})
}

// Send posts as to every Alertmanager at once. It succeeds when at least
// one accepted them and otherwise returns every error.
func (am *Alertmanager) Send(ctx context.Context, as []Alert) error {
	body, err := json.Marshal(as)
	if err != nil {
		return fmt.Errorf("cannot encode alerts: %w", err)
	}
	errs := make([]error, len(am.cfg.URLs))
	var wg sync.WaitGroup
	for i, u := range am.cfg.URLs {
		wg.Go(func() {
			errs[i] = am.post(ctx, u, body)
			if errs[i] != nil {
				am.failed.Add(uint64(len(as)))
				am.log.Debug("cannot send alerts to alertmanager", "url", config.RedactURL(u), "err", errs[i])
			} else {
				am.sent.Add(uint64(len(as)))
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err == nil {
			return nil
		}
	}
	return errors.Join(errs...)
}

func (am *Alertmanager) post(ctx context.Context, base string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, am.cfg.Timeout)
	defer cancel()
	u := strings.TrimRight(base, "/") + "/api/v2/alerts"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	// Errors name the URL without its password.
	u = config.RedactURL(u)
	if err != nil {
		return fmt.Errorf("cannot build request to %s: %w", u, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := am.client.Do(req)
	if err != nil {
		return fmt.Errorf("cannot post alerts to %s: %w", u, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("cannot post alerts to %s: %s: %s", u, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}
