package logtail

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestSharedWatcher follows two files of one directory and one of another
// with one Watcher and a poll interval longer than the test: only the
// shared watcher's events can bring the lines, and one directory is
// watched once.
func TestSharedWatcher(t *testing.T) {
	w, err := NewWatcher(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	d1, d2 := t.TempDir(), t.TempDir()
	paths := []string{filepath.Join(d1, "a.log"), filepath.Join(d1, "b.log"), filepath.Join(d2, "c.log")}
	cfg := testConfig()
	cfg.PollInterval = time.Hour
	sinks := make([]*sink, len(paths))
	stops := make([]func(), len(paths))
	for i, p := range paths {
		appendFile(t, p, "")
		sinks[i] = &sink{}
		tl, err := NewTailer(p, cfg, nil, sinks[i].handle, nil)
		if err != nil {
			t.Fatal(err)
		}
		tl.UseWatcher(w)
		tctx, tcancel := context.WithCancel(context.Background())
		tdone := make(chan error, 1)
		go func() { tdone <- tl.Run(tctx) }()
		stops[i] = func() {
			tcancel()
			if err := <-tdone; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	waitFor(t, "two watched directories", func() bool { return w.Dirs() == 2 })
	for round := range 3 {
		for i, p := range paths {
			appendFile(t, p, numbered(filepath.Base(p), round*10, round*10+10))
			waitLines(t, sinks[i], round*10+10)
		}
	}
	for i, p := range paths {
		if got, want := sinks[i].texts(), wantLines(filepath.Base(p), 0, 30); !slices.Equal(got, want) {
			t.Errorf("%s: got %q, want %q", p, got, want)
		}
	}
	if w.Events() == 0 {
		t.Error("no events counted")
	}
	for _, stop := range stops {
		stop()
	}
	if n := w.Dirs(); n != 0 {
		t.Errorf("%d directories still watched after every tailer stopped", n)
	}
}
