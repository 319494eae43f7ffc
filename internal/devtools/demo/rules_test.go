package demo

import (
	"testing"
	"time"

	"github.com/tpflow/tpflow/alerting"
)

// TestRules checks that the demo rules load with the alert rules loader,
// name the fault targets, and put their thresholds between what the
// generator produces outside and inside each fault.
func TestRules(t *testing.T) {
	for _, seed := range []uint64{1, 2, 7} {
		cfg := DefaultConfig()
		cfg.Seed = seed
		g := newGen(t, cfg)
		rules, err := alerting.ParseRules("demo.yaml", g.Rules(10*time.Second))
		if err != nil {
			t.Fatalf("seed %d: demo rules do not load: %v\n%s", seed, err, g.Rules(10*time.Second))
		}
		if len(rules) != 2 {
			t.Fatalf("seed %d: %d rules, want 2", seed, len(rules))
		}
		byName := map[string]*alerting.Rule{}
		for _, r := range rules {
			byName[r.Name] = r
			if r.Window != 30*time.Second || r.For != 10*time.Second {
				t.Errorf("seed %d: %s window %s for %s, want 30s and 10s", seed, r.Name, r.Window, r.For)
			}
		}
		lat, errs := byName["DemoLatencyIncident"], byName["DemoErrorBurst"]
		if lat == nil || errs == nil || lat.Measure != alerting.TP99 || errs.Measure != alerting.ErrorRate {
			t.Fatalf("seed %d: rules %v", seed, byName)
		}
		sys, app, method := g.IncidentTarget()
		want := map[string]string{"system": sys, "app": app, "method": method}
		for _, m := range lat.Matchers {
			if m.Type != alerting.MatchEqual || want[m.Label] != m.Value {
				t.Errorf("seed %d: incident matcher %s=%q, want %q", seed, m.Label, m.Value, want[m.Label])
			}
			delete(want, m.Label)
		}
		if len(want) != 0 {
			t.Errorf("seed %d: incident selector lacks %v", seed, want)
		}
		esys, eapp := g.ErrorTarget()
		if len(errs.Matchers) != 2 || errs.Matchers[0].Value+"/"+errs.Matchers[1].Value != esys+"/"+eapp &&
			errs.Matchers[1].Value+"/"+errs.Matchers[0].Value != esys+"/"+eapp {
			t.Errorf("seed %d: error burst selector %v, want %s/%s", seed, errs.Matchers, esys, eapp)
		}

		// One minute of calls outside the faults, one inside both.
		isInc := func(m Method) bool { return m.System == sys && m.App == app && m.Method == method }
		isErr := func(m Method) bool { return m.System == esys && m.App == eapp }
		normal := g.Calls(nil, t0, t0.Add(time.Minute), 200000)
		inStart := t0.Add(cfg.IncidentAfter)
		incident := g.Calls(nil, inStart, inStart.Add(cfg.IncidentFor), 200000)
		burstStart := t0.Add(cfg.ErrorAfter)
		burst := g.Calls(nil, burstStart, burstStart.Add(cfg.ErrorFor), 200000)
		p99n, _, n1 := stats(g, normal, isInc)
		p99i, _, n2 := stats(g, incident, isInc)
		_, errN, n3 := stats(g, normal, isErr)
		_, errB, n4 := stats(g, burst, isErr)
		if n1 < 200 || n2 < 200 || n3 < 200 || n4 < 200 {
			t.Fatalf("seed %d: too few calls of the targets: %d %d %d %d", seed, n1, n2, n3, n4)
		}
		thr := lat.Threshold * 1000 // µs
		if !(p99n < thr/1.5 && thr*1.5 < p99i) {
			t.Errorf("seed %d: TP99 threshold %.0fµs not well between normal %.0fµs and incident %.0fµs", seed, thr, p99n, p99i)
		}
		if !(errN < errs.Threshold/10 && errs.Threshold*3 < errB) {
			t.Errorf("seed %d: error threshold %g not well between normal %g and burst %g", seed, errs.Threshold, errN, errB)
		}
	}
}
