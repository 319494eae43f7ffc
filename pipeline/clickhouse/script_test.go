package clickhouse

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest"
)

// script runs scripts/clickhouse.sh and returns its trimmed stdout, stderr
// and whether it succeeded.
func script(t *testing.T, args ...string) (string, string, bool) {
	t.Helper()
	cmd := exec.Command(filepath.Join("..", "..", "scripts", "clickhouse.sh"), args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return strings.TrimSpace(out.String()), errb.String(), err == nil
}

func TestScriptBadArguments(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{},
		{"start"},
		{"launch", dir},
		{"start", dir, "9000"},
		{"stop", dir, "extra"},
		{"start", dir, "abc", "def"},
	} {
		if out, errOut, ok := script(t, args...); ok {
			t.Errorf("clickhouse.sh %v succeeded (%q)", args, out)
		} else if !strings.Contains(errOut, "clickhouse.sh:") {
			t.Errorf("clickhouse.sh %v: stderr %q does not explain", args, errOut)
		}
	}
	if _, _, ok := script(t, "status", filepath.Join(dir, "missing")); ok {
		t.Error("status of a directory that does not exist succeeded")
	}
}

func TestScriptStartStatusStop(t *testing.T) {
	if chtest.Bin() == "" {
		chtest.Start(t) // fails under CI, skips otherwise, with the reason
	}
	dir := t.TempDir()
	t.Cleanup(func() { script(t, "stop", dir) })
	port, errOut, ok := script(t, "start", dir)
	if !ok {
		t.Fatalf("start: %s", errOut)
	}
	if p, err := strconv.Atoi(port); err != nil || p <= 0 {
		t.Fatalf("start printed %q, want a port", port)
	}
	if again, _, ok := script(t, "start", dir); !ok || again != port {
		t.Fatalf("second start printed %q (ok=%v), want the same port %s", again, ok, port)
	}
	if st, _, ok := script(t, "status", dir); !ok || st != port {
		t.Fatalf("status printed %q (ok=%v), want %s", st, ok, port)
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "config.xml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<listen_host>127.0.0.1</listen_host>", "<tcp_port>" + port + "</tcp_port>",
		"<path>" + dir + "/data/</path>"} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("config.xml lacks %s", want)
		}
	}
	if strings.Contains(string(cfg), "interserver_http_port") {
		t.Error("config.xml opens an interserver port")
	}
	if _, errOut, ok := script(t, "stop", dir); !ok {
		t.Fatalf("stop: %s", errOut)
	}
	if st, _, ok := script(t, "status", dir); ok || st != "stopped" {
		t.Fatalf("status after stop printed %q (ok=%v), want stopped and failure", st, ok)
	}
	if _, _, ok := script(t, "stop", dir); !ok {
		t.Fatal("second stop failed")
	}
	if again, errOut, ok := script(t, "start", dir); !ok || again != port {
		t.Fatalf("restart printed %q, want the kept port %s: %s", again, port, errOut)
	}
}

func TestScriptStartTimeoutShowsLog(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "fake-server")
	// A server that logs and exits without listening.
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho 'fake server cannot bind' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join("..", "..", "scripts", "clickhouse.sh"), "start", filepath.Join(dir, "srv"))
	cmd.Env = append(os.Environ(), "CLICKHOUSE_SERVER="+fake, "CLICKHOUSE_START_TIMEOUT=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("start with a failing server succeeded: %s", out)
	}
	if !strings.Contains(string(out), "did not answer SELECT 1") || !strings.Contains(string(out), "fake server cannot bind") {
		t.Fatalf("output does not show the timeout and the log tail:\n%s", out)
	}
}
