//go:build !nodeploy

package main

import (
	"bytes"
	"context"
	"github.com/tpflow/tpflow/internal/cli"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDeployRender: the small site renders to one file per template; a
// node budget smaller than the agent's requests exits 1 with the
// arithmetic; a missing --out is a usage error.
func TestDeployRender(t *testing.T) {
	dir := t.TempDir()
	small := "../../deploy/helm/values-small.yaml"
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"deploy", "render", "--values", small, "--out", filepath.Join(dir, "m")}, &out, &errb); code != cli.ExitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	for _, f := range []string{"collect-daemonset.yaml", "deployments.yaml", "configmap.yaml", "rbac.yaml"} {
		b, err := os.ReadFile(filepath.Join(dir, "m", f))
		if err != nil || !bytes.Contains(b, []byte("kind:")) {
			t.Errorf("%s: %v, %d bytes", f, err, len(b))
		}
		if !strings.Contains(out.String(), f) {
			t.Errorf("stdout does not list %s:\n%s", f, out.String())
		}
	}

	tight := filepath.Join(dir, "tight.yaml")
	if err := os.WriteFile(tight, []byte("nodeBudget:\n  nodeTypes:\n    - name: tiny\n      allocatable: {cpu: 2, memory: 4Gi}\n      cpuPercent: 1\n      memoryPercent: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errb.Reset()
	code := run(context.Background(), []string{"deploy", "render", "--values", small, "--values", tight, "--out", filepath.Join(dir, "n")}, &out, &errb)
	if code != cli.ExitError {
		t.Errorf("exit %d with requests over the budget, want %d", code, cli.ExitError)
	}
	for _, w := range []string{
		"node type tiny: collect.resources.requests.cpu 50m = 50m > 1% of allocatable cpu 2 (2000m) = 20.0m",
		"node type tiny: collect.resources.requests.memory 80Mi = 80.0Mi > 1% of allocatable memory 4Gi (4096Mi) = 41.0Mi",
	} {
		if !strings.Contains(errb.String(), w) {
			t.Errorf("stderr does not show %q:\n%s", w, errb.String())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "n")); err == nil {
		t.Error("refused values still wrote manifests")
	}

	errb.Reset()
	if code := run(context.Background(), []string{"deploy", "render", "--values", small}, &out, &errb); code != cli.ExitUsage || !strings.Contains(errb.String(), "--out") {
		t.Errorf("without --out: exit %d, %s", code, errb.String())
	}
}
