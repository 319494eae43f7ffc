package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/alerting"
	"github.com/tpflow/tpflow/alerting/notify"
	"github.com/tpflow/tpflow/internal/testkit"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/pipeline/kafka/kafkatest"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

const tp99Rules = `rules:
  - name: CheckoutTP99High
    selector:
      system: shop
      app: checkout
    measure: tp99
    window: 1m
    op: ">"
    threshold: 500ms
    for: 0s
    labels:
      severity: page
    annotations:
      summary: "TP99 of {{ $labels.method }} is {{ $value }} ms"
`

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// statsBatch encodes one stats message holding, for each method, a pane of
// 100 calls at latencyUs starting at each of starts.
func statsBatch(t *testing.T, paneMs int64, starts []int64, methods map[string]float64) []byte {
	t.Helper()
	var b codec.Builder
	ls := b.LabelSet([]schemas.Label{
		{Name: schemas.LabelApp, Value: "checkout"},
		{Name: schemas.LabelGroup, Value: "blue"},
		{Name: schemas.LabelIDC, Value: "dc1"},
		{Name: schemas.LabelSystem, Value: "shop"},
	})
	for _, start := range starts {
		for method, us := range methods {
			p := &tpflowpb.PaneStat{
				Labels: ls, Method: b.Symbol(method),
				PaneStartUnixMs: start, PaneMs: uint32(paneMs), Version: 100,
				Count: 100, SumUs: 100 * us, MinUs: us, MaxUs: us,
				P50Us: us, P90Us: us, P99Us: us, P999Us: us,
				CentroidMeans: []float64{us}, CentroidWeights: []float64{100},
			}
			if err := b.AddPane(p); err != nil {
				t.Fatal(err)
			}
		}
	}
	return b.AppendTo(nil)
}

// amStub is an Alertmanager API v2 stub that passes every posted alert on.
func amStub(t *testing.T) (*httptest.Server, <-chan notify.Alert) {
	t.Helper()
	ch := make(chan notify.Alert, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/api/v2/alerts" {
			http.NotFound(w, r)
			return
		}
		var as []notify.Alert
		if err := json.NewDecoder(r.Body).Decode(&as); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, a := range as {
			select {
			case ch <- a:
			default:
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv, ch
}

func startBroker(t *testing.T) kafka.Config {
	t.Helper()
	b := kafkatest.StartBroker(t, context.Background(), kafka.BrokerConfig{MaxMessageBytes: 8 << 20})
	kcfg := kafka.DefaultConfig()
	kcfg.Brokers = []string{b.Addr()}
	kcfg.TopicPrefix = fmt.Sprintf("t%d.", time.Now().UnixNano()%1e9)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, kcfg); err != nil {
		t.Fatalf("EnsureTopics: %v", err)
	}
	return kcfg
}

func TestRunFiresTP99AlertFromStats(t *testing.T) {
	kcfg := startBroker(t)
	srv, received := amStub(t)
	dir := t.TempDir()

	cfg := DefaultConfig()
	cfg.RulesFiles = []string{writeFile(t, dir, "rules.yaml", tp99Rules)}
	cfg.StateFile = filepath.Join(dir, "state.json")
	cfg.EvalInterval = 100 * time.Millisecond
	cfg.Alertmanagers = []string{srv.URL}
	aggCfg := aggregator.DefaultConfig()
	paneMs := aggCfg.Pane.Milliseconds()

	// Six panes of the last minute: "pay" is slow (900 ms), "list" fast.
	end := time.Now().UnixMilli() / paneMs * paneMs
	var starts []int64
	for s := end - time.Minute.Milliseconds(); s < end; s += paneMs {
		starts = append(starts, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	msgs := []kafkago.Message{
		{Key: []byte("a"), Value: statsBatch(t, paneMs, starts[:3], map[string]float64{"pay": 900_000, "list": 10_000})},
		{Key: []byte("b"), Value: []byte("not a batch")},
		{Key: []byte("c"), Value: statsBatch(t, paneMs, starts[3:], map[string]float64{"pay": 900_000, "list": 10_000})},
	}
	kafkatest.Produce(t, ctx, kcfg, kafka.TopicStats, msgs...)

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	reg := prometheus.NewRegistry()
	go func() { done <- Run(runCtx, kcfg, aggCfg, cfg, reg, nil) }()

	var got notify.Alert
	select {
	case got = <-received:
	case err := <-done:
		t.Fatalf("Run returned before an alert arrived: %v", err)
	case <-ctx.Done():
		t.Fatal("no alert reached the Alertmanager stub")
	}
	want := map[string]string{
		"alertname": "CheckoutTP99High", "severity": "page",
		"system": "shop", "app": "checkout", "group": "blue", "idc": "dc1", "method": "pay",
	}
	if fmt.Sprint(got.Labels) != fmt.Sprint(want) {
		t.Errorf("labels = %v, want %v", got.Labels, want)
	}
	if !strings.HasPrefix(got.Annotations["summary"], "TP99 of pay is 9") {
		t.Errorf("summary = %q", got.Annotations["summary"])
	}
	if got.Resolved(time.Now()) {
		t.Errorf("alert is resolved: endsAt %v", got.EndsAt)
	}
	// Only the slow method fires.
	deadline := time.After(500 * time.Millisecond)
	for more := true; more; {
		select {
		case a := <-received:
			if a.Labels["method"] != "pay" {
				t.Errorf("unexpected alert %v", a.Labels)
			}
		case <-deadline:
			more = false
		}
	}

	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := counter(t, reg, "tpflow_alert_panes_total", "added"); got != 12 {
		t.Errorf("panes added = %v, want 12", got)
	}
	if got := counter(t, reg, "tpflow_alert_stats_bad_messages_total", ""); got != 1 {
		t.Errorf("bad messages = %v, want 1", got)
	}
	state, err := os.ReadFile(cfg.StateFile)
	if err != nil || !strings.Contains(string(state), "CheckoutTP99High") {
		t.Errorf("state file: %v, %q", err, state)
	}
	// The undecodable message went to the DLQ.
	if msg := kafkatest.First(t, ctx, kcfg, kcfg.Topic(kafka.TopicDLQ), "dlq-reader"); string(msg.Value) != "not a batch" {
		t.Errorf("DLQ message %q", msg.Value)
	}

	// The state changes went to the alerts topic: pending, then firing
	// (for: 0s), with the alert's labels and annotations.
	alertsCons, err := kafka.NewConsumer(kcfg, kcfg.Topic(kafka.TopicAlerts), "alerts-reader", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer alertsCons.Close()
	msg, err := alertsCons.Fetch(ctx)
	if err != nil {
		t.Fatalf("alerts topic: %v", err)
	}
	var batch codec.Batch
	if err := (codec.DecodeOptions{}).Decode(msg.Value, &batch); err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, raw := range batch.Alerts {
		var a tpflowpb.Alert
		if err := proto.Unmarshal(raw, &a); err != nil {
			t.Fatal(err)
		}
		ls := map[string]string{}
		refs := batch.LabelSet(a.Labels)
		for i := 0; i+1 < len(refs); i += 2 {
			ls[batch.Symbol(refs[i])] = batch.Symbol(refs[i+1])
		}
		if ls["method"] != "pay" || ls["alertname"] != "CheckoutTP99High" || ls["severity"] != "page" ||
			!strings.HasPrefix(a.Annotations["summary"], "TP99 of pay is 9") || a.Value < 800 || a.EvalUnixMs == 0 {
			t.Errorf("alert %v labels %v", a.String(), ls)
		}
		states = append(states, a.State.String())
	}
	if got := strings.Join(states, ","); got != "ALERT_STATE_PENDING,ALERT_STATE_FIRING" {
		t.Errorf("states in the first alerts message: %s", got)
	}
}

func TestRunRefusesBadRules(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.RulesFiles = []string{writeFile(t, dir, "bad.yaml", "rules:\n  - name: X\n    measure: tp99\n    window: 1m\n    op: \"=>\"\n    threshold: 1\n")}
	err := Run(context.Background(), kafka.DefaultConfig(), aggregator.DefaultConfig(), cfg, nil, nil)
	if !errors.Is(err, alerting.ErrInvalidRules) || !strings.Contains(err.Error(), "bad.yaml:5:") {
		t.Errorf("err = %v", err)
	}
	cfg.RulesFiles = nil
	if err := Run(context.Background(), kafka.DefaultConfig(), aggregator.DefaultConfig(), cfg, nil, nil); !errors.Is(err, ErrNoRules) {
		t.Errorf("no rules: err = %v", err)
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yaml", tp99Rules)
	rules, err := Check(good)
	if err != nil || len(rules) != 1 {
		t.Fatalf("good: %d rules, %v", len(rules), err)
	}
	other := writeFile(t, dir, "other.yaml", tp99Rules)
	_, err = Check(good, other)
	if err == nil || !strings.Contains(err.Error(), other+":2: rule \"CheckoutTP99High\": field \"name\": duplicate rule name (first defined at "+good+":2)") {
		t.Errorf("duplicate: %v", err)
	}
}

func TestReloader(t *testing.T) {
	dir := t.TempDir()
	path := writeFile(t, dir, "rules.yaml", tp99Rules)
	m, _ := newMetrics(nil)
	rules := &alerting.RuleSet{}
	rl := newReloader([]string{path}, rules, aggregator.DefaultConfig(), m, nil)
	if err := rl.load(); err != nil {
		t.Fatal(err)
	}
	if rl.changed() {
		t.Fatal("changed without a change")
	}
	touch := func(content string, age time.Duration) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		mt := time.Now().Add(age)
		if err := os.Chtimes(path, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	// A bad edit keeps the previous rules.
	touch("rules: [\n", time.Second)
	if !rl.changed() {
		t.Fatal("bad edit not noticed")
	}
	if err := rl.load(); err == nil {
		t.Fatal("bad edit loaded")
	}
	if rs := rules.Rules(); len(rs) != 1 || rs[0].Name != "CheckoutTP99High" {
		t.Fatalf("rules after a bad edit: %v", rs)
	}
	if rl.changed() {
		t.Fatal("a failed load is retried without a further change")
	}
	touch(strings.ReplaceAll(tp99Rules, "CheckoutTP99High", "Renamed"), 2*time.Second)
	if !rl.changed() {
		t.Fatal("good edit not noticed")
	}
	if err := rl.load(); err != nil {
		t.Fatal(err)
	}
	if rs := rules.Rules(); len(rs) != 1 || rs[0].Name != "Renamed" {
		t.Fatalf("rules after a good edit: %v", rs)
	}
}

func TestConfigValidate(t *testing.T) {
	f := func(mod func(*Config), want string) {
		t.Helper()
		c := DefaultConfig()
		mod(&c)
		got := ""
		if err := c.Validate(); err != nil {
			got = err.Error()
		}
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	f(func(*Config) {}, "")
	f(func(c *Config) {
		c.RulesFiles = []string{"a.yaml"}
		c.Alertmanagers = []string{"http://am:9093"}
		c.Webhooks = []notify.WebhookConfig{{URL: "https://hooks.example.net/x", Secret: "s"}}
	}, "")
	f(func(c *Config) { c.EvalInterval = 0 }, "eval_interval: must be between 10ms and 1h, got 0s")
	f(func(c *Config) { c.ResendInterval = -time.Second }, "resend_interval: must be positive, got -1s")
	f(func(c *Config) { c.GroupID = "" }, "group_id: must not be empty")
	f(func(c *Config) { c.RulesFiles = []string{""} }, "rules_files[0]: must not be empty")
	f(func(c *Config) { c.Alertmanagers = []string{"am:9093"} }, `alertmanagers[0]: "am:9093" is not an http or https URL`)
	f(func(c *Config) { c.Webhooks = []notify.WebhookConfig{{URL: "ftp://x"}} }, `webhooks[0].url: "ftp://x" is not an http or https URL`)
	f(func(c *Config) { c.LogsGroupID = c.GroupID }, `logs_group_id: must differ from group_id "tpflow-alert"`)
	if c := DefaultConfig(); c.logsGroup() != "tpflow-alert-logs" {
		t.Errorf("default logs group %q", c.logsGroup())
	}
}

// counter returns the value of the counter name whose result label is
// result (any labels when result is empty).
func counter(t *testing.T, reg *prometheus.Registry, name, result string) float64 {
	t.Helper()
	if result == "" {
		return testkit.Metric(t, reg, name, nil)
	}
	return testkit.Metric(t, reg, name, map[string]string{"result": result})
}

// TestRunKeepsRulesOnBadEdits edits the rules file of a running role into
// each kind of invalid rule: every edit is refused with its file:line
// error and the rules in force stay, until a valid edit replaces them.
func TestRunKeepsRulesOnBadEdits(t *testing.T) {
	kcfg := startBroker(t)
	srv, received := amStub(t)
	dir := t.TempDir()
	path := writeFile(t, dir, "rules.yaml", tp99Rules)
	cfg := DefaultConfig()
	cfg.RulesFiles = []string{path}
	cfg.EvalInterval = 50 * time.Millisecond
	cfg.Alertmanagers = []string{srv.URL}
	aggCfg := aggregator.DefaultConfig()
	paneMs := aggCfg.Pane.Milliseconds()
	end := time.Now().UnixMilli() / paneMs * paneMs
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kafkatest.Produce(t, ctx, kcfg, kafka.TopicStats, kafkago.Message{Value: statsBatch(t, paneMs, []int64{end - 2*paneMs, end - paneMs}, map[string]float64{"pay": 900_000})})
	logs := &testkit.Buffer{}
	reg := prometheus.NewRegistry()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, kcfg, aggCfg, cfg, reg, slog.New(slog.NewTextHandler(logs, nil))) }()
	waitAlert := func(name string) {
		t.Helper()
		for {
			select {
			case a := <-received:
				if a.Labels["alertname"] == name {
					return
				}
			case err := <-done:
				t.Fatalf("Run returned: %v", err)
			case <-ctx.Done():
				t.Fatalf("no %s alert; log:\n%s", name, logs.String())
			}
		}
	}
	waitAlert("CheckoutTP99High")

	mtime := time.Now()
	edit := func(content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		mtime = mtime.Add(time.Second)
		if err := os.Chtimes(path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	for i, tc := range []struct{ file, want string }{
		{"unknown_measure", `rules.yaml:3:5: rule "Bad": field "measure": unknown measure "tp98"`},
		{"bad_regex", `rules.yaml:4:7: rule "Bad": field "selector.app": bad regular expression "pay(.*"`},
		{"for_without_window", `rules.yaml:6:5: rule "NoWindow": field "for": needs a window`},
		{"duplicate_name", `rules.yaml:7:5: rule "Same": field "name": duplicate rule name (first defined on line 2)`},
	} {
		bad, err := os.ReadFile(filepath.Join("..", "testdata", tc.file+".bad.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		edit(string(bad))
		for counter(t, reg, "tpflow_alert_rule_loads_total", "error") < float64(i+1) {
			if ctx.Err() != nil {
				t.Fatalf("%s: the edit was not loaded; log:\n%s", tc.file, logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
		// The text handler quotes the error.
		if !strings.Contains(logs.String(), strings.ReplaceAll(tc.want, `"`, `\"`)) {
			t.Errorf("%s: log lacks %q:\n%s", tc.file, tc.want, logs.String())
		}
		if g := gauge(t, reg, "tpflow_alert_rules"); g != 1 {
			t.Errorf("%s: %v rules in force, want the previous 1", tc.file, g)
		}
	}
	if n := strings.Count(logs.String(), "invalid alert rules; keeping the previous ones"); n != 4 {
		t.Errorf("%d warnings about kept rules, want 4", n)
	}
	edit(strings.ReplaceAll(tp99Rules, "CheckoutTP99High", "Renamed"))
	waitAlert("Renamed")
	if got := counter(t, reg, "tpflow_alert_rule_loads_total", "ok"); got != 2 {
		t.Errorf("good loads %v, want 2", got)
	}
	cancel()
	<-done
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	return testkit.Metric(t, reg, name, nil)
}

// TestRunResourceRule reads resource panes from stats: a container near
// its memory limit fires memory_utilization per container.
func TestRunResourceRule(t *testing.T) {
	kcfg := startBroker(t)
	srv, received := amStub(t)
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.RulesFiles = []string{writeFile(t, dir, "rules.yaml", `rules:
  - name: MemoryNearLimit
    measure: memory_utilization
    window: 1m
    op: ">"
    threshold: 0.9
    annotations: {summary: "{{ $labels.container }} at {{ $value }}"}
`)}
	cfg.EvalInterval = 50 * time.Millisecond
	cfg.Alertmanagers = []string{srv.URL}
	aggCfg := aggregator.DefaultConfig()
	paneMs := aggCfg.Pane.Milliseconds()
	start := time.Now().UnixMilli()/paneMs*paneMs - paneMs

	var b codec.Builder
	for _, c := range []struct {
		container string
		used      float64
	}{{"api", 950}, {"worker", 500}} {
		ls := b.LabelSet([]schemas.Label{{Name: schemas.LabelApp, Value: "pay"}, {Name: schemas.LabelHost, Value: "n1"},
			{Name: schemas.LabelContainer, Value: c.container}})
		for name, v := range map[string]float64{"container_memory_working_set_bytes": c.used, "container_memory_limit_bytes": 1000, "container_processes": 3} {
			if err := b.AddResourcePane(&tpflowpb.ResourcePane{Labels: ls, Name: b.Symbol(name), PaneStartUnixMs: start,
				PaneMs: uint32(paneMs), Version: 2, Count: 2, Sum: 2 * v, Max: v, P95: v}); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	kafkatest.Produce(t, ctx, kcfg, kafka.TopicStats, kafkago.Message{Value: b.AppendTo(nil)})
	reg := prometheus.NewRegistry()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, kcfg, aggCfg, cfg, reg, nil) }()
	select {
	case a := <-received:
		if a.Labels["container"] != "api" || a.Labels["app"] != "pay" || a.Annotations["summary"] != "api at 0.95" {
			t.Errorf("alert %v %v", a.Labels, a.Annotations)
		}
	case err := <-done:
		t.Fatalf("Run returned: %v", err)
	case <-ctx.Done():
		t.Fatal("no alert")
	}
	// Only api; the process count is not kept.
	select {
	case a := <-received:
		t.Errorf("second alert %v", a.Labels)
	case <-time.After(300 * time.Millisecond):
	}
	cancel()
	<-done
	if got := counter(t, reg, "tpflow_alert_panes_total", "resource"); got != 4 {
		t.Errorf("resource panes kept %v, want 4", got)
	}
}
