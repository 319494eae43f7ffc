package schemas

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tpflow/tpflow/internal/testkit"
)

// requireGenerator skips (or, with CI set, fails) when the tools that
// scripts/gen-proto.sh needs are not available.
func requireGenerator(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"protoc", "bash", "go"} {
		testkit.LookPath(t, tool+" not found (apt-get install protobuf-compiler to run the staleness check)", tool)
	}
}

// firstDiff returns the 1-based line number of the first line where a and b
// differ, or 0 if they are equal.
func firstDiff(a, b []byte) int {
	if bytes.Equal(a, b) {
		return 0
	}
	al := strings.Split(string(a), "\n")
	bl := strings.Split(string(b), "\n")
	for i := 0; i < len(al) && i < len(bl); i++ {
		if al[i] != bl[i] {
			return i + 1
		}
	}
	return min(len(al), len(bl)) + 1
}

func TestFirstDiff(t *testing.T) {
	f := func(a, b string, want int) {
		t.Helper()
		if got := firstDiff([]byte(a), []byte(b)); got != want {
			t.Errorf("firstDiff(%q, %q) = %d, want %d", a, b, got, want)
		}
	}
	f("x\ny\n", "x\ny\n", 0)
	f("x\ny\n", "x\nz\n", 2)
	f("x\n", "x\ny\n", 2)
	f("a", "b", 1)
}

// TestGeneratedCodeIsCurrent regenerates tpflow.pb.go into a temporary
// directory and fails if the committed file differs, so that an edit to
// tpflow.proto without a regeneration (or a hand edit of the generated code)
// is caught.
func TestGeneratedCodeIsCurrent(t *testing.T) {
	requireGenerator(t)
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "gen-proto.sh"), out)
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/gen-proto.sh failed: %v\n%s", err, msg)
	}
	got, err := os.ReadFile(filepath.Join(out, "schemas", "tpflowpb", "tpflow.pb.go"))
	if err != nil {
		t.Fatalf("generator wrote no output: %v", err)
	}
	want, err := os.ReadFile(filepath.Join(root, "schemas", "tpflowpb", "tpflow.pb.go"))
	if err != nil {
		t.Fatal(err)
	}
	if line := firstDiff(got, want); line != 0 {
		t.Fatalf("schemas/tpflowpb/tpflow.pb.go is stale or hand-edited (first difference at line %d); run scripts/gen-proto.sh and commit the result", line)
	}
}

// TestGenScriptRejectsExtraArgs checks the script's usage guard, so that a
// typo cannot silently write the generated code somewhere unexpected.
func TestGenScriptRejectsExtraArgs(t *testing.T) {
	testkit.LookPath(t, "bash not found", "bash")
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "gen-proto.sh"), t.TempDir(), "extra")
	cmd.Dir = root
	msg, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 2 {
		t.Fatalf("gen-proto.sh with two arguments: err = %v, want exit status 2\n%s", err, msg)
	}
	if !strings.Contains(string(msg), "usage:") {
		t.Errorf("gen-proto.sh with two arguments printed %q, want a usage line", msg)
	}
}
