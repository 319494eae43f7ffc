// Package notify sends alerts to Prometheus Alertmanagers (API v2) and to
// generic webhooks in Alertmanager's webhook format. Senders queue: Enqueue
// never blocks the evaluator, and a full queue drops its oldest alerts and
// counts them.
package notify

import (
	"context"
	"hash/fnv"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tpflow/tpflow/alerting"
)

// Alert is an alert as Alertmanager's API v2 receives it. An alert whose
// EndsAt is set and not after now is resolved.
type Alert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// Resolved reports whether a is resolved at now.
func (a *Alert) Resolved(now time.Time) bool {
	return !a.EndsAt.IsZero() && !a.EndsAt.After(now)
}

// Fingerprint identifies a's label set.
func (a *Alert) Fingerprint() uint64 {
	h := fnv.New64a()
	for _, k := range slices.Sorted(maps.Keys(a.Labels)) {
		h.Write([]byte(k))
		h.Write([]byte{0})
		h.Write([]byte(a.Labels[k]))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

// FromAlerts converts the alerting manager's alerts for sending. Each alert's
// generator URL is generatorURL with the rule name in the query parameter
// rule; an empty generatorURL sends none.
func FromAlerts(as []alerting.Alert, generatorURL string) []Alert {
	out := make([]Alert, len(as))
	for i, a := range as {
		out[i] = Alert{
			Labels:      maps.Clone(a.Labels),
			Annotations: maps.Clone(a.Annotations),
			StartsAt:    a.ActiveAt,
			EndsAt:      a.EndsAt(),
		}
		if generatorURL != "" {
			out[i].GeneratorURL = generatorURL + "?rule=" + url.QueryEscape(a.Rule)
		}
	}
	return out
}

// queue is a bounded FIFO of alerts that drops the oldest on overflow.
type queue struct {
	mu      sync.Mutex
	alerts  []Alert
	max     int
	more    chan struct{}
	dropped atomic.Uint64

	log      *slog.Logger
	name     string
	lastWarn time.Time
}

func newQueue(max int, log *slog.Logger, name string) *queue {
	return &queue{max: max, more: make(chan struct{}, 1), log: log, name: name}
}

// push appends as and drops the oldest alerts beyond the bound; a warning
// is logged at most every 10 s so an overflow cannot flood the log.
func (q *queue) push(as []Alert) {
	q.mu.Lock()
	q.alerts = append(q.alerts, as...)
	var drop int
	if n := len(q.alerts); n > q.max {
		drop = n - q.max
		q.alerts = slices.Delete(q.alerts, 0, drop)
	}
	warn := false
	if drop > 0 {
		q.dropped.Add(uint64(drop))
		if now := time.Now(); now.Sub(q.lastWarn) >= 10*time.Second {
			q.lastWarn = now
			warn = true
		}
	}
	q.mu.Unlock()
	if warn {
		q.log.Warn("notification queue full, dropped oldest alerts", "receiver", q.name,
			"dropped", drop, "dropped_total", q.dropped.Load(), "capacity", q.max)
	}
	select {
	case q.more <- struct{}{}:
	default:
	}
}

// pop takes up to n alerts; it returns nil when the queue is empty.
func (q *queue) pop(n int) []Alert {
	q.mu.Lock()
	defer q.mu.Unlock()
	n = min(n, len(q.alerts))
	if n == 0 {
		return nil
	}
	out := slices.Clone(q.alerts[:n])
	q.alerts = slices.Delete(q.alerts, 0, n)
	return out
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.alerts)
}

// drain sends batches of up to batch alerts with send until ctx ends; at the
// end it tries once more to send what is queued, within flushTimeout.
func (q *queue) drain(ctx context.Context, batch int, flushTimeout time.Duration, send func(context.Context, []Alert)) error {
	for {
		for {
			as := q.pop(batch)
			if as == nil {
				break
			}
			send(ctx, as)
			if ctx.Err() != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
			defer cancel()
			for as := q.pop(batch); as != nil && fctx.Err() == nil; as = q.pop(batch) {
				send(fctx, as)
			}
			return nil
		case <-q.more:
		}
	}
}
