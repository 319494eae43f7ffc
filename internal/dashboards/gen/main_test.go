package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tpflow/tpflow/internal/dashboards"
)

func TestRunWritesFilesAndRemovesStaleDashboards(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "dashboards", "old.json")
	keep := filepath.Join(dir, "dashboards", "README")
	for _, f := range []string{stale, keep} {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := run(dir); err != nil {
		t.Fatal(err)
	}
	files, err := dashboards.Files()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != string(want) {
			t.Errorf("%s not written as generated (err %v)", name, err)
		}
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale dashboard %s not removed (%v)", stale, err)
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("a file gen does not own was removed: %v", err)
	}
}
