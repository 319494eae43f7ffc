package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/collectors/metrics"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

// kmsgEvents reads a /dev/kmsg fixture as the node collector does: records
// that match a kernel error class become ERROR log events of stream kmsg
// from /dev/kmsg, labelled with the host. It returns the events' messages.
func kmsgEvents(t *testing.T, b *codec.Builder, file, host string, now time.Time) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := metrics.NewKmsgReader(f)
	filter := metrics.NewKernelErrorFilter()
	ls := b.LabelSet([]schemas.Label{{Name: schemas.LabelHost, Value: host}})
	var msgs []string
	for {
		rec, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(filter.Classes(rec.Message)) == 0 {
			continue
		}
		ev := &tpflowpb.LogEvent{TsUnixNano: now.UnixNano(), Labels: ls, Stream: b.Symbol("kmsg"), Level: b.Symbol("ERROR"),
			Message: rec.Message, Source: b.Symbol("/dev/kmsg"), Offset: rec.Seq}
		if err := b.AddLog(ev); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, rec.Message)
	}
	if r.Malformed > 0 {
		t.Logf("%s: %d malformed records skipped", file, r.Malformed)
	}
	return msgs
}

// TestAlertKernelErrors feeds kmsg fixtures of two nodes through the logs
// topic to the alert role (a process) and checks that kernel_error_rate
// fires one alert per class and node, each with its offending lines, and
// that an undecodable logs message and application lines change nothing.
// The lines are on the topic before the role starts, as after a restart.
func TestAlertKernelErrors(t *testing.T) {
	heavy(t)
	binary(t)
	hook := &hookReceiver{secret: "k3rnel"}
	hookSrv := httptest.NewServer(hook)
	defer hookSrv.Close()

	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rules, []byte(`rules:
  - name: KernelErrors
    measure: kernel_error_rate
    window: 1m
    op: ">"
    threshold: 0
    labels: {severity: ticket}
    annotations:
      summary: "{{ $labels.class }} kernel errors on {{ $labels.host }}"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	brokerAddr := freeAddr(t)
	cfgFile := filepath.Join(dir, "tpflow.yaml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf(`aggregator:
  pane: 1s
  windows: [10s]
  allowed_lateness: 1s
  idle_timeout: 1s
kafka:
  brokers: [%q]
  partitions: {calls: 1, logs: 2, metrics: 1, stats: 1, alerts: 1, dlq: 1}
  session_timeout: 6s
alert:
  rules_files: [%q]
  eval_interval: 100ms
  webhooks: [{url: %q, secret: k3rnel}]
  resend_interval: 10m
`, brokerAddr, rules, hookSrv.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	broker := start(t, dir, "broker", "broker", "--config", cfgFile, "--listen", brokerAddr, "--data-dir", filepath.Join(dir, "broker"))
	p := &pipeline{t: t, broker: broker}
	p.waitPort(brokerAddr)

	kcfg := kafka.DefaultConfig()
	kcfg.Brokers = []string{brokerAddr}
	kcfg.Partitions = map[string]int{kafka.TopicCalls: 1, kafka.TopicLogs: 2, kafka.TopicMetrics: 1, kafka.TopicStats: 1, kafka.TopicAlerts: 1, kafka.TopicDLQ: 1}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, kcfg); err != nil {
		t.Fatal(err)
	}
	prod, err := kafka.NewProducer(kcfg, kcfg.Topic(kafka.TopicLogs), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()

	now := time.Now()
	lines := map[string][]string{}
	var msgs []kafkago.Message
	for _, node := range []string{"node-a", "node-b"} {
		var b codec.Builder
		lines[node] = kmsgEvents(t, &b, filepath.Join("testdata", "kmsg-"+node+".txt"), node, now)
		// An application's ERROR line of the same host is no kernel error.
		app := b.LabelSet([]schemas.Label{{Name: schemas.LabelHost, Value: node}, {Name: schemas.LabelApp, Value: "checkout"}})
		if err := b.AddLog(&tpflowpb.LogEvent{TsUnixNano: now.UnixNano(), Labels: app, Stream: b.Symbol("stderr"),
			Level: b.Symbol("ERROR"), Message: "I/O error talking to the database", Source: b.Symbol("/var/log/app.log")}); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, kafkago.Message{Key: []byte(node), Value: b.AppendTo(nil)})
	}
	msgs = append(msgs, kafkago.Message{Key: []byte("node-a"), Value: []byte("not a batch")})
	if err := prod.Produce(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	// The role starts after the lines are on the topic: its new logs group
	// starts at the oldest message, so lines produced before it joined
	// are not lost.
	alert := start(t, dir, "alert", "alert", "--config", cfgFile, "--listen", freeAddr(t))

	want := map[string][]string{ // host/class → the fixture lines of that class
		"node-a/crc":    {"ata1.00: status: { DRDY ERR } error: { ICRC ABRT }"},
		"node-a/io":     {"blk_update_request: I/O error, dev sda", "Buffer I/O error on dev sda1"},
		"node-a/ext4":   {"EXT4-fs error (device sda1)", "EXT4-fs (sda1): Remounting filesystem read-only"},
		"node-b/memory": {"EDAC MC0: 1 CE memory read error on CPU_SrcID#0_Ha#0_Chan#1_DIMM#0 (channel:1 slot:0 page:0x12345)"},
	}
	var got map[string]string
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		got = map[string]string{}
		hook.mu.Lock()
		for _, a := range hook.alerts {
			if a.Labels["alertname"] != "KernelErrors" {
				continue
			}
			k := a.Labels["host"] + "/" + a.Labels["class"]
			if _, dup := got[k]; dup {
				t.Errorf("second notification for %s", k)
			}
			got[k] = a.Annotations["lines"]
			if a.Status != "firing" || a.Labels["severity"] != "ticket" || a.Annotations["summary"] != a.Labels["class"]+" kernel errors on "+a.Labels["host"] {
				t.Errorf("alert %s: status %s labels %v annotations %v", k, a.Status, a.Labels, a.Annotations)
			}
		}
		hook.mu.Unlock()
		if len(got) >= len(want) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for k, frags := range want {
		ann, ok := got[k]
		if !ok {
			t.Errorf("no alert for %s", k)
			continue
		}
		for _, f := range frags {
			if !strings.Contains(ann, f) {
				t.Errorf("%s: lines annotation %q lacks %q", k, ann, f)
			}
		}
		if n := strings.Count(ann, "\n") + 1; n > 5 {
			t.Errorf("%s: %d lines in the annotation, want at most 5", k, n)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected alert %s: %q", k, got[k])
		}
	}
	// node-b logged seven memory lines; the annotation keeps the first five.
	if n := strings.Count(got["node-b/memory"], "\n") + 1; n != 5 || !slices.Contains(lines["node-b"], strings.Split(got["node-b/memory"], "\n")[0]) {
		t.Errorf("node-b memory lines: %q", got["node-b/memory"])
	}
	if hook.badSig != 0 {
		t.Errorf("%d bodies with a bad signature", hook.badSig)
	}
	if t.Failed() {
		t.Logf("alert log:\n%s", alert.tail())
	}
}
