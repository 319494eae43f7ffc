package main

import (
	"github.com/tpflow/tpflow/internal/cli"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest"
)

// TestMigrateReadOnlyUserCLI runs tpflow migrate --readonly-user against
// this machine's server (18.16, no SQL access control): it migrates, then
// writes the users.d file, which holds the password's hash and not the
// password; bad flags are refused before anything is migrated.
func TestMigrateReadOnlyUserCLI(t *testing.T) {
	t.Parallel()
	srv := chtest.Start(t)
	dsn := "clickhouse://" + srv.Addr() + "/tpflow"
	pw := writeTemp(t, "pw", "grafana-pa55word\n")
	out := filepath.Join(t.TempDir(), "tpflow-readonly.xml")

	code, stdout, stderr := runCLI(t, "migrate", "--clickhouse", dsn, "--readonly-user", "grafana", "--readonly-password-file", pw, "--users-file", out)
	if code != 0 {
		t.Fatalf("migrate: exit %d\n%s", code, stderr)
	}
	if !strings.Contains(stderr, "applied ") || !strings.Contains(stderr, "wrote "+out) || stdout != "" {
		t.Errorf("migrate output: stdout %q, stderr %q", stdout, stderr)
	}
	file, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<grafana>", "<readonly>2</readonly>", "<max_execution_time>30</max_execution_time>", "<database>tpflow</database>", "<password_sha256_hex>"} {
		if !strings.Contains(string(file), want) {
			t.Errorf("users.d file lacks %q:\n%s", want, file)
		}
	}
	if strings.Contains(string(file)+stdout+stderr, "grafana-pa55word") {
		t.Error("the password was written or printed")
	}
	// Without --users-file the file goes to stdout, the report to stderr.
	code, stdout, _ = runCLI(t, "migrate", "--clickhouse", dsn, "--readonly-user", "grafana", "--readonly-password-file", pw)
	if code != 0 || !strings.HasPrefix(stdout, "<?xml") {
		t.Errorf("migrate to stdout: exit %d, stdout %q", code, stdout)
	}

	for name, args := range map[string][]string{
		"no password file":  {"--readonly-user", "grafana"},
		"bad user name":     {"--readonly-user", "graf'ana", "--readonly-password-file", pw},
		"short password":    {"--readonly-user", "grafana", "--readonly-password-file", writeTemp(t, "short", "abc")},
		"file without user": {"--users-file", out},
	} {
		code, _, stderr := runCLI(t, append([]string{"migrate", "--clickhouse", "clickhouse://127.0.0.1:1/x"}, args...)...)
		if code != cli.ExitUsage {
			t.Errorf("%s: exit %d, want %d (usage)\n%s", name, code, cli.ExitUsage, stderr)
		}
	}
}
