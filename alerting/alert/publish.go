package alert

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/alerting"
	"github.com/tpflow/tpflow/internal/promreg"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

// publishQueue bounds the state-change batches waiting for the alerts
// topic; when Kafka is slower than the evaluations, the newest are dropped
// and counted rather than holding the evaluator up.
const publishQueue = 1024

// publishWait is how long an evaluation waits for its state changes to be
// written before it notifies: a change is written before its notification
// leaves unless Kafka is slow, so a crash right after a notification does
// not lose the change.
const publishWait = time.Second

// pubItem is the state changes of one evaluation; done is closed once they
// are written or dropped.
type pubItem struct {
	as   []alerting.Alert
	done chan struct{}
}

// publisher writes every alert state change to the alerts topic, one
// EventBatch per evaluation.
type publisher struct {
	prod     *kafka.Producer
	log      *slog.Logger
	producer string
	q        chan pubItem
	dropped  prometheus.Counter
	written  prometheus.Counter
}

func newPublisher(prod *kafka.Producer, reg prometheus.Registerer, log *slog.Logger) (*publisher, error) {
	host, _ := os.Hostname()
	p := &publisher{
		prod: prod, log: log, q: make(chan pubItem, publishQueue),
		producer: fmt.Sprintf("%s/alert/%d", host, os.Getpid()),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tpflow_alert_changes_dropped_total", Help: "Alert state changes not written to the alerts topic because its queue was full.",
		}),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tpflow_alert_changes_written_total", Help: "Alert state changes written to the alerts topic.",
		}),
	}
	if err := promreg.RegisterAll(reg, &p.dropped, &p.written); err != nil {
		return nil, err
	}
	return p, nil
}

// enqueue queues the state changes of one evaluation and waits up to
// publishWait for them to be written.
func (p *publisher) enqueue(ctx context.Context, as []alerting.Alert) {
	it := pubItem{as: as, done: make(chan struct{})}
	select {
	case p.q <- it:
	default:
		p.dropped.Add(float64(len(as)))
		return
	}
	t := time.NewTimer(publishWait)
	defer t.Stop()
	select {
	case <-it.done:
	case <-t.C:
	case <-ctx.Done():
	}
}

// run writes queued changes until ctx is done, then what is still queued
// within a few seconds.
func (p *publisher) run(ctx context.Context) {
	for {
		select {
		case it := <-p.q:
			p.write(ctx, it.as)
			close(it.done)
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			for {
				select {
				case it := <-p.q:
					p.write(fctx, it.as)
					close(it.done)
				default:
					return
				}
			}
		}
	}
}

func (p *publisher) write(ctx context.Context, as []alerting.Alert) {
	value, err := encodeAlerts(as, time.Now(), p.producer)
	if err != nil {
		p.dropped.Add(float64(len(as)))
		p.log.Warn("cannot encode alert state changes", "err", err)
		return
	}
	if err := p.prod.Produce(ctx, kafkago.Message{Key: []byte(as[0].Rule), Value: value}); err != nil {
		p.dropped.Add(float64(len(as)))
		p.log.Warn("cannot write alert state changes", "alerts", len(as), "err", err)
		return
	}
	p.written.Add(float64(len(as)))
}

// encodeAlerts encodes state changes as one EventBatch. An alert's label set
// is its full label set (alertname, by labels, the rule's labels), so the
// sink fills system, app, group and idc from it; its fingerprint is the
// hexadecimal FNV-1a hash of the sorted labels, as the notifiers compute it.
func encodeAlerts(as []alerting.Alert, eval time.Time, producer string) ([]byte, error) {
	var b codec.Builder
	b.SetProducer(producer)
	for _, a := range as {
		ls := make([]schemas.Label, 0, len(a.Labels))
		for _, k := range slices.Sorted(maps.Keys(a.Labels)) {
			ls = append(ls, schemas.Label{Name: k, Value: a.Labels[k]})
		}
		pa := &tpflowpb.Alert{
			Rule: a.Rule, Labels: b.LabelSet(ls), Annotations: a.Annotations,
			State: alertState(a.State), Value: a.Value,
			ActiveAtUnixMs: unixMs(a.ActiveAt), FiredAtUnixMs: unixMs(a.FiredAt), ResolvedAtUnixMs: unixMs(a.ResolvedAt),
			EvalUnixMs:  eval.UnixMilli(),
			Fingerprint: strconv.FormatUint(labelsFingerprint(a.Labels), 16),
		}
		if err := b.AddAlert(pa); err != nil {
			return nil, fmt.Errorf("cannot encode alert %q: %w", a.Rule, err)
		}
	}
	return b.AppendTo(nil), nil
}

func labelsFingerprint(ls map[string]string) uint64 {
	h := fnv.New64a()
	for _, k := range slices.Sorted(maps.Keys(ls)) {
		h.Write([]byte(k))
		h.Write([]byte{0})
		h.Write([]byte(ls[k]))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

func unixMs(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func alertState(s alerting.State) tpflowpb.AlertState {
	switch s {
	case alerting.StatePending:
		return tpflowpb.AlertState_ALERT_STATE_PENDING
	case alerting.StateFiring:
		return tpflowpb.AlertState_ALERT_STATE_FIRING
	case alerting.StateResolved:
		return tpflowpb.AlertState_ALERT_STATE_RESOLVED
	}
	return tpflowpb.AlertState_ALERT_STATE_INACTIVE
}
