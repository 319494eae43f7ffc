package procstat

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadsThisProcess(t *testing.T) {
	// Burn a little CPU so that the reading cannot be zero by accident of
	// resolution.
	x := 0
	for i := range 50_000_000 {
		x ^= i
	}
	_ = x
	cpu, err := CPUSeconds(os.Getpid())
	if err != nil || cpu <= 0 {
		t.Errorf("CPUSeconds = %g, %v; want > 0", cpu, err)
	}
	rss, hwm, err := Memory(os.Getpid())
	if err != nil || rss <= 0 || hwm < rss {
		t.Errorf("Memory = rss %d, hwm %d, %v; want 0 < rss <= hwm", rss, hwm, err)
	}
	if _, _, err := Memory(-1); err == nil {
		t.Error("Memory of pid -1: no error")
	}
	if BusyCPU() <= 0 {
		t.Error("BusyCPU = 0")
	}
	if _, gib := Machine(); gib <= 0 {
		t.Errorf("Machine memory = %g GiB", gib)
	}
}

func TestTailKeepsTheEnd(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(p, []byte(strings.Repeat("a", 5000)+"END"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := Tail(p); len(got) != 3000 || !strings.HasSuffix(got, "END") {
		t.Errorf("Tail: %d bytes ending %q", len(got), got[len(got)-3:])
	}
	if got := Tail(filepath.Join(t.TempDir(), "missing")); got != "" {
		t.Errorf("Tail of a missing file = %q", got)
	}
}
