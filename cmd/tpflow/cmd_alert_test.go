package main

import (
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
	if code != exitOK || out != "ok: 1 rules in "+good+"\n" || errOut != "" {
		t.Errorf("good: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// Without a file, check takes the configured ones.
	code, out, _ = runCLI(t, "alert", "check", "--rules", good)
	if code != exitOK || !strings.HasPrefix(out, "ok: 1 rules") {
		t.Errorf("good via --rules: exit %d, stdout %q", code, out)
	}

	bad := writeTemp(t, "bad.yaml", badRules)
	again := writeTemp(t, "again.yaml", goodRules)
	code, out, errOut = runCLI(t, "alert", "check", good, bad, again)
	lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
	if code != exitError || out != "" || len(lines) != 4 || lines[0] != "tpflow alert: invalid alert rules:" {
		t.Fatalf("bad: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for i, want := range []string{
		bad + `:5: rule "CheckoutTP99High": field "op": `,
		bad + `:8: rule "Traffic": field "measure": `,
		again + `:2: rule "CheckoutTP99High": field "name": duplicate rule name (first defined at ` + good + `:2)`,
	} {
		if !strings.HasPrefix(lines[i+1], want) {
			t.Errorf("line %d = %q, want prefix %q", i+1, lines[i+1], want)
		}
	}

	code, _, errOut = runCLI(t, "alert", "check")
	if code != exitUsage || !strings.Contains(errOut, "check needs a RULES file") {
		t.Errorf("no file: exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = runCLI(t, "alert", "chek", good)
	if code != exitUsage || !strings.Contains(errOut, `unknown subcommand "chek"`) {
		t.Errorf("unknown subcommand: exit %d, stderr %q", code, errOut)
	}
}

func TestAlertRefusesBadRulesBeforeListening(t *testing.T) {
	bad := writeTemp(t, "bad.yaml", badRules)
	code, _, errOut := runCLI(t, "alert", "--rules", bad, "--listen", "127.0.0.1:1")
	if code != exitError || !strings.HasPrefix(errOut, "tpflow alert: invalid alert rules:\n"+bad+":5:") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}
