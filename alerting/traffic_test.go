package alerting

import (
	"strings"
	"testing"
	"time"

	"github.com/tpflow/tpflow/aggregator"
)

const trafficRules = `
rules:
  - name: TrafficDrop
    measure: qps
    compare_to: 1h
    window: 1m
    op: "<"
    threshold: 0.5
    by: app
  - name: TrafficFloor
    measure: qps
    window: 1m
    op: "<"
    threshold: 1
    by: app
  - name: Absent
    selector: {app: "=~pay|cart"}
    measure: calls
    window: 1m
    op: "=="
    threshold: 0
    by: app
`

// TestTrafficDropAndAbsent steps a day-like pattern an hour apart: a
// window below half of the same window an hour earlier fires TrafficDrop,
// below 1/s TrafficFloor, and an app that stops sending fires Absent and
// TrafficFloor with value 0.
func TestTrafficDropAndAbsent(t *testing.T) {
	src := newFakeSource()
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	m := newTestManager(t, src, c, trafficRules)
	pay := aggregator.Key{System: "shop", App: "pay", Method: "charge"}
	cart := aggregator.Key{System: "shop", App: "cart", Method: "add"}
	firing := func() string {
		var out []string
		for _, a := range m.Alerts() {
			if a.State == StateFiring {
				out = append(out, a.Rule+"/"+a.Labels["app"])
			}
		}
		return strings.Join(out, " ")
	}
	// The first hour: pay 600 calls a minute (10/s), cart 120 (2/s).
	for range 6 {
		src.set(pay, repeat(1000, 600)...)
		src.set(cart, repeat(1000, 120)...)
		m.Eval(c.now())
		c.advance(10 * time.Minute)
	}
	if f := firing(); f != "" {
		t.Fatalf("firing without a baseline or a drop: %s", f)
	}
	// An hour later pay has 40 % of its traffic, cart the same.
	src.set(pay, repeat(1000, 240)...)
	m.Eval(c.now())
	if f := firing(); f != "TrafficDrop/pay" {
		t.Fatalf("firing %q, want TrafficDrop/pay", f)
	}
	for _, a := range m.Alerts() {
		if a.Rule == "TrafficDrop" && a.Value != 0.4 {
			t.Errorf("TrafficDrop value %v, want the ratio 0.4", a.Value)
		}
	}
	// cart stops: its window is empty, yet it measures 0, below its floor
	// and below half of an hour earlier.
	c.advance(10 * time.Minute)
	src.set(cart)
	m.Eval(c.now())
	if f := firing(); f != "Absent/cart TrafficDrop/cart TrafficDrop/pay TrafficFloor/cart" {
		t.Fatalf("firing %q", f)
	}
	// pay's recovery resolves its drop.
	c.advance(10 * time.Minute)
	src.set(pay, repeat(1000, 600)...)
	m.Eval(c.now())
	if f := firing(); f != "Absent/cart TrafficDrop/cart TrafficFloor/cart" {
		t.Fatalf("firing %q", f)
	}
	// A day later cart is forgotten and its alerts resolve.
	c.advance(absentRetention + time.Minute)
	m.Eval(c.now())
	if f := firing(); f != "" {
		t.Fatalf("firing %q after the retention", f)
	}
	if len(m.seen["Absent"]) != 1 {
		t.Errorf("remembered groups %v, want pay only", m.seen["Absent"])
	}
}

func TestCompareToValidation(t *testing.T) {
	for _, tc := range []struct{ rule, want string }{
		{"measure: qps\n    compare_to: -1h", `field "compare_to": bad duration "-1h"`},
		{"measure: qps\n    compare_to: 0s", `field "compare_to": must be positive`},
		{"measure: app_error_rate\n    compare_to: 24h", `field "compare_to": only call measures can be compared`},
		{"measure: tp99\n    compare_to: 24h\n    threshold: 250ms", `field "threshold": bad threshold "250ms": want a number`},
	} {
		doc := "rules:\n  - name: R\n    window: 1m\n    op: \"<\"\n    " + tc.rule + "\n"
		if !strings.Contains(tc.rule, "threshold") {
			doc += "    threshold: 1\n"
		}
		_, err := ParseRules("r.yaml", []byte(doc))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err %v, want %q", tc.rule, err, tc.want)
		}
	}
}

// TestTrafficMemorySurvivesRestart saves the state, restores it into a new
// manager and checks that an app that stopped while the role was down is
// absent and that the comparison with an hour earlier goes on.
func TestTrafficMemorySurvivesRestart(t *testing.T) {
	src := newFakeSource()
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	m := newTestManager(t, src, c, trafficRules)
	pay := aggregator.Key{System: "shop", App: "pay", Method: "charge"}
	cart := aggregator.Key{System: "shop", App: "cart", Method: "add"}
	for range 6 {
		src.set(pay, repeat(1000, 600)...)
		src.set(cart, repeat(1000, 120)...)
		m.Eval(c.now())
		c.advance(10 * time.Minute)
	}
	path := t.TempDir() + "/state.json"
	if err := m.SaveState(path); err != nil {
		t.Fatal(err)
	}
	m2 := newTestManager(t, src, c, trafficRules)
	if err := m2.RestoreState(path); err != nil {
		t.Fatal(err)
	}
	src.set(cart)
	src.set(pay, repeat(1000, 240)...)
	m2.Eval(c.now())
	var firing []string
	for _, a := range m2.Alerts() {
		if a.State == StateFiring {
			firing = append(firing, a.Rule+"/"+a.Labels["app"])
		}
	}
	if s := strings.Join(firing, " "); s != "Absent/cart TrafficDrop/cart TrafficDrop/pay TrafficFloor/cart" {
		t.Fatalf("after a restart firing %q", s)
	}
}
