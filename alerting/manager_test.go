package alerting

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tpflow/tpflow/aggregator"
)

// fakeSource holds each key's raw latencies (µs) and computes windows
// exactly; Rollup computes the percentiles of the union of its keys' calls,
// the oracle a digest merge approximates.
type fakeSource struct {
	mu      sync.Mutex
	calls   map[aggregator.Key][]float64
	errs    map[aggregator.Key]uint64
	rollups int
}

func newFakeSource() *fakeSource {
	return &fakeSource{calls: map[aggregator.Key][]float64{}, errs: map[aggregator.Key]uint64{}}
}

func (f *fakeSource) set(k aggregator.Key, lat ...float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(lat) == 0 {
		delete(f.calls, k)
		return
	}
	f.calls[k] = lat
}

func quantile(sorted []float64, q float64) float64 {
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

func stat(lat []float64, errs uint64, d time.Duration, keys int) aggregator.Window {
	s := slices.Clone(lat)
	slices.Sort(s)
	var sum float64
	for _, v := range s {
		sum += v
	}
	n := uint64(len(s))
	return aggregator.Window{
		Count: n, Errors: errs, SumUs: uint64(sum), Keys: keys,
		P50: quantile(s, 0.5), P90: quantile(s, 0.9), P99: quantile(s, 0.99), P999: quantile(s, 0.999),
		QPS: float64(n) / d.Seconds(), ErrorRate: float64(errs) / float64(n), AvgUs: sum / float64(n),
	}
}

func (f *fakeSource) MergeKeys(match func(aggregator.Key) bool, d time.Duration) aggregator.Window {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rollups++
	var all []float64
	var errs uint64
	keys := 0
	for k, lat := range f.calls {
		if match(k) {
			all = append(all, lat...)
			errs += f.errs[k]
			keys++
		}
	}
	if len(all) == 0 {
		return aggregator.Window{}
	}
	return stat(all, errs, d, keys)
}

func (f *fakeSource) Windows(match func(aggregator.Key) bool, d time.Duration) []aggregator.Window {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []aggregator.Window
	for k, lat := range f.calls {
		if match == nil || match(k) {
			out = append(out, aggregator.WithKey(stat(lat, f.errs[k], d, 1), k))
		}
	}
	return out
}

func repeat(v float64, n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func mustParse(t *testing.T, s string) []*Rule {
	t.Helper()
	rules, err := ParseRules("test.yaml", []byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return rules
}

const lifecycleRule = `
rules:
  - name: SlowCheckout
    selector: {app: checkout}
    measure: tp99
    window: 1m
    op: ">"
    threshold: 200
    for: 30s
    keep_firing_for: 20s
    labels: {severity: page}
    annotations:
      summary: "{{ $labels.method }} TP99 {{ $value }}ms"
`

func newTestManager(t *testing.T, src WindowSource, c *clock, rules string) *Manager {
	t.Helper()
	var rs RuleSet
	rs.Set(mustParse(t, rules))
	cfg := DefaultConfig()
	cfg.Interval = 10 * time.Second
	cfg.ResendDelay = time.Minute
	m, err := NewManager(cfg, &rs, src, nil, c.now, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestLifecycle(t *testing.T) {
	src := newFakeSource()
	key := aggregator.Key{System: "shop", App: "checkout", Group: "prod", IDC: "bj", Method: "pay"}
	c := &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	m := newTestManager(t, src, c, lifecycleRule)
	t0 := c.t

	step := func(p99ms float64, wantState State, wantSent int) []Alert {
		t.Helper()
		src.set(key, repeat(p99ms*1000, 100)...)
		sent := m.Eval(c.now())
		as := m.Alerts()
		got := StateInactive
		if len(as) == 1 {
			got = as[0].State
		} else if len(as) > 1 {
			t.Fatalf("%s: %d alerts", c.t.Sub(t0), len(as))
		}
		if got != wantState || len(sent) != wantSent {
			t.Fatalf("at +%s: state %s, sent %d; want %s, %d", c.t.Sub(t0), got, len(sent), wantState, wantSent)
		}
		c.advance(10 * time.Second)
		return sent
	}
	step(100, StateInactive, 0)       // +0s
	step(300, StatePending, 0)        // +10s active
	step(100, StateInactive, 0)       // +20s: pending alerts vanish when the condition stops
	step(300, StatePending, 0)        // +30s active again
	step(300, StatePending, 0)        // +40s
	step(300, StatePending, 0)        // +50s
	sent := step(300, StateFiring, 1) // +60s: 30s after +30s
	a := sent[0]
	if !a.ActiveAt.Equal(t0.Add(30*time.Second)) || !a.FiredAt.Equal(t0.Add(60*time.Second)) {
		t.Fatalf("active %s fired %s", a.ActiveAt, a.FiredAt)
	}
	wantLabels := map[string]string{"alertname": "SlowCheckout", "severity": "page", "system": "shop", "app": "checkout", "group": "prod", "idc": "bj", "method": "pay"}
	if !mapsEqual(a.Labels, wantLabels) {
		t.Fatalf("labels %v", a.Labels)
	}
	if a.Annotations["summary"] != "pay TP99 300ms" {
		t.Fatalf("summary %q", a.Annotations["summary"])
	}
	if !a.EndsAt().After(c.t) {
		t.Fatalf("a firing alert's EndsAt %s is not in the future", a.EndsAt())
	}
	step(300, StateFiring, 0)        // +70s: sent already
	step(100, StateFiring, 0)        // +80s: kept firing for 20s from here
	step(100, StateFiring, 0)        // +90s
	step(300, StateFiring, 0)        // +100s: true again; the keep-firing clock restarts
	step(300, StateFiring, 0)        // +110s
	sent = step(300, StateFiring, 1) // +120s: re-sent after the resend delay (60s)
	step(300, StateFiring, 0)        // +130s
	if !sent[0].FiredAt.Equal(a.FiredAt) {
		t.Fatal("re-send changed FiredAt")
	}
	step(100, StateFiring, 0)          // +140s
	step(100, StateFiring, 0)          // +150s
	sent = step(100, StateResolved, 1) // +160s: keep_firing_for has passed since +140s
	if sent[0].State != StateResolved || !sent[0].EndsAt().Equal(t0.Add(160*time.Second)) {
		t.Fatalf("resolved alert %+v", sent[0])
	}
	step(100, StateResolved, 0) // +170s
	// A resolved alert is re-sent while retained, then dropped.
	c.advance(time.Minute)
	if sent := m.Eval(c.now()); len(sent) != 1 || sent[0].State != StateResolved {
		t.Fatalf("resolved re-send: %+v", sent)
	}
	c.advance(16 * time.Minute)
	if m.Eval(c.now()); len(m.Alerts()) != 0 {
		t.Fatalf("resolved alert kept past retention: %+v", m.Alerts())
	}
	// No data is not a breach.
	src.set(key)
	step(0, StateInactive, 0)
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func TestRestartKeepsFiringWithoutRenotifying(t *testing.T) {
	src := newFakeSource()
	key := aggregator.Key{System: "shop", App: "checkout", Group: "prod", IDC: "bj", Method: "pay"}
	src.set(key, repeat(500e3, 10)...)
	c := &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "alerts.json")

	var notified [][]Alert
	var unsaved []string
	notify := func(_ context.Context, as []Alert) {
		notified = append(notified, as)
		// A process killed while it notifies restarts from the state
		// file: it must already hold the firing alert being sent.
		if as[0].State != StateFiring {
			return
		}
		var rs RuleSet
		rs.Set(mustParse(t, lifecycleRule))
		probe, err := NewManager(DefaultConfig(), &rs, src, nil, c.now, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := probe.RestoreState(path); err != nil {
			t.Fatal(err)
		}
		if got := probe.Alerts(); len(got) != 1 || got[0].State != StateFiring || !got[0].ActiveAt.Equal(as[0].ActiveAt) {
			unsaved = append(unsaved, fmt.Sprintf("%+v", got))
		}
	}
	start := func() *Manager {
		var rs RuleSet
		rs.Set(mustParse(t, lifecycleRule))
		cfg := DefaultConfig()
		cfg.Interval = 10 * time.Second
		cfg.StateFile = path
		m, err := NewManager(cfg, &rs, src, notify, c.now, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.RestoreState(path); err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := start()
	for range 4 { // +0 pending, +10, +20, +30 firing
		m.Tick(context.Background())
		c.advance(10 * time.Second)
	}
	if len(notified) != 1 || notified[0][0].State != StateFiring {
		t.Fatalf("notified %+v", notified)
	}
	if len(unsaved) > 0 {
		t.Fatalf("the state file did not hold the firing alert while it was notified: %v", unsaved)
	}
	fired := notified[0][0]
	if ents, err := os.ReadDir(filepath.Dir(path)); err != nil || len(ents) != 1 {
		t.Fatalf("state dir holds %v (err %v); want only the state file", ents, err)
	}

	m2 := start() // the restart
	m2.Tick(context.Background())
	if len(notified) != 1 {
		t.Fatalf("restart notified again: %+v", notified[1:])
	}
	as := m2.Alerts()
	if len(as) != 1 || as[0].State != StateFiring || !as[0].ActiveAt.Equal(fired.ActiveAt) || !as[0].FiredAt.Equal(fired.FiredAt) {
		t.Fatalf("after restart: %+v", as)
	}
	// The restored alert resolves normally.
	src.set(key, repeat(1e3, 10)...)
	for range 3 { // kept firing for 20s, then resolved
		c.advance(10 * time.Second)
		m2.Tick(context.Background())
	}
	if len(notified) != 2 || notified[1][0].State != StateResolved {
		t.Fatalf("notified %+v", notified)
	}
}

func TestRollupByAppMergesDigests(t *testing.T) {
	src := newFakeSource()
	k := func(method string) aggregator.Key {
		return aggregator.Key{System: "shop", App: "checkout", Group: "prod", IDC: "bj", Method: method}
	}
	// pay: 100 calls at 1 s; list: 9900 calls at 10 ms. Each method's TP99 is
	// its own latency; the app's merged TP99 is 10 ms (99 % of its calls),
	// while the average of the two TP99s would be 505 ms.
	src.set(k("pay"), repeat(1e6, 100)...)
	src.set(k("list"), repeat(10e3, 9900)...)
	src.set(aggregator.Key{System: "shop", App: "cart", Group: "prod", IDC: "bj", Method: "add"}, repeat(2e6, 10)...)
	c := &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	m := newTestManager(t, src, c, `
rules:
  - name: AppTP99
    measure: tp99
    window: 5m
    op: ">"
    threshold: 0
    by: app
    annotations: {value: "{{ $value }}"}
`)
	m.Eval(c.now())
	as := m.Alerts()
	if len(as) != 2 {
		t.Fatalf("alerts %+v", as)
	}
	got := map[string]float64{}
	for _, a := range as {
		if _, ok := a.Labels["method"]; ok {
			t.Fatalf("a by-app alert has a method label: %v", a.Labels)
		}
		got[a.Labels["app"]] = a.Value
	}
	if got["checkout"] != 10 || got["cart"] != 2000 {
		t.Fatalf("values %v; want checkout 10 (merged), cart 2000", got)
	}
	if src.rollups != 1 {
		t.Fatalf("rollups = %d; want 1 (only checkout has several keys)", src.rollups)
	}
}

func TestOnStateChange(t *testing.T) {
	src := newFakeSource()
	key := aggregator.Key{System: "shop", App: "checkout", Group: "prod", IDC: "bj", Method: "pay"}
	c := &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	m := newTestManager(t, src, c, lifecycleRule)
	var got []string
	m.OnStateChange(func(_ context.Context, as []Alert) {
		for _, a := range as {
			got = append(got, fmt.Sprintf("%s@%s", a.State, a.LastTrueAt.Sub(c.t)))
		}
	})
	for _, p99 := range []float64{300, 100, 300, 300, 300, 300, 300, 100, 100, 100, 100} {
		src.set(key, repeat(p99*1000, 100)...)
		got = append(got, "|")
		m.Tick(context.Background())
		c.advance(10 * time.Second)
	}
	// Pending, gone, pending, firing after 30s, resolved after 20s of
	// keep_firing_for; nothing is reported while a state holds.
	want := "| pending@0s | inactive@-10s | pending@0s | | | firing@0s | | | | resolved@-30s |"
	if s := strings.Join(got, " "); s != want {
		t.Fatalf("state changes\n got %s\nwant %s", s, want)
	}
}
