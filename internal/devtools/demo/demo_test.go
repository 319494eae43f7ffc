package demo

import (
	"bytes"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas/codec"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)

func newGen(t *testing.T, cfg Config) *Generator {
	t.Helper()
	g, err := New(cfg, t0)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// stats returns the p99 latency and error rate of the calls for which sel
// is true.
func stats(g *Generator, calls []Call, sel func(m Method) bool) (p99 float64, errRate float64, n int) {
	var lat []float64
	errs := 0
	for _, c := range calls {
		if !sel(g.series[c.Series]) {
			continue
		}
		lat = append(lat, float64(c.LatencyUs))
		if !c.OK {
			errs++
		}
	}
	if len(lat) == 0 {
		return 0, 0, 0
	}
	sort.Float64s(lat)
	return lat[len(lat)*99/100], float64(errs) / float64(len(lat)), len(lat)
}

func TestTopology(t *testing.T) {
	g := newGen(t, DefaultConfig())
	apps, methods, groups, idcs, systems := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, s := range g.Series() {
		systems[s.System] = true
		apps[s.App] = true
		methods[s.App+"/"+s.Method] = true
		groups[s.Group] = true
		idcs[s.IDC] = true
	}
	if len(systems) < 4 || len(apps) != 40 || len(methods) < 200 || len(groups) < 60 || len(idcs) < 3 {
		t.Fatalf("topology too small: %d systems, %d apps, %d methods, %d groups, %d idcs",
			len(systems), len(apps), len(methods), len(groups), len(idcs))
	}
	// Deterministic from the seed, different for another seed.
	g2 := newGen(t, DefaultConfig())
	if g.Describe() != g2.Describe() {
		t.Fatalf("same seed, different generators:\n%s\n%s", g.Describe(), g2.Describe())
	}
	cfg := DefaultConfig()
	cfg.Seed = 7
	if g3 := newGen(t, cfg); g3.Describe() == g.Describe() {
		t.Fatalf("seed 7 gives the same generator as seed 1: %s", g.Describe())
	}
	_, ia, _ := g.IncidentTarget()
	if _, ea := g.ErrorTarget(); ea == ia {
		t.Fatalf("incident and error burst hit the same app %s", ia)
	}
}

func TestIncidentWindow(t *testing.T) {
	cfg := DefaultConfig()
	g := newGen(t, cfg)
	sys, app, method := g.IncidentTarget()
	isTarget := func(m Method) bool { return m.System == sys && m.App == app && m.Method == method }
	p99 := func(from time.Duration, d time.Duration) float64 {
		calls := g.Calls(nil, t0.Add(from), t0.Add(from+d), 200000)
		p, _, n := stats(g, calls, isTarget)
		if n < 200 {
			t.Fatalf("only %d calls of the incident method in %s", n, d)
		}
		return p
	}
	before := p99(30*time.Second, 50*time.Second)
	during := p99(95*time.Second, 50*time.Second)
	after := p99(160*time.Second, 50*time.Second)
	again := p99(10*time.Minute+95*time.Second, 50*time.Second)
	if during < 10*before || during < 10*after || again < 10*before {
		t.Fatalf("p99 before %.0fµs, during %.0fµs, after %.0fµs, next period %.0fµs: want ×~20 during", before, during, after, again)
	}
	// Other methods are unaffected.
	calls := g.Calls(nil, t0.Add(95*time.Second), t0.Add(145*time.Second), 100000)
	other, _, _ := stats(g, calls, func(m Method) bool { return !isTarget(m) })
	calls = g.Calls(nil, t0.Add(30*time.Second), t0.Add(80*time.Second), 100000)
	otherBefore, _, _ := stats(g, calls, func(m Method) bool { return !isTarget(m) })
	if other > 1.5*otherBefore || other < otherBefore/1.5 {
		t.Fatalf("other methods' p99 moved from %.0fµs to %.0fµs during the incident", otherBefore, other)
	}
	for _, c := range []struct {
		at   time.Duration
		want bool
	}{{89 * time.Second, false}, {90 * time.Second, true}, {149 * time.Second, true}, {150 * time.Second, false}, {10*time.Minute + 90*time.Second, true}} {
		if got := g.IncidentActive(t0.Add(c.at)); got != c.want {
			t.Errorf("IncidentActive(start+%s) = %v, want %v", c.at, got, c.want)
		}
	}
}

func TestErrorBurst(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ErrorAfter = 10 * time.Second
	g := newGen(t, cfg)
	sys, app := g.ErrorTarget()
	isApp := func(m Method) bool { return m.System == sys && m.App == app }
	calls := g.Calls(nil, t0.Add(15*time.Second), t0.Add(50*time.Second), 200000)
	_, rate, n := stats(g, calls, isApp)
	if n < 1000 || rate < 0.27 || rate > 0.33 {
		t.Fatalf("error rate of %s during the burst %.3f over %d calls, want ~0.30", app, rate, n)
	}
	_, otherRate, _ := stats(g, calls, func(m Method) bool { return !isApp(m) })
	if otherRate > 0.01 {
		t.Fatalf("error rate of other apps during the burst %.3f, want ~%.3f", otherRate, cfg.BaseErrorRate)
	}
	calls = g.Calls(nil, t0.Add(60*time.Second), t0.Add(100*time.Second), 200000)
	if _, rate, _ := stats(g, calls, isApp); rate > 0.01 {
		t.Fatalf("error rate of %s after the burst %.3f, want ~%.3f", app, rate, cfg.BaseErrorRate)
	}
}

func TestMessages(t *testing.T) {
	g := newGen(t, DefaultConfig())
	calls := g.Calls(nil, t0, t0.Add(time.Second), 20000)
	msgs := g.Messages(calls, 4096)
	total := 0
	var b codec.Batch
	for _, m := range msgs {
		if err := codec.Decode(m.Value, &b); err != nil {
			t.Fatal(err)
		}
		if len(m.Value) > 4096 {
			t.Fatalf("message of %d bytes, limit 4096", len(m.Value))
		}
		// Every call of one message belongs to the message's key.
		for _, c := range b.Calls {
			s := b.Series[c.Series]
			key := kafka.CallKey(b.Label(s.Labels, "system"), b.Label(s.Labels, "app"), b.Symbol(s.Method))
			if !bytes.Equal(key, m.Key) {
				t.Fatalf("call of %s/%s in a message keyed for another method", b.Label(s.Labels, "app"), b.Symbol(s.Method))
			}
			if c.TsUnixMs < t0.UnixMilli() || c.TsUnixMs >= t0.Add(time.Second).UnixMilli() {
				t.Fatalf("event time %d outside the tick", c.TsUnixMs)
			}
			if b.Label(s.Labels, "group") == "" || b.Label(s.Labels, "idc") == "" || !strings.Contains(b.Label(s.Labels, "group"), b.Label(s.Labels, "idc")) {
				t.Fatalf("labels without group/idc: %v", b.LabelSet(s.Labels))
			}
		}
		total += len(b.Calls)
	}
	if total != len(calls) {
		t.Fatalf("messages carry %d calls, generated %d", total, len(calls))
	}
}

func TestValidate(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Rate = 0
	cfg.IncidentFor = 11 * time.Minute
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "rate") || !strings.Contains(err.Error(), "incident_for") {
		t.Fatalf("Validate() = %v, want errors for rate and incident_for", err)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}
