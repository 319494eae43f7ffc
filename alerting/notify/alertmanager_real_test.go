package notify_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/alerting"
	"github.com/tpflow/tpflow/alerting/notify"
	"github.com/tpflow/tpflow/alerting/notify/amtest"
)

// scriptedSource serves one key whose TP99 the test sets.
type scriptedSource struct {
	mu    sync.Mutex
	key   aggregator.Key
	p99us float64
}

func (s *scriptedSource) set(p99ms float64) {
	s.mu.Lock()
	s.p99us = p99ms * 1000
	s.mu.Unlock()
}

func (s *scriptedSource) stat() aggregator.Window {
	s.mu.Lock()
	defer s.mu.Unlock()
	return aggregator.Window{Count: 1000, P50: s.p99us / 4, P90: s.p99us / 2, P99: s.p99us, P999: s.p99us * 2, QPS: 1000.0 / 60, Keys: 1}
}

func (s *scriptedSource) MergeKeys(match func(aggregator.Key) bool, d time.Duration) aggregator.Window {
	if !match(s.key) {
		return aggregator.Window{}
	}
	return s.stat()
}

func (s *scriptedSource) Windows(match func(aggregator.Key) bool, d time.Duration) []aggregator.Window {
	if match != nil && !match(s.key) {
		return nil
	}
	return []aggregator.Window{aggregator.WithKey(s.stat(), s.key)}
}

func TestRealAlertmanagerTP99Incident(t *testing.T) {
	base := amtest.Start(t)

	rules, err := alerting.ParseRules("incident.yaml", []byte(`
rules:
  - name: CheckoutTP99
    selector: {app: checkout}
    measure: tp99
    window: 1m
    op: ">"
    threshold: 200ms
    for: 20s
    by: [system, app]
    labels: {severity: page}
    annotations:
      summary: "TP99 of {{ $labels.app }} is {{ $value }} ms"
`))
	if err != nil {
		t.Fatal(err)
	}
	var rs alerting.RuleSet
	rs.Set(rules)
	src := &scriptedSource{key: aggregator.Key{System: "shop", App: "checkout", Group: "prod", IDC: "bj", Method: "pay"}}

	amCfg := notify.DefaultAlertmanagerConfig()
	amCfg.URLs = []string{base}
	am, err := notify.NewAlertmanager(amCfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go am.Run(ctx)

	// The evaluation clock runs ten seconds per step from five minutes ago,
	// so the resolved alert's endsAt is in Alertmanager's past.
	now := time.Now().Add(-5 * time.Minute).Truncate(time.Second)
	cfg := alerting.DefaultConfig()
	cfg.Interval, cfg.ResendDelay = 10*time.Second, 15*time.Minute
	var sentMu sync.Mutex
	var sent []notify.Alert
	m, err := alerting.NewManager(cfg, &rs, src, func(_ context.Context, as []alerting.Alert) {
		na := notify.FromAlerts(as, "http://tpflow.example/rules")
		sentMu.Lock()
		sent = append(sent, na...)
		sentMu.Unlock()
		am.Enqueue(na)
	}, func() time.Time { return now }, nil)
	if err != nil {
		t.Fatal(err)
	}
	step := func(p99ms float64) {
		src.set(p99ms)
		m.Tick(ctx)
		now = now.Add(10 * time.Second)
	}

	step(80)
	step(90)
	for range 2 { // the incident starts: pending
		step(600)
	}
	if n := len(amtest.List(t, base, "", "CheckoutTP99")); n != 0 {
		t.Fatalf("a pending alert reached Alertmanager (%d)", n)
	}
	fireAt := time.Now()
	step(650) // 20 s after it started: firing
	var got []amtest.Alert
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if got = amtest.List(t, base, "", "CheckoutTP99"); len(got) > 0 {
			break
		}
	}
	listed := time.Since(fireAt)
	if len(got) != 1 {
		t.Fatalf("Alertmanager lists %d CheckoutTP99 alerts", len(got))
	}
	t.Logf("from the firing evaluation to Alertmanager listing the alert: %s", listed)
	a := got[0]
	wantLabels := map[string]string{"alertname": "CheckoutTP99", "system": "shop", "app": "checkout", "severity": "page"}
	if len(a.Labels) != len(wantLabels) {
		t.Errorf("labels %v; want %v", a.Labels, wantLabels)
	}
	for k, v := range wantLabels {
		if a.Labels[k] != v {
			t.Errorf("label %s = %q; want %q", k, a.Labels[k], v)
		}
	}
	if a.Annotations["summary"] != "TP99 of checkout is 650 ms" || a.Status.State != "active" {
		t.Errorf("annotations %v state %q", a.Annotations, a.Status.State)
	}

	// The incident ends: the next evaluation resolves the alert.
	step(600)
	resolveAt := time.Now()
	step(90)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		got = amtest.List(t, base, "", "CheckoutTP99")
		if len(got) == 0 || (!got[0].EndsAt.IsZero() && got[0].EndsAt.Before(time.Now())) {
			break
		}
	}
	if len(got) > 0 && !got[0].EndsAt.Before(time.Now()) {
		t.Fatalf("alert still active after the incident: %+v", got[0])
	}
	t.Logf("from the resolving evaluation to Alertmanager resolving the alert: %s (listed: %d)", time.Since(resolveAt), len(got))

	sentMu.Lock()
	defer sentMu.Unlock()
	if len(sent) != 2 || sent[0].Resolved(time.Now()) || !sent[1].Resolved(time.Now()) {
		t.Fatalf("sent %+v; want one firing and one resolved notification", sent)
	}
	if sent[0].GeneratorURL != "http://tpflow.example/rules?rule=CheckoutTP99" {
		t.Errorf("generatorURL %q", sent[0].GeneratorURL)
	}
}
