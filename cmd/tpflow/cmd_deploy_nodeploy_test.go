//go:build nodeploy

package main

import (
	"strings"
	"testing"
)

// A build without the Helm renderer keeps the deploy command's checks and
// answers render with an error that says which build renders.
func TestDeployRenderLeftOutOfThisBuild(t *testing.T) {
	code, _, stderr := runCLI(t, "deploy", "render", "--values", "values.yaml", "--out", t.TempDir())
	if code == 0 || !strings.Contains(stderr, "-tags nodeploy") || !strings.Contains(stderr, "make build") {
		t.Fatalf("deploy render in a nodeploy build: exit %d, stderr %q; want a failure naming the build", code, stderr)
	}
	if code, _, stderr := runCLI(t, "deploy", "render", "--out", t.TempDir()); code == 0 || !strings.Contains(stderr, "--values") {
		t.Fatalf("deploy render without --values: exit %d, stderr %q", code, stderr)
	}
}
