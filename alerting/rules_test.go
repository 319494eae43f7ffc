package alerting

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseGood(t *testing.T) {
	rules, err := LoadFile("testdata/good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 3 {
		t.Fatalf("got %d rules, want 3", len(rules))
	}
	r := rules[0]
	if r.Name != "CheckoutTP99High" || r.Measure != TP99 || r.Window != 5*time.Minute || r.Op != ">" ||
		r.Threshold != 250 || r.For != 2*time.Minute || r.KeepFiringFor != time.Minute || r.Line != 2 {
		t.Fatalf("rule 0 = %+v", r)
	}
	if strings.Join(r.By, ",") != "app" {
		t.Fatalf("by = %v", r.By)
	}
	if len(r.Matchers) != 5 {
		t.Fatalf("matchers = %d", len(r.Matchers))
	}
	match := map[string]map[string]bool{
		"system": {"shop": true, "shop2": false},
		"method": {"getCart": true, "putItem": true, "delete": false},
		"idc":    {"lab": false, "bj": true},
		"group":  {"canary-1": false, "prod": true},
	}
	for _, m := range r.Matchers {
		for v, want := range match[m.Label] {
			if got := m.Matches(v); got != want {
				t.Errorf("matcher %s %q: got %v, want %v", m.Label, v, got, want)
			}
		}
	}
	if got := strings.Join(rules[1].By, ","); got != "app,idc" {
		t.Fatalf("rule 1 by = %s", got)
	}
	if got := strings.Join(rules[2].By, ","); got != strings.Join(LabelNames, ",") {
		t.Fatalf("rule 2 default by = %s", got)
	}
	got := expand(r.annTmpl, map[string]string{"app": "checkout"}, 312.5)
	if got["summary"] != "TP99 of checkout is 312.5 ms" {
		t.Fatalf("summary = %q", got["summary"])
	}
}

func TestParseBad(t *testing.T) {
	for _, tc := range []struct {
		file string
		want []string // each must appear in the error
	}{
		{"unknown_measure", []string{`testdata/unknown_measure.bad.yaml:3:5: rule "Bad": field "measure": unknown measure "tp98" (known: tp50, tp90, tp99, tp999, qps, error_rate, avg_latency, calls, log_pattern_rate, kernel_error_rate, app_error_rate, cpu_usage, cpu_utilization, memory_usage, memory_utilization)`}},
		{"unsupported_measure", []string{`unsupported_measure.bad.yaml:3:5: rule "Disk": field "measure": measure "disk_io" is not supported yet`}},
		{"bad_regex", []string{`bad_regex.bad.yaml:4:7: rule "Bad": field "selector.app": bad regular expression "pay(.*"`}},
		{"for_without_window", []string{`for_without_window.bad.yaml:6:5: rule "NoWindow": field "for": needs a window`}},
		{"duplicate_name", []string{`duplicate_name.bad.yaml:7:5: rule "Same": field "name": duplicate rule name (first defined on line 2)`}},
		{"unknown_key", []string{`unknown_key.bad.yaml:7:5: rule "Typo": field "lables": unknown key`}},
		{"unknown_label", []string{`unknown_label.bad.yaml:4:7: rule "Pod": field "selector.pod": unknown label (known: system, app, group, idc, method)`}},
		{"bad_by", []string{`bad_by.bad.yaml:7:5: rule "By": field "by": unknown label "host"`}},
		{"bad_op", []string{`bad_op.bad.yaml:5:5: rule "Op": field "op": unknown comparison "=>"`}},
		{"bad_threshold", []string{`bad_threshold.bad.yaml:6:5: rule "Thr": field "threshold": bad threshold "5ms": want a number`}},
		{"bad_duration", []string{`bad_duration.bad.yaml:4:5: rule "Dur": field "window": bad duration "5 minutes"`}},
		{"bad_template", []string{`bad_template.bad.yaml:8:7: rule "Tmpl": field "annotations.summary": bad template`}},
		{"missing_fields", []string{
			`missing_fields.bad.yaml:2:5: rule "Empty": field "window": required`,
			`missing_fields.bad.yaml:2:5: rule "Empty": field "op": required`,
			`missing_fields.bad.yaml:2:5: rule "Empty": field "threshold": required`,
		}},
		{"top_level", []string{`top_level.bad.yaml:1:1: field "groups": unknown key (known: rules)`}},
		{"yaml_syntax", []string{`yaml_syntax.bad.yaml:`, "did not find expected"}},
		{"log_no_pattern", []string{`log_no_pattern.bad.yaml:2:5: rule "NoPattern": field "pattern": required for log_pattern_rate`}},
		{"log_bad_pattern", []string{`log_bad_pattern.bad.yaml:4:5: rule "BadPattern": field "pattern": bad regular expression "time(out"`}},
		{"log_bad_class", []string{`log_bad_class.bad.yaml:4:5: rule "BadClass": field "classes": unknown kernel error class "disk" (known: crc, io, ext4, memory)`}},
		{"log_fields_on_calls", []string{
			`log_fields_on_calls.bad.yaml:4:5: rule "Mixed": field "pattern": only a log_pattern_rate rule has a pattern`,
			`log_fields_on_calls.bad.yaml:5:5: rule "Mixed": field "classes": only a kernel_error_rate rule has classes`,
			`log_fields_on_calls.bad.yaml:6:16: rule "Mixed": field "selector.host": unknown label (known: system, app, group, idc, method)`,
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			rules, err := LoadFile(filepath.Join("testdata", tc.file+".bad.yaml"))
			if err == nil {
				t.Fatalf("no error; rules %v", rules)
			}
			if !errors.Is(err, ErrInvalidRules) {
				t.Errorf("error does not wrap ErrInvalidRules: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain\n%s", err, w)
				}
			}
		})
	}
}

func TestRuleSetLoadKeepsPreviousOnError(t *testing.T) {
	var rs RuleSet
	if err := rs.Load("testdata/good.yaml"); err != nil {
		t.Fatal(err)
	}
	before := rs.Rules()
	if err := rs.Load("testdata/unknown_measure.bad.yaml"); err == nil {
		t.Fatal("loading a bad file succeeded")
	}
	if got := rs.Rules(); len(got) != len(before) || got[0] != before[0] {
		t.Fatalf("rules changed after a bad load: %v", got)
	}
	// A name used in two files is a duplicate too.
	dir := t.TempDir()
	other := filepath.Join(dir, "other.yaml")
	if err := os.WriteFile(other, []byte("rules:\n  - name: TrafficDropped\n    measure: qps\n    window: 1m\n    op: \"<\"\n    threshold: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := rs.Load("testdata/good.yaml", other)
	if err == nil || !strings.Contains(err.Error(), `other.yaml:2: rule "TrafficDropped": field "name": duplicate rule name (first defined at testdata/good.yaml:27)`) {
		t.Fatalf("err = %v", err)
	}
	if len(rs.Rules()) != 3 {
		t.Fatalf("rules changed after a bad load")
	}
}

func TestParseLogRules(t *testing.T) {
	rules, err := LoadFile("testdata/logs_good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 4 {
		t.Fatalf("got %d rules", len(rules))
	}
	k, d, p, a := rules[0], rules[1], rules[2], rules[3]
	if k.Measure != KernelErrorRate || strings.Join(k.Classes, ",") != "crc,io,ext4,memory" || strings.Join(k.By, ",") != "host" {
		t.Errorf("kernel rule %+v", k)
	}
	if strings.Join(d.Classes, ",") != "io,ext4" || len(d.Matchers) != 1 || !d.Matchers[0].Matches("db-7") {
		t.Errorf("disk rule %+v", d)
	}
	if p.Pattern == nil || !p.Pattern.MatchString("request Timed out") || strings.Join(p.By, ",") != "app,host" || len(p.Matchers) != 2 {
		t.Errorf("pattern rule %+v", p)
	}
	if a.Measure != AppErrorRate || strings.Join(a.By, ",") != "system,app" {
		t.Errorf("app error rule %+v", a)
	}
}

func TestParseRulesDecodeErrors(t *testing.T) {
	// Unknown keys (with a suggestion) and values of the wrong type are
	// reported by the config loader at their line and column; the rule's
	// other checks are skipped, so "window: required" is not guessed.
	data := "rules:\n  - name: X\n    measure: qps\n    windw: 1m\n    op: \">\"\n    threshold: [1]\n"
	_, err := ParseRules("r.yaml", []byte(data))
	if !errors.Is(err, ErrInvalidRules) {
		t.Fatalf("err = %v, want ErrInvalidRules", err)
	}
	want := `r.yaml:4:5: rule "X": field "windw": unknown key (did you mean "window"?) (known: ` + ruleKeys + ")\n" +
		`r.yaml:6:16: rule "X": field "threshold": expected a string, got a list`
	if err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
}
