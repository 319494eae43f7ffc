package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest"
)

// docCurl is one curl line of SECURITY.md and the status its "# → NNN"
// line after it expects.
type docCurl struct {
	line   int
	cmd    string
	status string
}

var expectRE = regexp.MustCompile(`^# → (\d{3})$`)

// securityCurls returns the curl lines of the ```sh blocks of md; each must
// be followed by its expected status.
func securityCurls(t *testing.T, md string) []docCurl {
	t.Helper()
	var out []docCurl
	inSh := false
	lines := strings.Split(md, "\n")
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "```sh"):
			inSh = true
		case strings.HasPrefix(l, "```"):
			inSh = false
		case inSh && strings.HasPrefix(l, "curl "):
			m := []string(nil)
			if i+1 < len(lines) {
				m = expectRE.FindStringSubmatch(lines[i+1])
			}
			if m == nil {
				t.Fatalf("SECURITY.md:%d: a curl line without a \"# → STATUS\" line after it", i+1)
			}
			out = append(out, docCurl{line: i + 1, cmd: l, status: m[1]})
		}
	}
	return out
}

// TestSecurityDocCurlExamples runs every curl line of SECURITY.md, as
// written, against the api role started with deploy/tpflow.production.yaml
// (the files it names written where it names them, /etc/tpflow/ moved to a
// temporary directory) and checks each answers the status the page says.
func TestSecurityDocCurlExamples(t *testing.T) {
	t.Parallel()
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is not installed (scripts/install-deps.sh installs it)")
	}
	md, err := os.ReadFile("../../SECURITY.md")
	if err != nil {
		t.Fatal(err)
	}
	curls := securityCurls(t, string(md))
	if len(curls) < 5 {
		t.Fatalf("SECURITY.md has %d curl examples, want the documented ones", len(curls))
	}
	ch := chtest.Start(t)
	ccfg := clickhouse.DefaultConfig()
	ccfg.DSN, ccfg.Database = "clickhouse://"+ch.Addr(), "tpflow_production"
	conn, err := clickhouse.OpenMigrated(context.Background(), ccfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	dir := t.TempDir()
	cfg, tf := productionTestConfig(t, dir, freeAddr(t), ccfg.DSN, freeAddr(t))
	listen := freeAddr(t)
	_, port, _ := strings.Cut(listen, ":")
	base := "https://localhost:" + port
	anon := tlsClient(tf.ClientConfig(t, false))
	startRoleWith(t, base, anon, "api", "--config", cfg, "--listen", listen)

	// curl reads ~/.curlrc: print only the status, so the lines run as
	// the page writes them.
	home := t.TempDir()
	if err := os.WriteFile(filepath.Join(home, ".curlrc"), []byte("silent\nshow-error\noutput = /dev/null\nwrite-out = \"%{http_code}\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range curls {
		line := strings.ReplaceAll(c.cmd, "/etc/tpflow/", dir+"/")
		cmd := exec.Command("bash", "-c", line)
		cmd.Env = append(os.Environ(), "HOME="+home, "TPFLOW="+base, "PATH="+filepath.Dir(curl)+":"+os.Getenv("PATH"))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if got := stdout.String(); err != nil || got != c.status {
			t.Errorf("SECURITY.md:%d: %s\n  answered %q (%v; %s), the page says %s", c.line, c.cmd, got, err, strings.TrimSpace(stderr.String()), c.status)
		}
	}
}
