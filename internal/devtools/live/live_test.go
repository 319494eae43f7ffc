package live

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/alerting"
)

func liveWindows(n int) []aggregator.Window {
	start := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	var ws []aggregator.Window
	for i := 0; i < n; i++ {
		p99 := float64(1000 * (n - i))
		ws = append(ws, aggregator.Window{
			Key: aggregator.Key{App: "app" + string(rune('a'+i%26)), Method: "method" + string(rune('A'+i%26)), Group: "g-prod-bj"},
			QPS: 12.5, ErrorRate: 0.015, P50: p99 / 5, P90: p99 / 2, P99: p99, P999: p99 * 2,
			Start: start.UnixMilli(), End: start.Add(time.Minute).UnixMilli(),
		})
	}
	ws[0].Key.App, ws[0].Key.Method, ws[0].P99 = "order-trade", "createOrderWithAVeryLongMethodName", 245300
	ws[0].Key.Group = "order-trade-prod-bj"
	return ws
}

func TestLiveTable(t *testing.T) {
	var buf bytes.Buffer
	v := &View{W: &buf, ANSI: true, Window: "1m"}
	now := time.Date(2026, 1, 2, 3, 5, 7, 0, time.UTC)
	if err := v.Render(now, liveWindows(30), nil, "events/s 10000"); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if !strings.HasPrefix(out, "\x1b[H\x1b[2J") {
		t.Fatalf("a terminal refresh must start with home+clear, got %q", out[:min(20, len(out))])
	}
	lines := strings.Split(out, "\n")
	rows := 0
	for _, l := range lines {
		if strings.Contains(l, "g-prod-bj") {
			rows++
		}
	}
	if rows != liveTop-1 { // row 0's group is shortened to prod-bj
		t.Fatalf("%d method rows, want %d:\n%s", rows, liveTop, out)
	}
	for _, want := range []string{"over the last 1m", "events/s 10000", "TP99 ms", "TP999 ms", "ERR%",
		"order-trade", "createOrderWithAVeryLon…", "245", "60.0", "12.5", "1.50", "30 keys"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// A group named after its app is shown without the app.
	if strings.Contains(out, "order-trade-prod-bj") || !strings.Contains(out, "prod-bj ") {
		t.Errorf("group not shortened:\n%s", out)
	}
	// The slowest comes first.
	if i, j := strings.Index(out, "order-trade"), strings.Index(out, "appb"); i < 0 || j < 0 || i > j {
		t.Errorf("rows not in the given (TP99 desc) order:\n%s", out)
	}
	buf.Reset()
	if err := v.Render(now, nil, nil, ""); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "waiting for the first final pane") {
		t.Errorf("empty view lacks the waiting hint: %s", buf.String())
	}
}

func TestLiveLines(t *testing.T) {
	var buf bytes.Buffer
	v := &View{W: &buf, Window: "1m"}
	now := time.Date(2026, 1, 2, 3, 5, 7, 0, time.UTC)
	for i := 0; i < 2; i++ {
		if err := v.Render(now, liveWindows(5), nil, "events/s 10000"); err != nil {
			t.Fatal(err)
		}
	}
	out := buf.String()
	if strings.Contains(out, "\x1b") {
		t.Fatalf("plain mode wrote escape sequences: %q", out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one line per refresh, got %d: %q", len(lines), out)
	}
	want := "2026-01-02T03:05:07Z window=1m keys=5 events/s 10000 slowest: order-trade/createOrderWithAVeryLongMethodName tp99=245ms qps=12.5 err=1.50% appb/methodB tp99=4.00ms qps=12.5 err=1.50% appc/methodC tp99=3.00ms qps=12.5 err=1.50%"
	if lines[0] != want {
		t.Fatalf("line\n got %q\nwant %q", lines[0], want)
	}
}

// liveAlerts returns one alert of each state: only the firing one is shown.
func liveAlerts() []alerting.Alert {
	fired := time.Date(2026, 1, 2, 3, 4, 50, 0, time.UTC)
	var as []alerting.Alert
	for _, st := range []alerting.State{alerting.StatePending, alerting.StateFiring, alerting.StateResolved} {
		as = append(as, alerting.Alert{
			Rule: "Demo" + st.String(), State: st, Value: 812.25, FiredAt: fired,
			Labels: map[string]string{"alertname": "Demo" + st.String(), "app": "order-trade", "method": "getOrder"},
		})
	}
	return as
}

func TestLiveAlerts(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 1, 2, 3, 5, 7, 0, time.UTC)
	v := &View{W: &buf, Window: "1m", Alerting: true}
	if err := v.Render(now, liveWindows(1), liveAlerts(), ""); err != nil {
		t.Fatal(err)
	}
	want := ` firing=1 alert=Demofiring{app="order-trade",method="getOrder"} value=812.2 since=2026-01-02T03:04:50Z` + "\n"
	if !strings.HasSuffix(buf.String(), want) {
		t.Errorf("line\n got %q\nwant suffix %q", buf.String(), want)
	}
	buf.Reset()
	if err := v.Render(now, liveWindows(1), liveAlerts()[:1], ""); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(buf.String(), " firing=0\n") {
		t.Errorf("no firing alert: %q", buf.String())
	}

	buf.Reset()
	v = &View{W: &buf, ANSI: true, Window: "1m", Alerting: true}
	if err := v.Render(now, liveWindows(1), liveAlerts(), ""); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	since := time.Date(2026, 1, 2, 3, 4, 50, 0, time.UTC).Local().Format("15:04:05")
	if !strings.Contains(out, "Firing alerts: 1\n") || !strings.Contains(out, "Demofiring") || !strings.Contains(out, since) ||
		!strings.Contains(out, `{app="order-trade",method="getOrder"}`) || strings.Contains(out, "Demopending") || strings.Contains(out, "Demoresolved") {
		t.Errorf("table alerts wrong:\n%s", out)
	}
	buf.Reset()
	v.Alerting = false
	if err := v.Render(now, liveWindows(1), nil, ""); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "Firing alerts") {
		t.Errorf("alerts section without an alert role:\n%s", buf.String())
	}
}

func TestMs(t *testing.T) {
	for us, want := range map[float64]string{850: "0.85", 12345: "12.3", 245300: "245", 0: "0.00"} {
		if got := ms(us); got != want {
			t.Errorf("ms(%v) = %q, want %q", us, got, want)
		}
	}
	var buf bytes.Buffer
	if IsTerminal(&buf) {
		t.Error("a buffer is not a terminal")
	}
}
