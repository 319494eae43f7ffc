package alerting

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// fakeClassify tags a message with every class named in it.
func fakeClassify(msg string) []string {
	var out []string
	for _, c := range KernelClasses {
		if strings.Contains(msg, "["+c+"]") {
			out = append(out, c)
		}
	}
	return out
}

const logRules = `
rules:
  - name: Kernel
    measure: kernel_error_rate
    window: 1m
    op: ">"
    threshold: 0
    keep_firing_for: 0s
    annotations:
      summary: "{{ $labels.class }} errors on {{ $labels.host }}: {{ $value }}/s"
  - name: Timeouts
    measure: log_pattern_rate
    pattern: "timed out"
    selector: {stream: stderr}
    by: app
    window: 10s
    op: ">="
    threshold: 0.2
  - name: AppErrors
    measure: app_error_rate
    window: 10s
    op: ">"
    threshold: 0
`

func TestLogRules(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	m := newTestManager(t, newFakeSource(), c, logRules)
	cfg := DefaultLogCounterConfig()
	cfg.Samples, cfg.SampleBytes = 2, 16
	lc := NewLogCounter(cfg, fakeClassify)
	lc.SetRules(m.rules.Rules())
	m.SetLogCounter(lc)

	kern := func(host, msg string, ago time.Duration) {
		lc.Add(&LogLine{Time: c.t.Add(-ago), Host: host, Stream: KernelStream, Level: "ERROR", Message: msg}, c.t)
	}
	app := func(name, stream, level, msg string) {
		lc.Add(&LogLine{Time: c.t, App: name, Host: "h", Stream: stream, Level: level, Message: msg}, c.t)
	}
	kern("node-a", "ata1: [crc] error 1", 0)
	kern("node-a", "ata1: [crc] error 2 with a long tail", time.Second)
	kern("node-a", "ata1: [crc] error 3", 2*time.Second)
	kern("node-a", "sda: [io] and [ext4] error", 0)
	kern("node-b", "EDAC [memory] CE", 0)
	kern("node-b", "nothing to see", 0)
	kern("node-b", "[crc] too old", 2*time.Minute) // outside every window
	app("pay", "stderr", "WARN", "call timed out")
	app("pay", "stderr", "WARN", "call timed out")
	app("pay", "stdout", "WARN", "call timed out") // stream filtered out
	app("pay", "stdout", "error", "boom")
	app("pay", KernelStream, "ERROR", "a kernel line is no app error")
	if lc.Late() != 1 {
		t.Errorf("late = %d, want 1", lc.Late())
	}

	sent := m.Eval(c.now())
	got := map[string]Alert{}
	for _, a := range sent {
		got[a.Rule+" "+a.Labels["host"]+a.Labels["app"]+" "+a.Labels["class"]] = a
	}
	want := []string{"Kernel node-a crc", "Kernel node-a io", "Kernel node-a ext4", "Kernel node-b memory", "Timeouts pay ", "AppErrors pay "}
	for _, k := range want {
		if _, ok := got[k]; !ok {
			t.Errorf("no alert %q", k)
		}
	}
	if len(sent) != len(want) {
		t.Errorf("%d alerts sent, want %d: %v", len(sent), len(want), got)
	}
	crc := got["Kernel node-a crc"]
	if crc.Annotations["summary"] != fmt.Sprintf("crc errors on node-a: %v/s", 3.0/60) {
		t.Errorf("summary %q", crc.Annotations["summary"])
	}
	// The first lines of the window, oldest first, each cut to 16 bytes.
	if l := crc.Annotations["lines"]; l != "ata1: [crc] erro…\nata1: [crc] erro…" {
		t.Errorf("lines %q", l)
	}
	if len(crc.Labels) != 3 || crc.Labels["alertname"] != "Kernel" {
		t.Errorf("labels %v", crc.Labels)
	}
	// Two stderr lines in 10s; the stdout one is not selected.
	if v := got["Timeouts pay "].Value; v != 2.0/10 {
		t.Errorf("Timeouts value %v, want 0.2", v)
	}

	// After the window the counts are gone and the alerts resolve.
	c.advance(61 * time.Second)
	resolved := 0
	for _, a := range m.Eval(c.now()) {
		if a.State == StateResolved {
			resolved++
		}
	}
	if resolved != len(want) {
		t.Errorf("%d alerts resolved, want %d", resolved, len(want))
	}
}

func TestLogCounterBounds(t *testing.T) {
	rules := mustParse(t, logRules)
	cfg := DefaultLogCounterConfig()
	cfg.MaxGroups = 3
	lc := NewLogCounter(cfg, fakeClassify)
	lc.SetRules(rules)
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for i := range 10 {
		lc.Add(&LogLine{Time: now, Host: fmt.Sprintf("n%d", i), Stream: KernelStream, Message: "[io]"}, now)
	}
	if lc.Dropped() != 7 {
		t.Errorf("dropped %d, want 7", lc.Dropped())
	}
	if gs := lc.groups(rules[0], now); len(gs) != 3 {
		t.Errorf("%d groups, want 3", len(gs))
	}
	// A reload that keeps what a rule counts keeps its counts; a changed
	// rule starts over.
	again := mustParse(t, logRules)
	lc.SetRules(again)
	if gs := lc.groups(again[0], now); len(gs) != 3 {
		t.Errorf("after an unchanged reload: %d groups", len(gs))
	}
	changed := mustParse(t, strings.Replace(logRules, "window: 1m", "window: 2m", 1))
	lc.SetRules(changed)
	if gs := lc.groups(changed[0], now); len(gs) != 0 {
		t.Errorf("after a changed reload: %d groups", len(gs))
	}
	// Groups whose lines left the window are forgotten.
	lc.Add(&LogLine{Time: now, Host: "x", Stream: KernelStream, Message: "[io]"}, now)
	if gs := lc.groups(changed[0], now.Add(3*time.Minute)); len(gs) != 0 || len(lc.rules["Kernel"].groups) != 0 {
		t.Errorf("old groups kept: %d", len(lc.rules["Kernel"].groups))
	}
}
