package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tpflow/tpflow/aggregator/windowsapi"
	"github.com/tpflow/tpflow/collectors/parse"
	"github.com/tpflow/tpflow/internal/devtools/demo"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas/codec"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

// TestRunDemoCollectorAndAlerts runs `tpflow run --demo` with 2 s panes, a
// log rotation every 5 s and the incident 2 s after the start, and checks
// that (a) the calls of the collector-fed apps reach the aggregator's
// windows, exactly as many per method as the log files hold lines before
// the window's end, across a rotation, and (b) the demo rule fires on the
// incident: in the --no-live output and as a FIRING change on the alerts
// topic.
func TestRunDemoCollectorAndAlerts(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline for ~20 s")
	}
	start := time.Now()
	const incidentAfter, incidentFor = 2 * time.Second, 5 * time.Second
	p := startRun(t, `aggregator:
  pane: 2s
  windows: [10s, 1m]
  allowed_lateness: 2s
  idle_timeout: 4s
alert:
  eval_interval: 500ms
collect:
  metrics:
    interval: 1s
`, "--demo", "--no-live", "--clickhouse", "clickhouse://"+freeAddr(t)+"/tpflow",
		"--demo-rate", "2000", "--demo-incident-after", incidentAfter.String(), "--demo-incident-for", incidentFor.String(), "--demo-error-after", "1h",
		"--demo-log-rate", "200", "--demo-log-rotate", "5s",
		// Every rotated file is kept, so that the lines the collector
		// counted can be counted from the files however long the
		// machine takes to reach the checks below.
		"--demo-log-keep", "100")
	listen, dir, stdout, stderr := p.listen, p.dir, &p.stdout, &p.stderr
	exited := func() {
		t.Helper()
		p.exitedEarly(t)
	}
	base := "http://" + listen
	logDir := filepath.Join(dir, "demo-logs")

	// (a) Once a rotation has happened and a window ends after it, the
	// 1-minute window (which reaches back before the start) must count
	// every line written before its end.
	var resp windowsapi.WindowsResponse
	deadline := time.Now().Add(25 * time.Second)
	for {
		exited()
		_, rotated := os.Stat(filepath.Join(logDir, "gateway-edge.log.1"))
		code, body, err := httpGet(base + "/api/v1/windows?window=1m")
		if rotated == nil && err == nil && code == 200 {
			if err := json.Unmarshal(body, &resp); err != nil {
				t.Fatalf("bad JSON %v: %s", err, body)
			}
			if len(resp.Windows) > 0 && time.UnixMilli(resp.Windows[0].End).After(start.Add(6*time.Second)) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no window after the first rotation within 25 s (%d windows, err %v)\nstderr:\n%s", len(resp.Windows), err, stderr.String())
		}
		time.Sleep(300 * time.Millisecond)
	}
	end := time.UnixMilli(resp.Windows[0].End)
	got := map[string]int{}
	for _, w := range resp.Windows {
		if w.Key.System != demo.LogSystem {
			continue
		}
		if w.Key.IDC != demo.LogIDC || w.Key.Group != demo.LogGroup(w.Key.App) || w.End != end.UnixMilli() {
			t.Errorf("collector window with wrong labels or end: %+v", w)
		}
		got[w.Key.App+" "+w.Key.Method] += int(w.Count)
	}
	want, files := countLogLines(t, logDir, end.UnixMilli())
	if files < 2*len(demo.LogApps()) {
		t.Fatalf("%d log files, want the current and a rotated one per app", files)
	}
	if len(want) < 4 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("collector calls in the 1m window ending %s:\n got %v\nwant %v (lines in the files)", end.Format(time.RFC3339Nano), got, want)
	}
	total := 0
	for _, n := range want {
		total += n
	}
	t.Logf("collector: %d calls in the windows = lines written before %s, over %d files", total, end.Sub(start).Round(time.Millisecond), files)
	for _, a := range demo.LogApps() {
		for _, w := range resp.Windows {
			if w.Key.App == a && w.Key.System != demo.LogSystem {
				t.Errorf("collector app %s also came from the generator: %+v", a, w)
			}
		}
	}

	// (b) The demo rule fires on the incident.
	gen, err := demo.New(demo.DefaultConfig(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	incSystem, incApp, incMethod := gen.IncidentTarget()
	re := regexp.MustCompile(`alert=DemoLatencyIncident\{app="` + regexp.QuoteMeta(incApp) + `",method="` + regexp.QuoteMeta(incMethod) +
		`",severity="warning",source="demo",system="` + regexp.QuoteMeta(incSystem) + `"\} value=([0-9.e+]+) since=(\S+)`)
	var m []string
	for deadline := time.Now().Add(25 * time.Second); m == nil; {
		exited()
		m = re.FindStringSubmatch(stdout.String())
		if m == nil && time.Now().After(deadline) {
			t.Fatalf("the demo incident did not fire within 25 s; stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	since, err := time.Parse(time.RFC3339, m[2])
	if err != nil {
		t.Fatal(err)
	}
	var value float64
	fmt.Sscan(m[1], &value)
	thr := gen.RulesParams(2 * time.Second).TP99Threshold
	if value <= float64(thr.Milliseconds()) {
		t.Errorf("firing value %g ms not above the threshold %s", value, thr)
	}
	t.Logf("DemoLatencyIncident fired at most %s after the incident started (value %g ms > %s)",
		since.Sub(start.Add(incidentAfter)).Round(time.Second), value, thr)
	if strings.Contains(stdout.String(), "alert=DemoErrorBurst") {
		t.Errorf("the error burst rule fired without an error burst:\n%s", stdout.String())
	}

	// The state change is on the alerts topic.
	addr := regexp.MustCompile(`embedded broker started" role=run addr=(\S+)`).FindStringSubmatch(stderr.String())
	if addr == nil {
		t.Fatalf("no broker address in the log:\n%s", stderr.String())
	}
	kcfg := kafka.DefaultConfig()
	kcfg.Brokers = []string{addr[1]}
	// Pending, firing, and once the incident is over, resolved.
	states := alertsOnTopic(t, kcfg, "DemoLatencyIncident", "RESOLVED")
	if want := "ALERT_STATE_PENDING,ALERT_STATE_FIRING,ALERT_STATE_RESOLVED"; states != want {
		t.Errorf("alerts topic states of DemoLatencyIncident: %s, want %s", states, want)
	}
	t.Logf("DemoLatencyIncident resolved %s after the incident ended", time.Since(start.Add(incidentAfter+incidentFor)).Round(time.Second))
	// The live view, refreshed every pane, shows firing alerts only: the
	// second line it prints after the resolved change was read (so surely
	// rendered after the resolution) shows none.
	printed := strings.Count(stdout.String(), "\n")
	var after string
	for deadline := time.Now().Add(15 * time.Second); ; {
		exited()
		if lines := strings.Split(stdout.String(), "\n"); len(lines) > printed+2 {
			after = lines[printed+1]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the live view printed no line within 15 s of the resolution; stdout:\n%s", stdout.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(after, " firing=0") || strings.Contains(after, "alert=") {
		t.Errorf("resolved alert still shown: %s", after)
	}
	// Every part has counted by now: the exposition holds the metrics of
	// the collect, aggregate, alert and demo parts with their labels.
	checkMetricsWithPromtool(t, "run", scrape(t, base))

	p.stop(t, 20*time.Second)
	for _, want := range []string{"alert role started with the demo rules", "node collector started", "the log lines reach it through the node collector"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("start-up log lacks %q:\n%s", want, stderr.String())
		}
	}
}

// countLogLines counts the perf-json calls of every file in dir with an
// event time before endMs, by "app method".
func countLogLines(t *testing.T, dir string, endMs int64) (map[string]int, int) {
	t.Helper()
	lp, err := parse.New(parse.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "*.log*"))
	out := map[string]int{}
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var c parse.Call
			if err := lp.ParseCall(sc.Bytes(), &c); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if c.TS < endMs {
				out[c.App+" "+c.Method]++
			}
		}
		f.Close()
	}
	return out, len(paths)
}

// alertsOnTopic returns the states of rule's changes on the alerts topic,
// in order, comma-separated, once one with a state containing until is
// read.
func alertsOnTopic(t *testing.T, kcfg kafka.Config, rule, until string) string {
	t.Helper()
	cons, err := kafka.NewConsumer(kcfg, kcfg.Topic(kafka.TopicAlerts), "test-alerts-reader", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	var states []string
	for !strings.Contains(strings.Join(states, ","), until) {
		msg, err := cons.Fetch(ctx)
		if err != nil {
			t.Fatalf("alerts topic (states so far %v): %v", states, err)
		}
		var b codec.Batch
		if err := (codec.DecodeOptions{}).Decode(msg.Value, &b); err != nil {
			t.Fatal(err)
		}
		for _, raw := range b.Alerts {
			var a tpflowpb.Alert
			if err := proto.Unmarshal(raw, &a); err != nil {
				t.Fatal(err)
			}
			if a.Rule == rule {
				states = append(states, a.State.String())
			}
		}
	}
	return strings.Join(states, ",")
}
