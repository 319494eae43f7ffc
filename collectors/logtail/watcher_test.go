package logtail

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tpflow/tpflow/internal/testkit"
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
	defer testkit.Go(t, w.Run)()

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

// TestMinReadIntervalJoinsWrites writes 40 lines 5 ms apart: with a 200 ms
// minimum read interval they arrive in a handful of reads, not 40.
func TestMinReadIntervalJoinsWrites(t *testing.T) {
	p := filepath.Join(t.TempDir(), "app.log")
	appendFile(t, p, "")
	cfg := testConfig()
	cfg.PollInterval = time.Hour
	cfg.MinReadInterval = 200 * time.Millisecond
	s := &sink{}
	tl, _ := start(t, p, cfg, nil, s)
	waitFor(t, "first check", func() bool { return tl.Stats().Checks > 0 })
	begin := time.Now()
	for i := range 40 {
		appendFile(t, p, numbered("x", i, i+1))
		time.Sleep(5 * time.Millisecond)
	}
	waitLines(t, s, 40)
	elapsed := time.Since(begin)
	if got, want := s.texts(), wantLines("x", 0, 40); !slices.Equal(got, want) {
		t.Fatalf("got %q", got)
	}
	// One read per started 200 ms at most, plus the first check.
	if max := int64(elapsed/(200*time.Millisecond)) + 3; tl.Stats().Checks > max {
		t.Errorf("%d reads over %s, want at most %d", tl.Stats().Checks, elapsed, max)
	}
}

// TestWatcherPauseMergesEvents writes 40 lines 5 ms apart under a Watcher
// that pauses 200 ms between rounds: the kernel merges the repeated write
// events, so far fewer than 40 reach the Watcher, and every line arrives.
func TestWatcherPauseMergesEvents(t *testing.T) {
	w, err := NewWatcher(nil)
	if err != nil {
		t.Fatal(err)
	}
	w.SetPause(200 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = w.Run(ctx) }()
	p := filepath.Join(t.TempDir(), "app.log")
	appendFile(t, p, "")
	cfg := testConfig()
	cfg.PollInterval = time.Hour
	s := &sink{}
	tl, err := NewTailer(p, cfg, nil, s.handle, nil)
	if err != nil {
		t.Fatal(err)
	}
	tl.UseWatcher(w)
	tctx, tcancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tl.Run(tctx) }()
	defer func() { tcancel(); <-done }()
	waitFor(t, "watched", func() bool { return w.Dirs() == 1 })
	for i := range 40 {
		appendFile(t, p, numbered("x", i, i+1))
		time.Sleep(5 * time.Millisecond)
	}
	waitLines(t, s, 40)
	if got, want := s.texts(), wantLines("x", 0, 40); !slices.Equal(got, want) {
		t.Fatalf("got %q", got)
	}
	// Each append is one write event when nothing merges them.
	t.Logf("%d events for 40 appends", w.Events())
	if n := w.Events(); n >= 40 {
		t.Errorf("%d events reached the watcher for 40 appends", n)
	}
}
