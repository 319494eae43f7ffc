package demo

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestStateNamesTheActiveFaults(t *testing.T) {
	cfg := DefaultConfig()
	cfg.IncidentAfter, cfg.IncidentFor = time.Minute, 2*time.Minute
	cfg.ErrorAfter, cfg.ErrorFor = 2*time.Minute, 2*time.Minute
	start := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	g, err := New(cfg, start)
	if err != nil {
		t.Fatal(err)
	}
	_, incApp, incMethod := g.IncidentTarget()
	_, errApp := g.ErrorTarget()
	for _, c := range []struct {
		at   time.Duration
		want string
	}{
		{30 * time.Second, "normal"},
		{90 * time.Second, "incident:" + incApp + "/" + incMethod},
		{150 * time.Second, "incident:" + incApp + "/" + incMethod + ",errors:" + errApp},
		{210 * time.Second, "errors:" + errApp},
	} {
		if got := g.State(start.Add(c.at)); got != c.want {
			t.Errorf("State at +%s = %q, want %q", c.at, got, c.want)
		}
	}
}

func TestWriteRulesWritesTheRulesInTheDir(t *testing.T) {
	g, err := New(DefaultConfig(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "data")
	path, err := g.WriteRules(dir, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, RulesFile) {
		t.Errorf("path = %s, want %s", path, filepath.Join(dir, RulesFile))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, g.Rules(10*time.Second)) {
		t.Errorf("file holds %q, want the generator's rules", b)
	}
}
