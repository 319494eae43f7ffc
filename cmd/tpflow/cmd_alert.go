package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/tpflow/tpflow/alerting/alert"
	"github.com/tpflow/tpflow/collectors/metrics"
	"github.com/tpflow/tpflow/internal/cli"
	"github.com/tpflow/tpflow/internal/role"
	"github.com/tpflow/tpflow/pipeline/kafka"
)

func alertCommand() *cli.Command {
	var rules, input string
	return &cli.Command{
		Name:    "alert",
		Summary: "evaluate alert rules over the windows; notify Alertmanager and webhooks",
		Args:    "[check RULES.yaml... | test RULES.yaml... --input PANES.jsonl]",
		Help: `Consumes the stats topic, evaluates the alert rules (a label selector, a
measure such as tp99, qps or error_rate, a window, a threshold and a "for"
duration) and moves alerts through pending, firing and resolved, sending
notifications to Alertmanager (API v2) and webhooks. The final panes read
back from stats fill sliding windows as the aggregator section describes;
the alert section names the rules files, the receivers, the evaluation
interval and the state file that keeps alerts across restarts. Rules are
reloaded on SIGHUP and when a file changes; an invalid edit keeps the
previous rules. Serves /metrics, /healthz and /readyz on http.listen
(--listen).

  check RULES.yaml...  validate rules files offline (default: the
                       configured ones) and print ok, or every problem
                       as FILE:LINE and exit 1.
  test RULES.yaml... --input PANES.jsonl
                       replay recorded final panes through the rules, as
                       the role would evaluate them at the end of each
                       pane (aggregator.pane), and print every state
                       change (pending, firing, resolved) with its time,
                       labels and value. Bad input lines are printed as
                       FILE:LINE on stderr and skipped; the exit status is
                       then 1. Input format:

` + indent(alert.ReplayFormat, "    "),
		Example: "tpflow alert --config tpflow.yaml --rules rules.yaml --brokers kafka-1:9092\ntpflow alert check rules.yaml\ntpflow alert test rules.yaml --input panes.jsonl",
		Common:  true,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&rules, "rules", "", "alert rules `FILE[,...]`, overriding alert.rules_files")
			fs.StringVar(&input, "input", "", "recorded panes `FILE` (JSON lines) for alert test")
		},
		Override: cli.Overrides(
			cli.SetFlag("rules", "alert.rules_files", func(c *cli.Config) { c.Alert.RulesFiles = cli.SplitList(rules) }),
		),
		Role: func(ctx context.Context, env *cli.Env, cfg *cli.Config, args []string) error {
			if len(args) > 0 && args[0] == "test" {
				return testAlertRules(env, cfg, args[1:], input)
			}
			if input != "" {
				return cli.UsageError("--input is for alert test")
			}
			return runAlert(ctx, env, cfg, args)
		},
	}
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}

// testAlertRules replays the panes of input through the rules files and
// prints the state changes.
func testAlertRules(env *cli.Env, cfg *cli.Config, files []string, input string) error {
	if len(files) == 0 {
		files = cfg.Alert.RulesFiles
	}
	if len(files) == 0 {
		return cli.UsageError("test needs a RULES file")
	}
	if input == "" {
		return cli.UsageError("test needs --input PANES.jsonl")
	}
	rules, err := alert.Check(files...)
	if err != nil {
		return fmt.Errorf("invalid alert rules:\n%w", err)
	}
	f, err := os.Open(input)
	if err != nil {
		return fmt.Errorf("cannot open input: %w", err)
	}
	defer f.Close()
	res, err := alert.Replay(rules, cfg.Aggregator.Pane, input, f)
	if err != nil {
		return err
	}
	for _, e := range res.BadLines {
		fmt.Fprintln(env.Stderr, e)
	}
	for _, c := range res.Changes {
		fmt.Fprintln(env.Stdout, c)
	}
	fmt.Fprintf(env.Stdout, "%d panes, %d state changes, %d bad lines\n", res.Panes, len(res.Changes), len(res.BadLines))
	if len(res.BadLines) > 0 {
		return fmt.Errorf("%d bad input lines skipped", len(res.BadLines))
	}
	return nil
}

// runAlert is the alert role, or with the argument check the offline rules
// check.
func runAlert(ctx context.Context, env *cli.Env, cfg *cli.Config, args []string) error {
	if len(args) > 0 {
		if args[0] != "check" {
			return cli.UsageError("unknown subcommand %q (want check or test)", args[0])
		}
		return checkAlertRules(env, cfg, args[1:])
	}
	reg := cli.NewRoleRegistry()
	r, err := newAlertRole(cfg, cfg.Kafka, cli.RoleSettings(env, reg))
	if err != nil {
		return err
	}
	return cli.ServeRole(ctx, env, cfg.HTTP.Listen, reg, r, cli.ServeOptions{Name: "alert", Check: "kafka", Pprof: cfg.HTTP.PprofListen, Wait: true, HTTP: cfg.HTTP})
}

// newAlertRole is the alert role of the alert and aggregator sections,
// classifying kernel messages as the node collector does.
func newAlertRole(cfg *cli.Config, kcfg kafka.Config, s role.Settings, opts ...alert.Option) (*alert.Role, error) {
	opts = append([]alert.Option{alert.WithKernelClassifier(metrics.KernelClassifier())}, opts...)
	return alert.New(cfg.Alert, kcfg, cfg.Aggregator, s, opts...)
}

// checkAlertRules validates files, or the configured rules files when none
// are given, and prints ok.
func checkAlertRules(env *cli.Env, cfg *cli.Config, files []string) error {
	if len(files) == 0 {
		files = cfg.Alert.RulesFiles
	}
	if len(files) == 0 {
		return cli.UsageError("check needs a RULES file")
	}
	rules, err := alert.Check(files...)
	if err != nil {
		return fmt.Errorf("invalid alert rules:\n%w", err)
	}
	_, err = fmt.Fprintf(env.Stdout, "ok: %d rules in %s\n", len(rules), strings.Join(files, ", "))
	return err
}
