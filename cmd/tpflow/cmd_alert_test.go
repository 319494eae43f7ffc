package main

import (
	"github.com/tpflow/tpflow/internal/cli"
	"strings"
	"testing"
)

const goodRules = `rules:
  - name: CheckoutTP99High
    selector:
      app: checkout
    measure: tp99
    window: 1m
    op: ">"
    threshold: 500ms
`

const badRules = `rules:
  - name: CheckoutTP99High
    measure: tp99
    window: 1m
    op: "=>"
    threshold: 500ms
  - name: Traffic
    measure: latency
    window: 1m
    op: "<"
    threshold: 1
`

func TestAlertCheck(t *testing.T) {
	good := writeTemp(t, "good.yaml", goodRules)
	code, out, errOut := runCLI(t, "alert", "check", good)
	if code != cli.ExitOK || out != "ok: 1 rules in "+good+"\n" || errOut != "" {
		t.Errorf("good: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// Without a file, check takes the configured ones.
	code, out, _ = runCLI(t, "alert", "check", "--rules", good)
	if code != cli.ExitOK || !strings.HasPrefix(out, "ok: 1 rules") {
		t.Errorf("good via --rules: exit %d, stdout %q", code, out)
	}

	bad := writeTemp(t, "bad.yaml", badRules)
	again := writeTemp(t, "again.yaml", goodRules)
	code, out, errOut = runCLI(t, "alert", "check", good, bad, again)
	lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
	if code != cli.ExitError || out != "" || len(lines) != 4 || lines[0] != "tpflow alert: invalid alert rules:" {
		t.Fatalf("bad: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for i, want := range []string{
		bad + `:5:5: rule "CheckoutTP99High": field "op": `,
		bad + `:8:5: rule "Traffic": field "measure": `,
		again + `:2: rule "CheckoutTP99High": field "name": duplicate rule name (first defined at ` + good + `:2)`,
	} {
		if !strings.HasPrefix(lines[i+1], want) {
			t.Errorf("line %d = %q, want prefix %q", i+1, lines[i+1], want)
		}
	}

	code, _, errOut = runCLI(t, "alert", "check")
	if code != cli.ExitUsage || !strings.Contains(errOut, "check needs a RULES file") {
		t.Errorf("no file: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCLI(t, "alert", "chek", good)
	if code != cli.ExitUsage || !strings.Contains(errOut, `unknown subcommand "chek"`) {
		t.Errorf("unknown subcommand: exit %d, stderr %q", code, errOut)
	}
}

func TestAlertRefusesBadRulesBeforeListening(t *testing.T) {
	bad := writeTemp(t, "bad.yaml", badRules)
	code, _, errOut := runCLI(t, "alert", "--rules", bad, "--listen", "127.0.0.1:1")
	if code != cli.ExitError || !strings.HasPrefix(errOut, "tpflow alert: invalid alert rules:\n"+bad+":5:") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestAlertTest(t *testing.T) {
	rules, input := "../../alerting/alert/testdata/incident_rules.yaml", "../../alerting/alert/testdata/incident.jsonl"
	code, out, errOut := runCLI(t, "alert", "test", rules, "--input", input)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != cli.ExitError || len(lines) != 4 {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for i, want := range []string{
		`2026-01-01T12:00:50Z pending  CheckoutTP99 {alertname="CheckoutTP99", app="checkout", method="pay"} value=9`,
		`2026-01-01T12:01:00Z firing   CheckoutTP99 {`,
		`2026-01-01T12:01:40Z resolved CheckoutTP99 {`,
		"24 panes, 3 state changes, 4 bad lines",
	} {
		if !strings.HasPrefix(lines[i], want) {
			t.Errorf("line %d = %q, want prefix %q", i, lines[i], want)
		}
	}
	// Bad lines are reported with file and line and do not stop the replay.
	if !strings.Contains(errOut, input+":13: bad pane:") || !strings.Contains(errOut, input+":16: count 3 but 1 latencies") ||
		!strings.HasSuffix(errOut, "tpflow alert: 4 bad input lines skipped\n") {
		t.Errorf("stderr %q", errOut)
	}
	// A clean input exits 0; a pane length that does not fit the input is
	// reported per line.
	clean := writeTemp(t, "clean.jsonl", `{"start":"2026-01-01T12:00:00Z","app":"checkout","method":"pay","latencies_ms":[900]}`+"\n")
	if code, out, _ := runCLI(t, "alert", "test", rules, "--input", clean); code != cli.ExitOK || !strings.Contains(out, "1 panes, 1 state changes, 0 bad lines") {
		t.Errorf("clean: exit %d, stdout %q", code, out)
	}
	cfg := writeTemp(t, "tpflow.yaml", "aggregator:\n  pane: 7s\n  windows: [7s]\n  rollup: 0s\n")
	if code, _, errOut := runCLI(t, "alert", "--config", cfg, "test", rules, "--input", clean); code != cli.ExitError || !strings.Contains(errOut, "clean.jsonl:1: start 2026-01-01T12:00:00Z is not aligned to the pane length 7s") {
		t.Errorf("7s panes: exit %d, stderr %q", code, errOut)
	}
	for _, args := range [][]string{{"alert", "test", rules}, {"alert", "test", "--input", clean}, {"alert", "check", rules, "--input", clean}} {
		if code, _, _ := runCLI(t, args...); code != cli.ExitUsage {
			t.Errorf("%v: exit %d, want usage", args, code)
		}
	}
}
