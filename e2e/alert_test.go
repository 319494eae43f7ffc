package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/alerting/notify"
	"github.com/tpflow/tpflow/alerting/notify/amtest"
	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
)

// activeAlerts returns the alerts named name that base lists as active.
func activeAlerts(t *testing.T, base, name string) []amtest.Alert {
	t.Helper()
	var out []amtest.Alert
	for _, a := range amtest.List(t, base, "?active=true&silenced=false&inhibited=false", name) {
		if a.Status.State == "active" && (a.EndsAt.IsZero() || a.EndsAt.After(time.Now())) {
			out = append(out, a)
		}
	}
	return out
}

// hookReceiver is a webhook receiver that checks each body's signature and
// records the alerts it holds; while down it answers 503, or with closed
// set its listener is closed.
type hookReceiver struct {
	secret string
	down   atomic.Bool

	mu     sync.Mutex
	alerts []notify.WebhookAlert
	msgs   int
	badSig int
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if h.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if notify.VerifySignature([]byte(h.secret), r.Header.Get(notify.TimestampHeader), body, r.Header.Get(notify.SignatureHeader), time.Now(), notify.DefaultSignatureWindow) != nil {
		h.badSig++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var msg notify.WebhookMessage
	if err := json.Unmarshal(body, &msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	h.msgs++
	h.alerts = append(h.alerts, msg.Alerts...)
}

// received returns how many alerts the receiver has accepted so far.
func (h *hookReceiver) received() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.alerts)
}

// since returns the alerts named name accepted after the first n.
func (h *hookReceiver) since(n int, name string) []notify.WebhookAlert {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []notify.WebhookAlert
	for _, a := range h.alerts[n:] {
		if a.Labels["alertname"] == name {
			out = append(out, a)
		}
	}
	return out
}

// metric returns the sum of the samples of series that the role listening
// on addr serves on /metrics: series is a metric name (every label set
// counts) or a name with its labels as the exposition format writes them;
// -1 when the role does not answer.
func metric(addr, series string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return -1
	}
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		key, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if name, _, _ := strings.Cut(key, "{"); key == series || name == series {
			var v float64
			if _, err := fmt.Sscan(value, &v); err == nil {
				sum += v
			}
		}
	}
	return sum
}

// counts returns, per alert start and status, how many notifications
// arrived for alertname name.
func (h *hookReceiver) counts(name string) map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]int{}
	for _, a := range h.alerts {
		if a.Labels["alertname"] == name {
			out[fmt.Sprintf("%d %s", a.StartsAt.UnixMilli(), a.Status)]++
		}
	}
	return out
}

// callTraffic produces calls of shop/checkout (methods pay and list) every
// 50 ms with the current time until ctx ends; pay takes slowUs while slow
// is set and 20 ms otherwise.
type callTraffic struct {
	slow   atomic.Bool
	slowUs uint32
}

func (c *callTraffic) run(ctx context.Context, t *testing.T, kcfg kafka.Config) {
	prod, err := kafka.NewProducer(kcfg, kcfg.Topic(kafka.TopicCalls), nil)
	if err != nil {
		t.Error(err)
		return
	}
	defer prod.Close()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var b codec.Builder
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		b.Reset()
		ls := b.LabelSet([]schemas.Label{{Name: schemas.LabelSystem, Value: "shop"}, {Name: schemas.LabelApp, Value: "checkout"},
			{Name: schemas.LabelGroup, Value: "blue"}, {Name: schemas.LabelIDC, Value: "dc1"}})
		pay, list := b.Series(ls, "pay"), b.Series(ls, "list")
		now := time.Now().UnixMilli()
		lat := uint32(20_000)
		if c.slow.Load() {
			lat = c.slowUs
		}
		for i := range 10 {
			b.AddCall(codec.Call{TsUnixMs: now, Series: pay, LatencyUs: lat + uint32(i), OK: true})
			b.AddCall(codec.Call{TsUnixMs: now, Series: list, LatencyUs: 10_000 + uint32(i), OK: true})
		}
		msg := kafkago.Message{Key: kafka.CallKey("shop", "checkout", "pay"), Value: b.AppendTo(nil)}
		if err := prod.Produce(ctx, msg); err != nil && ctx.Err() == nil {
			t.Logf("produce calls: %v", err)
		}
	}
}

const alertRules = `rules:
  - name: CheckoutTP99
    selector: {system: shop, app: checkout}
    measure: tp99
    window: 4s
    op: ">"
    threshold: 500ms
    for: 0s
    by: [system, app]
    labels: {severity: page}
    annotations:
      summary: "TP99 of {{ $labels.app }} is {{ $value }} ms"
`

// TestAlertEndToEnd runs broker, aggregate, sink and alert as processes
// with a real Alertmanager, a signed webhook receiver and ClickHouse, and
// drives latency incidents through them: each incident fires CheckoutTP99
// in Alertmanager with its labels and annotations and resolves after it;
// the time from the incident's first pane to Alertmanager listing the
// alert is measured; the alert role is killed with SIGKILL while an alert
// fires, and the webhook receiver gets no second firing notification from
// the restarted role and exactly one resolve; every state change lands in
// ClickHouse's alerts table.
//
// The third incident is the negative control: the role is killed and its
// state file removed before it restarts. The receiver then does get a
// second firing notification (a new start), while Alertmanager, which keeps
// the earliest startsAt of an alert it already holds, still lists the
// first start: only the receiver side can tell a kept state from a lost one.
func TestAlertEndToEnd(t *testing.T) {
	heavy(t)
	binary(t)
	const pane, lateness = 2 * time.Second, time.Second
	ch := chtest.Start(t)
	am := amtest.Start(t)
	// Every secret the roles hold, to look for in their logs: the webhook
	// secret (in the file), the SASL password of the broker and the
	// roles, and the ClickHouse password (both from password_file).
	// The webhook's and Alertmanager's URLs carry a password too (basic
	// auth that neither receiver here checks).
	const hookSecret, saslPassword, chPassword, urlPassword = "whsec-e2e-7f3a9c", "sasl-e2e-4b1d8e", "chpw-e2e-9c2f61", "urlpw-e2e-5e0a77"
	hook := &hookReceiver{secret: hookSecret}
	hookSrv := httptest.NewServer(hook)
	defer hookSrv.Close()

	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rules, []byte(alertRules), 0o644); err != nil {
		t.Fatal(err)
	}
	const db = "tpflow_alert_e2e"
	ch.AddUsers("writer.xml", []byte(`<yandex><users><tpflow_writer>
		<password>`+chPassword+`</password>
		<networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
		<profile>default</profile><quota>default</quota>
	</tpflow_writer></users></yandex>`), "tpflow_writer", chPassword)
	dsn := strings.Replace(dbDSN(t, ch, db), "clickhouse://", "clickhouse://tpflow_writer@", 1)
	saslFile, chFile := filepath.Join(dir, "sasl-password"), filepath.Join(dir, "ch-password")
	for f, pw := range map[string]string{saslFile: saslPassword, chFile: chPassword} {
		if err := os.WriteFile(f, []byte(pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	brokerAddr := freeAddr(t)
	stateFile := filepath.Join(dir, "alert-state.json")
	cfgFile := filepath.Join(dir, "tpflow.yaml")
	cfg := fmt.Sprintf(`aggregator:
  pane: %s
  windows: [4s, 10s]
  allowed_lateness: %s
  idle_timeout: 2s
kafka:
  brokers: [%q]
  partitions: {calls: 1, logs: 1, metrics: 1, stats: 1, alerts: 1, dlq: 1}
  session_timeout: 6s
  sasl: {mechanism: scram-sha-512, username: tpflow, password_file: %[4]q}
broker:
  sasl: {mechanism: scram-sha-512, username: tpflow, password_file: %[4]q}
clickhouse:
  dsn: %[5]q
  password_file: %[6]q
  batch_age: 200ms
alert:
  rules_files: [%[7]q]
  state_file: %[8]q
  eval_interval: 100ms
  alertmanagers: [%[9]q]
  webhooks: [{url: %[10]q, secret: %[11]s}]
  resend_interval: 10m
`, pane, lateness, brokerAddr, saslFile, dsn, chFile, rules, stateFile,
		strings.Replace(am, "http://", "http://tpflow:"+urlPassword+"@", 1),
		strings.Replace(hookSrv.URL, "http://", "http://tpflow:"+urlPassword+"@", 1), hookSecret)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &pipeline{t: t, dir: dir, brokerAddr: brokerAddr, cfgFile: cfgFile, ch: ch, database: db}
	p.broker = start(t, dir, "broker", "broker", "--config", cfgFile, "--listen", brokerAddr, "--data-dir", filepath.Join(dir, "broker"))
	p.waitPort(brokerAddr)
	p.agg = start(t, dir, "aggregate", "aggregate", "--config", cfgFile, "--listen", freeAddr(t), "--flush-interval", "100ms")
	p.sink = start(t, dir, "sink", "sink", "--config", cfgFile, "--listen", freeAddr(t))
	alertAddr := freeAddr(t)
	alert := start(t, dir, "alert", "alert", "--config", cfgFile, "--listen", alertAddr)

	kcfg := kafka.DefaultConfig()
	kcfg.Brokers = []string{brokerAddr}
	kcfg.SASL = kafka.SASLConfig{Mechanism: kafka.SASLScramSHA512, Username: "tpflow", Password: saslPassword}
	kcfg.Partitions = map[string]int{kafka.TopicCalls: 1, kafka.TopicLogs: 1, kafka.TopicMetrics: 1, kafka.TopicStats: 1, kafka.TopicAlerts: 1, kafka.TopicDLQ: 1}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := kafka.EnsureTopics(ctx, kcfg); err != nil {
		t.Fatal(err)
	}
	traffic := &callTraffic{slowUs: 800_000}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); traffic.run(ctx, t, kcfg) }()
	defer wg.Wait()
	defer cancel()

	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\nalert log:\n%s\naggregate log:\n%s", append(args, alert.tail(), p.agg.tail())...)
	}
	// waitFor polls cond until it holds or fails after timeout.
	waitFor := func(what string, timeout time.Duration, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(timeout); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				fail("%s: not within %s", what, timeout)
			}
		}
	}
	// Normal traffic first, until every role is up and the alert role
	// evaluates windows of it.
	waitFor("the alert role evaluating panes of normal traffic", 60*time.Second, func() bool {
		return metric(alertAddr, `tpflow_alert_panes_total{result="added"}`) > 0 && metric(alertAddr, "tpflow_alert_evaluations_total") > 0
	})
	if n := len(activeAlerts(t, am, "CheckoutTP99")); n != 0 {
		fail("%d alerts before the incident", n)
	}
	if n := hook.received(); n != 0 {
		fail("%d webhook notifications before the incident", n)
	}

	// The second incident restarts the role with its state file, the
	// third without it.
	const incidents, restartKept, restartLost = 3, 1, 2
	var fired, paneFired, resolved []time.Duration
	var starts []time.Time
	var lostStart time.Time // the start the role without state gave the alert
	for i := range incidents {
		// The incident starts on a pane boundary, so its first pane holds
		// only slow calls of pay.
		boundary := time.Now().Truncate(pane).Add(pane)
		time.Sleep(time.Until(boundary))
		traffic.slow.Store(true)
		t0 := time.Now()
		var got []amtest.Alert
		for time.Since(t0) < 30*time.Second {
			if got = activeAlerts(t, am, "CheckoutTP99"); len(got) > 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if len(got) != 1 {
			fail("incident %d: Alertmanager lists %d CheckoutTP99 alerts after 30s", i, len(got))
		}
		d := time.Since(t0)
		fired = append(fired, d)
		paneFired = append(paneFired, time.Since(boundary.Add(pane)))
		a := got[0]
		want := map[string]string{"alertname": "CheckoutTP99", "system": "shop", "app": "checkout", "severity": "page"}
		if fmt.Sprint(a.Labels) != fmt.Sprint(want) {
			t.Errorf("incident %d: labels %v, want %v", i, a.Labels, want)
		}
		if !strings.HasPrefix(a.Annotations["summary"], "TP99 of checkout is 8") {
			t.Errorf("incident %d: summary %q", i, a.Annotations["summary"])
		}
		starts = append(starts, a.StartsAt)

		if i == restartKept || i == restartLost {
			// Kill the alert role while the alert fires, once the webhook
			// has its firing notification, and keep the incident going.
			waitFor(fmt.Sprintf("incident %d: the webhook's firing notification", i), 10*time.Second, func() bool {
				return hook.counts("CheckoutTP99")[fmt.Sprintf("%d firing", a.StartsAt.UnixMilli())] == 1
			})
			before := hook.received()
			alert.kill()
			if i == restartLost {
				if err := os.Remove(stateFile); err != nil {
					t.Fatal(err)
				}
			}
			alert.start()
			// The restarted role evaluates the ongoing incident 30 times (3 s):
			// a role that did not know the alert would have notified it by
			// then (it fires on its second evaluation).
			waitFor(fmt.Sprintf("incident %d: 30 evaluations of the restarted alert role", i), 60*time.Second, func() bool {
				return metric(alertAddr, "tpflow_alert_evaluations_total") >= 30
			})
			got = activeAlerts(t, am, "CheckoutTP99")
			if len(got) != 1 || !got[0].StartsAt.Equal(a.StartsAt) {
				fail("incident %d: after the restart Alertmanager lists %+v; want the alert that started at %s", i, got, a.StartsAt)
			}
			if i == restartKept {
				// The restored alert is neither notified again nor resolved.
				if after := hook.since(before, "CheckoutTP99"); len(after) != 0 {
					fail("incident %d: the restarted role sent %d notifications while the alert kept firing: %+v", i, len(after), after)
				}
				if n := metric(alertAddr, "tpflow_alert_notifications_total"); n != 0 {
					fail("incident %d: the restarted role handed %v alerts to its senders; want 0", i, n)
				}
			} else {
				// Without its state the role starts the alert afresh: the
				// receiver sees a second firing notification with a later
				// start, which Alertmanager's list does not show.
				var after []notify.WebhookAlert
				waitFor(fmt.Sprintf("incident %d: a second firing notification from the role that lost its state", i), 10*time.Second, func() bool {
					after = hook.since(before, "CheckoutTP99")
					return len(after) > 0
				})
				if len(after) != 1 || after[0].Status != "firing" || !after[0].StartsAt.After(a.StartsAt) {
					fail("incident %d: after losing its state the role sent %+v; want one firing notification starting after %s", i, after, a.StartsAt)
				}
				lostStart = after[0].StartsAt
			}
		}

		traffic.slow.Store(false)
		t1 := time.Now()
		for time.Since(t1) < 30*time.Second && len(activeAlerts(t, am, "CheckoutTP99")) > 0 {
			time.Sleep(20 * time.Millisecond)
		}
		if n := len(activeAlerts(t, am, "CheckoutTP99")); n != 0 {
			fail("incident %d: alert still active 30s after it ended", i)
		}
		resolved = append(resolved, time.Since(t1))
	}
	med := func(ds []time.Duration) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[len(s)/2]
	}
	t.Logf("pane %s, allowed lateness %s, eval interval 100ms, aggregator flush 100ms", pane, lateness)
	t.Logf("first slow call → Alertmanager lists the alert: %v (median %v)", fired, med(fired))
	t.Logf("end of the first slow pane → Alertmanager lists the alert: %v (median %v)", paneFired, med(paneFired))
	t.Logf("end of the incident → Alertmanager resolves the alert: %v (median %v)", resolved, med(resolved))
	// The target: at most 2 s beyond the pane and the allowed lateness.
	if m := med(fired); m > pane+lateness+2*time.Second {
		t.Errorf("median time to fire %s > pane + lateness + 2s", m)
	}

	// The webhook saw each incident once firing and once resolved, all
	// signed: no duplicate after the restart, exactly one resolve. The
	// alert the role lost with its state file fired once and was never
	// resolved by tpflow (the receiver lets it expire at its endsAt); the
	// one the role started afresh fired and resolved once.
	want := map[string]int{}
	for i, s := range starts {
		want[fmt.Sprintf("%d firing", s.UnixMilli())] = 1
		if i != restartLost {
			want[fmt.Sprintf("%d resolved", s.UnixMilli())] = 1
		}
	}
	want[fmt.Sprintf("%d firing", lostStart.UnixMilli())] = 1
	want[fmt.Sprintf("%d resolved", lostStart.UnixMilli())] = 1
	var counts map[string]int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if counts = hook.counts("CheckoutTP99"); len(counts) == len(want) {
			break
		}
	}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Errorf("webhook notifications per start and status %v; want %v", counts, want)
	}
	if hook.badSig != 0 {
		t.Errorf("%d webhook bodies with a bad signature", hook.badSig)
	}

	// Every state change is a row of the alerts table.
	conn := openDB(t, ch, db)
	type row struct {
		state, system, app, severity, summary string
	}
	var rows []row
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		rows = rows[:0]
		qr, err := conn.Query(ctx, fmt.Sprintf(`SELECT state, system, app,
			label_values[indexOf(label_names, 'severity')], annotation_values[indexOf(annotation_names, 'summary')]
			FROM %s.alerts FINAL WHERE rule = 'CheckoutTP99' ORDER BY ts, indexOf(['pending', 'firing', 'resolved'], state)`, db))
		if err != nil {
			continue
		}
		for qr.Next() {
			var r row
			if err := qr.Scan(&r.state, &r.system, &r.app, &r.severity, &r.summary); err != nil {
				t.Fatal(err)
			}
			rows = append(rows, r)
		}
		qr.Close()
		if len(rows) >= 3*incidents+2 {
			break
		}
	}
	var states []string
	for _, r := range rows {
		states = append(states, r.state)
		if r.system != "shop" || r.app != "checkout" || r.severity != "page" || !strings.HasPrefix(r.summary, "TP99 of checkout is") {
			t.Errorf("alerts row %+v", r)
		}
	}
	// The role that lost its state started a new alert; the lost one has
	// no resolved row.
	wantStates := strings.Repeat("pending firing resolved ", restartLost) + "pending firing " +
		strings.Repeat("pending firing resolved ", incidents-restartLost)
	if got := strings.Join(states, " ") + " "; got != wantStates {
		t.Errorf("alerts table states %q; want %q\nsink log:\n%s", got, wantStates, p.sink.tail())
	}

	// No log line of any role, of any start, shows a secret, and neither
	// does config print of the configuration they ran with.
	printed := start(t, dir, "config-print", "config", "print", cfgFile)
	printed.wait(30 * time.Second)
	noSecretInLogs(t, []string{hookSecret, saslPassword, chPassword, urlPassword}, p.broker, p.agg, p.sink, alert, printed)
	if out, _ := os.ReadFile(printed.log); !strings.Contains(string(out), "[REDACTED]") {
		t.Errorf("config print shows no redacted secret:\n%s", out)
	}
}
