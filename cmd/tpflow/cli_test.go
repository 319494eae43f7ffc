package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tpflow/tpflow/internal/cli"
	"github.com/tpflow/tpflow/internal/config/sections"
)

// roleNames are the commands that load a configuration and run a role.
var roleNames = []string{"run", "collect", "aggregate", "sink", "alert", "report", "rollup", "migrate", "api", "control", "broker", "loadgen"}

// runCLI runs the CLI in-process and returns its exit status and output.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHelpListsEveryCommand(t *testing.T) {
	for _, arg := range []string{"--help", "-h", "help"} {
		code, out, errOut := runCLI(t, arg)
		if code != cli.ExitOK || errOut != "" {
			t.Fatalf("%s: exit %d, stderr %q", arg, code, errOut)
		}
		names := append(append([]string{}, roleNames...), "config", "deploy", "version")
		for _, c := range commands() {
			found := false
			for _, n := range names {
				found = found || n == c.Name
			}
			if !found {
				t.Errorf("command %q is not in the test's list", c.Name)
			}
		}
		for _, n := range names {
			var line string
			for _, l := range strings.Split(out, "\n") {
				if strings.HasPrefix(strings.TrimSpace(l), n+" ") {
					line = l
				}
			}
			if line == "" || len(strings.Fields(line)) < 3 {
				t.Errorf("%s: no line describing %q in:\n%s", arg, n, out)
			}
		}
	}
}

func TestNoArgumentsIsUsageError(t *testing.T) {
	code, out, errOut := runCLI(t)
	if code != cli.ExitUsage || out != "" || !strings.Contains(errOut, "Usage: tpflow COMMAND") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestUnknownCommand(t *testing.T) {
	tests := map[string]string{
		"agregate":   "tpflow: unknown command \"agregate\" (did you mean \"aggregate\"?)\nRun 'tpflow --help' for usage.\n",
		"frobnicate": "tpflow: unknown command \"frobnicate\"\nRun 'tpflow --help' for usage.\n",
		"--verbose":  "tpflow: unknown command \"--verbose\"\nRun 'tpflow --help' for usage.\n",
	}
	for arg, want := range tests {
		code, out, errOut := runCLI(t, arg)
		if code != cli.ExitUsage || out != "" || errOut != want {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 2, stderr %q", arg, code, out, errOut, want)
		}
	}
	code, _, errOut := runCLI(t, "help", "nope")
	if code != cli.ExitUsage || !strings.Contains(errOut, `unknown command "nope"`) {
		t.Errorf("help nope: exit %d, stderr %q", code, errOut)
	}
}

// unimplementedRoles are the roles that still exit 2.
var unimplementedRoles = []string{}

func TestUnimplementedRolesExit2(t *testing.T) {
	for _, name := range unimplementedRoles {
		code, out, errOut := runCLI(t, name)
		want := "tpflow " + name + ": the " + name + " role is not implemented in this build\n"
		if code != cli.ExitUsage || out != "" || errOut != want {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 2 and %q", name, code, out, errOut, want)
		}
	}
}

func TestRoleHelp(t *testing.T) {
	for _, c := range commands() {
		for _, arg := range []string{"--help", "-h"} {
			code, out, errOut := runCLI(t, c.Name, arg)
			if code != cli.ExitOK || errOut != "" {
				t.Errorf("%s %s: exit %d, stderr %q", c.Name, arg, code, errOut)
				continue
			}
			for _, want := range []string{"Usage: tpflow " + c.Name, "Example:\n  tpflow " + c.Name} {
				if !strings.Contains(out, want) {
					t.Errorf("%s %s: output lacks %q:\n%s", c.Name, arg, want, out)
				}
			}
			if c.Help == "" || !strings.Contains(out, strings.TrimSpace(c.Help)) {
				t.Errorf("%s: help text missing from:\n%s", c.Name, out)
			}
		}
		// `tpflow help CMD` prints the same.
		_, viaHelp, _ := runCLI(t, "help", c.Name)
		_, viaFlag, _ := runCLI(t, c.Name, "--help")
		if viaHelp != viaFlag {
			t.Errorf("help %s differs from %s --help:\n%s\n---\n%s", c.Name, c.Name, viaHelp, viaFlag)
		}
	}
	// Every serving role says how its listener is protected.
	for _, name := range cli.ServingRoles {
		if _, out, _ := runCLI(t, name, "--help"); !strings.Contains(out, "http.auth") || !strings.Contains(out, "SECURITY.md") {
			t.Errorf("%s --help does not say how its listener is protected:\n%s", name, out)
		}
	}
	// Role commands list the common flags, and their own, with defaults.
	for _, name := range roleNames {
		_, out, _ := runCLI(t, name, "--help")
		for _, want := range []string{"--config FILE", "--brokers HOST:PORT[,...]", "--clickhouse DSN", "--listen HOST:PORT"} {
			if !strings.Contains(out, want) {
				t.Errorf("%s --help lacks %q", name, want)
			}
		}
	}
	_, out, _ := runCLI(t, "loadgen", "--help")
	for _, want := range []string{"--rate int", "(default 10000)", "--duration duration", "--methods int", "(default 1000)"} {
		if !strings.Contains(out, want) {
			t.Errorf("loadgen --help lacks %q:\n%s", want, out)
		}
	}
	_, out, _ = runCLI(t, "broker", "--help")
	if !strings.Contains(out, "overriding broker.listen (default from config: 127.0.0.1:9092)") {
		t.Errorf("broker --listen should override broker.listen:\n%s", out)
	}
}

func TestVersion(t *testing.T) {
	saved := version
	defer func() { version = saved }()
	for _, v := range []string{"dev", "v1.2.3-4-gabcdef-dirty"} {
		version = v
		for _, args := range [][]string{{"version"}, {"--version"}} {
			code, out, errOut := runCLI(t, args...)
			if code != cli.ExitOK || errOut != "" || !strings.HasPrefix(out, "tpflow "+v+" (go") {
				t.Errorf("%v with version %q: exit %d, stdout %q, stderr %q", args, v, code, out, errOut)
			}
		}
	}
	code, _, errOut := runCLI(t, "version", "extra")
	if code != cli.ExitUsage || !strings.Contains(errOut, `unexpected argument "extra"`) {
		t.Errorf("version extra: exit %d, stderr %q", code, errOut)
	}
}

func TestBadFlagsAndArguments(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"aggregate", "--nope"}, "tpflow aggregate: flag provided but not defined: -nope\nRun 'tpflow aggregate --help' for usage.\n"},
		{[]string{"aggregate", "extra"}, "tpflow aggregate: unexpected argument \"extra\"\nRun 'tpflow aggregate --help' for usage.\n"},
		{[]string{"aggregate", "--config"}, "tpflow aggregate: flag needs an argument: -config\nRun 'tpflow aggregate --help' for usage.\n"},
		{[]string{"loadgen", "--rate", "0"}, "tpflow loadgen: --rate must be at least 1, got 0\nRun 'tpflow loadgen --help' for usage.\n"},
		{[]string{"loadgen", "--rate", "many"}, "tpflow loadgen: invalid value \"many\" for flag -rate: parse error\nRun 'tpflow loadgen --help' for usage.\n"},
		{[]string{"loadgen", "--duration", "-1s"}, "tpflow loadgen: --duration must not be negative, got -1s\nRun 'tpflow loadgen --help' for usage.\n"},
		{[]string{"loadgen", "--methods", "0"}, "tpflow loadgen: --methods must be at least 1, got 0\nRun 'tpflow loadgen --help' for usage.\n"},
		{[]string{"loadgen", "--backdate", "-1h"}, "tpflow loadgen: --backdate must not be negative, got -1h0m0s\nRun 'tpflow loadgen --help' for usage.\n"},
		{[]string{"sink", "--migrate=maybe"}, "tpflow sink: invalid boolean value \"maybe\" for -migrate: parse error\nRun 'tpflow sink --help' for usage.\n"},
		{[]string{"config"}, "tpflow config: missing subcommand: print-defaults, print or check\nRun 'tpflow config --help' for usage.\n"},
		{[]string{"config", "lint"}, "tpflow config: unknown subcommand \"lint\" (want print-defaults, print or check)\nRun 'tpflow config --help' for usage.\n"},
		{[]string{"config", "check"}, "tpflow config: check needs a FILE\nRun 'tpflow config --help' for usage.\n"},
		{[]string{"config", "check", "a.yaml", "b.yaml"}, "tpflow config: check takes one FILE, got 2 arguments\nRun 'tpflow config --help' for usage.\n"},
		{[]string{"config", "check", "--config", "a.yaml", "b.yaml"}, "tpflow config: check got both FILE \"b.yaml\" and --config \"a.yaml\"\nRun 'tpflow config --help' for usage.\n"},
		{[]string{"config", "print-defaults", "x"}, "tpflow config: print-defaults takes no arguments, got \"x\"\nRun 'tpflow config --help' for usage.\n"},
		{[]string{"config", "print-defaults", "--brokers", "a:1"}, "tpflow config: print-defaults takes no flags\nRun 'tpflow config --help' for usage.\n"},
	}
	for _, tt := range tests {
		code, out, errOut := runCLI(t, tt.args...)
		if code != cli.ExitUsage || out != "" || errOut != tt.want {
			t.Errorf("%q: exit %d, stdout %q, stderr %q\nwant exit 2, stderr %q", tt.args, code, out, errOut, tt.want)
		}
	}
}

func TestRoleWithBadConfigExits1(t *testing.T) {
	bad := writeTemp(t, "tpflow.yaml", "aggregator:\n  pane: ten\n")
	code, out, errOut := runCLI(t, "aggregate", "--config", bad)
	want := bad + ":2:9: aggregator.pane: cannot parse \"ten\" as a duration\n"
	if code != cli.ExitError || out != "" || errOut != want {
		t.Errorf("exit %d, stdout %q, stderr %q; want exit 1, %q", code, out, errOut, want)
	}
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	code, _, errOut = runCLI(t, "sink", "--config", missing)
	if code != cli.ExitError || !strings.HasPrefix(errOut, "tpflow sink: cannot read config: open "+missing) {
		t.Errorf("missing file: exit %d, stderr %q", code, errOut)
	}
}

func TestRoleWithGoodConfigReachesRole(t *testing.T) {
	// A valid configuration gets past loading to the role itself.
	good := writeTemp(t, "tpflow.yaml", "log:\n  format: json\n")
	code, _, errOut := runCLI(t, "alert", "--config", good, "--brokers", "k1:9092,k2:9092")
	if code != cli.ExitError || errOut != "tpflow alert: no alert rules files configured (alert.rules_files or --rules)\n" {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestConfigCheck(t *testing.T) {
	good := writeTemp(t, "good.yaml", "kafka:\n  compression: zstd\n")
	code, out, errOut := runCLI(t, "config", "check", good)
	if code != cli.ExitOK || out != "ok\n" || errOut != "" {
		t.Errorf("good: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, _ = runCLI(t, "config", "check", "--config", good)
	if code != cli.ExitOK || out != "ok\n" {
		t.Errorf("good via --config: exit %d, stdout %q", code, out)
	}

	bad := writeTemp(t, "bad.yaml", "kafka:\n  compression: brotli\n  brokerz: []\nlog:\n  level: loud\n")
	code, out, errOut = runCLI(t, "config", "check", bad)
	want := bad + ":2:3: kafka.compression: unknown compression \"brotli\"; use none, gzip, snappy, lz4 or zstd\n" +
		bad + ":3:3: kafka: unknown key \"brokerz\" (did you mean \"brokers\"?)\n" +
		bad + ":5:3: log.level: must be debug, info, warn or error, got \"loud\"\n"
	if code != cli.ExitError || out != "" || errOut != want {
		t.Errorf("bad: exit %d, stdout %q, stderr:\n%s\nwant:\n%s", code, out, errOut, want)
	}

	code, _, errOut = runCLI(t, "config", "check", filepath.Join(t.TempDir(), "none.yaml"))
	if code != cli.ExitError || !strings.Contains(errOut, "cannot read config") {
		t.Errorf("missing: exit %d, stderr %q", code, errOut)
	}
}

func TestConfigCheckOverrides(t *testing.T) {
	// A flag fixes a bad value in the file; flags may follow FILE.
	f := writeTemp(t, "t.yaml", "clickhouse:\n  dsn: http://x:8123/db\n")
	code, out, errOut := runCLI(t, "config", "check", f, "--clickhouse", "clickhouse://ch:9000/tpflow")
	if code != cli.ExitOK || out != "ok\n" {
		t.Errorf("override fixes file: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// A bad value from a flag names the flag, not a line.
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--brokers", ""}, f + ": kafka.brokers: at least one broker address is required (set by --brokers)\n"},
		{[]string{"--brokers", "k1:9092, nope"}, f + ": kafka.brokers[1]: \"nope\" is not a host:port address (set by --brokers)\n"},
		{[]string{"--listen", "8080"}, f + ": http.listen: \"8080\" is not HOST:PORT (set by --listen)\n"},
	}
	for _, tt := range tests {
		args := append([]string{"config", "check", "--clickhouse", "clickhouse://ch:9000/tpflow", f}, tt.args...)
		code, out, errOut := runCLI(t, args...)
		if code != cli.ExitError || out != "" || errOut != tt.want {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %q", tt.args, code, out, errOut, tt.want)
		}
	}
	// Without a file, an override error has no file name.
	code, _, errOut = runCLI(t, "broker", "--listen", "nowhere")
	if want := "broker.listen: \"nowhere\" is not a host:port address (set by --listen)\n"; code != cli.ExitError || errOut != want {
		t.Errorf("broker --listen: exit %d, stderr %q, want %q", code, errOut, want)
	}
	// "--" ends the flags: what follows is FILE even if it looks like a flag.
	dash := writeTemp(t, "-x.yaml", "")
	code, out, _ = runCLI(t, "config", "check", "--", dash)
	if code != cli.ExitOK || out != "ok\n" {
		t.Errorf("-- FILE: exit %d, stdout %q", code, out)
	}
}

func TestPrintDefaultsCLIRoundTrip(t *testing.T) {
	code, out, errOut := runCLI(t, "config", "print-defaults")
	if code != cli.ExitOK || errOut != "" || !strings.Contains(out, "aggregator:\n") {
		t.Fatalf("exit %d, stderr %q, stdout:\n%s", code, errOut, out)
	}
	f := writeTemp(t, "defaults.yaml", out)
	code, got, errOut := runCLI(t, "config", "check", f)
	if code != cli.ExitOK || got != "ok\n" {
		t.Errorf("print-defaults output fails check: exit %d, stderr:\n%s", code, errOut)
	}
}

// TestConfigPrintShowsNoSecret prints a configuration whose secrets are
// given inline, from a file and from the environment, and checks that no
// secret and no DSN password is in the output, while the secrets were
// loaded.
func TestConfigPrintShowsNoSecret(t *testing.T) {
	const inline, fromFile, fromEnv, inDSN = "inline-pw-4711", "file-pw-4712", "env-pw-4713", "dsn-pw-4714"
	const token, tokenHash, bcryptHash = "http-token-4715-abcdefgh", "4716aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "$2a$04$4717uDxg7cATDvGMN4RUnuW4uvSHSTmexnxSGzU7kbvfsdmXzWw4e"
	pwFile := writeTemp(t, "sasl.pw", fromFile+"\n")
	t.Setenv("TPFLOW_TEST_CH_PASSWORD", fromEnv)
	cfg := writeTemp(t, "tpflow.yaml", `kafka:
  sasl:
    mechanism: plain
    username: tp
    password_file: `+pwFile+`
clickhouse:
  dsn: clickhouse://writer:`+inDSN+`@ch:9000
http:
  auth:
    tokens:
      - {name: a, role: viewer, token: `+token+`}
      - {name: b, role: admin, sha256: `+tokenHash+`}
    users:
      - {name: c, role: viewer, password_bcrypt: "`+bcryptHash+`"}
alert:
  webhooks:
    - url: https://hooks.example.net/tpflow
      secret: `+inline+`
      timeout: 10s
      min_backoff: 1s
      max_backoff: 30s
      queue_size: 10
      batch_size: 1
`)
	code, out, errOut := runCLI(t, "config", "print", cfg)
	if code != cli.ExitOK {
		t.Fatalf("config print: exit %d, stderr %s", code, errOut)
	}
	for _, s := range []string{inline, fromFile, fromEnv, inDSN, token, tokenHash, bcryptHash} {
		if strings.Contains(out+errOut, s) {
			t.Errorf("config print shows the secret %q:\n%s", s, out)
		}
	}
	for _, want := range []string{"  dsn: clickhouse://writer:xxxxx@ch:9000\n", "    password: '[REDACTED]'\n", "secret: '[REDACTED]'"} {
		if !strings.Contains(out, want) {
			t.Errorf("config print lacks %q:\n%s", want, out)
		}
	}
	// The same secrets, loaded: the file's value and the environment's.
	env := writeTemp(t, "env.yaml", "clickhouse:\n  password: ${TPFLOW_TEST_CH_PASSWORD}\nkafka:\n  sasl:\n    mechanism: plain\n    username: tp\n    password_file: "+pwFile+"\n")
	loaded, err := sections.Load(env, mustRead(t, env), nil)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.ClickHouse.Password.Reveal() != fromEnv || loaded.Kafka.SASL.Password.Reveal() != fromFile {
		t.Errorf("loaded clickhouse.password %q, kafka.sasl.password %q; want the environment's and the file's", loaded.ClickHouse.Password.Reveal(), loaded.Kafka.SASL.Password.Reveal())
	}
	if code, out, _ := runCLI(t, "config", "print", env); code != cli.ExitOK || strings.Contains(out, fromEnv) || strings.Contains(out, fromFile) {
		t.Errorf("config print of %s: exit %d, shows a secret:\n%s", env, code, out)
	}
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestMissingSecretFileIsPlaced checks that a password_file that cannot
// be read is reported at its line, with its path.
func TestMissingSecretFileIsPlaced(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.pw")
	cfg := writeTemp(t, "tpflow.yaml", "clickhouse:\n  dsn: clickhouse://ch:9000\n  password_file: "+missing+"\n")
	code, _, errOut := runCLI(t, "config", "check", cfg)
	want := cfg + ":3:3: clickhouse.password_file: cannot read the secret: open " + missing + ": no such file or directory\n"
	if code != cli.ExitError || errOut != want {
		t.Errorf("config check: exit %d, stderr %q, want %q", code, errOut, want)
	}
}

func TestRoleFlagOverrides(t *testing.T) {
	// A role's own flags override its section and are named in errors.
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"aggregate", "--flush-interval", "1ms"}, "aggregate.flush_interval: must be between 10ms and 1h, got 1ms (set by --flush-interval)\n"},
		{[]string{"aggregate", "--group", ""}, "aggregate.group_id: must not be empty (set by --group)\n"},
		{[]string{"sink", "--group", ""}, "sink.group_id: must not be empty (set by --group)\n"},
		{[]string{"broker", "--sync-writes"}, "broker.sync_writes: needs data_dir: an in-memory broker has nothing to sync (set by --sync-writes)\n"},
		{[]string{"config", "check", "--clickhouse", "clickhouse://ch:9000/tp-flow", "--", os.DevNull}, os.DevNull + ": clickhouse.database: must match ^[A-Za-z_][A-Za-z0-9_]{0,63}$, got \"tp-flow\" (set by --clickhouse)\n"},
	}
	for _, tt := range tests {
		code, out, errOut := runCLI(t, tt.args...)
		if code != cli.ExitError || out != "" || errOut != tt.want {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %q", tt.args, code, out, errOut, tt.want)
		}
	}
}

func TestFlagHelpShowsOneDefault(t *testing.T) {
	// A flag overriding a configuration key shows the key's default only,
	// not also the flag's zero value ("(default from config: 1s) (default 0s)").
	for _, c := range commands() {
		_, out, _ := runCLI(t, c.Name, "--help")
		lines := strings.Split(out, "\n")
		for i, line := range lines {
			if i == 0 || !strings.HasPrefix(lines[i-1], "  --") {
				continue // not a flag's usage line
			}
			if n := strings.Count(line, "(default"); n > 1 {
				t.Errorf("%s --help: %d defaults in %q", c.Name, n, line)
			}
		}
	}
	_, out, _ := runCLI(t, "aggregate", "--help")
	if want := "overriding aggregate.flush_interval (default from config: 1s)\n"; !strings.Contains(out, want) {
		t.Errorf("aggregate --help lacks %q:\n%s", want, out)
	}
}
