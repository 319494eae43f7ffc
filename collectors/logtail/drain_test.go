package logtail

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tpflow/tpflow/internal/testkit"
)

// checkEachOnce fails unless got holds every line of want exactly once;
// lines of different files may interleave, but each prefix keeps its
// order.
func checkEachOnce(t *testing.T, got, want []string) {
	t.Helper()
	seen := map[string]int{}
	for _, l := range got {
		seen[l]++
	}
	for _, l := range want {
		if seen[l] != 1 {
			t.Errorf("line %q arrived %d times", l, seen[l])
		}
		delete(seen, l)
	}
	for l := range seen {
		t.Errorf("unexpected line %q", l)
	}
	last := map[string]string{}
	order := map[string]int{}
	for i, l := range want {
		order[l] = i
	}
	for _, l := range got {
		p, _, _ := strings.Cut(l, " ")
		if prev, ok := last[p]; ok && order[prev] > order[l] {
			t.Errorf("%q arrived after %q", l, prev)
		}
		last[p] = l
	}
}

// TestRotationDrainsBesideTheNewFile renames the followed file while a
// writer keeps appending to it and creates a new file at the path: the new
// file is read at once, without waiting for the old one to be quiet (its
// rotate_wait is longer than the test), and the old one is read on
// through its descriptor, also after a second rename. Polling is off:
// the watcher's events alone drive the Tailer.
func TestRotationDrainsBesideTheNewFile(t *testing.T) {
	for _, shared := range []bool{false, true} {
		name := "own watcher"
		if shared {
			name = "shared watcher"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "app.log")
			cfg := testConfig()
			cfg.PollInterval = time.Hour
			cfg.RotateWait = time.Hour
			appendFile(t, p, numbered("a", 0, 10))
			s := &sink{}
			tl, err := NewTailer(p, cfg, nil, s.handle, nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			defer func() { cancel(); wg.Wait() }()
			if shared {
				w, err := NewWatcher(nil)
				if err != nil {
					t.Fatal(err)
				}
				wg.Go(func() { _ = w.Run(ctx) })
				tl.UseWatcher(w)
			}
			wg.Go(func() {
				if err := tl.Run(ctx); err != nil {
					t.Errorf("Run: %v", err)
				}
			})
			waitLines(t, s, 10)

			old, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer old.Close()
			if err := os.Rename(p, p+".1"); err != nil {
				t.Fatal(err)
			}
			appendFile(t, p, numbered("b", 0, 5))
			waitLines(t, s, 15) // the old file is still "draining" for an hour
			if _, err := old.WriteString(numbered("a", 10, 20)); err != nil {
				t.Fatal(err)
			}
			waitLines(t, s, 25)
			// Rotated twice: the drained file is renamed again, the new one
			// goes to .1, and both writers go on.
			if err := os.Rename(p+".1", p+".2"); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(p, p+".1"); err != nil {
				t.Fatal(err)
			}
			appendFile(t, p+".1", numbered("b", 5, 10))
			if _, err := old.WriteString(numbered("a", 20, 30)); err != nil {
				t.Fatal(err)
			}
			appendFile(t, p, numbered("c", 0, 5))
			waitLines(t, s, 45)
			want := append(append(wantLines("a", 0, 30), wantLines("b", 0, 10)...), wantLines("c", 0, 5)...)
			checkEachOnce(t, s.texts(), want)
			if st := tl.Stats(); st.Rotations != 2 || st.Opens != 3 {
				t.Errorf("stats %+v, want 2 rotations and 3 opens", st)
			}
		})
	}
}

// gate is a Handler that blocks on one line until it is opened.
type gate struct {
	sink
	at   string
	held chan struct{}
	open chan struct{}
}

func newGate(at string) *gate {
	return &gate{at: at, held: make(chan struct{}), open: make(chan struct{})}
}

func (g *gate) handle(l Line) error {
	if string(l.Data) == g.at {
		close(g.held)
		<-g.open
	}
	return g.sink.handle(l)
}

// TestRotatedTwiceBeforeDrained renames the followed file twice, and
// creates two new files at the path, while the Tailer is stuck in the
// middle of reading it (a handler blocked by backpressure): the
// descriptor follows the inode, so the first file is read to its end,
// and the second, which was at the path only while the Tailer was stuck,
// is found among the rotated siblings and read in full.
func TestRotatedTwiceBeforeDrained(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	appendFile(t, p, numbered("a", 0, 20))
	appendFile(t, p+".1", numbered("old", 0, 5)) // rotated before the Tailer started: not read
	fi, err := os.Stat(p + ".1")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the clock past the old file's write time", func() bool { return time.Since(fi.ModTime()) > 2*mtimeSlack })
	g := newGate("a 5")
	tl, err := NewTailer(p, testConfig(), nil, g.handle, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer testkit.Go(t, tl.Run)()
	<-g.held
	appendFile(t, p, numbered("a", 20, 40))
	for _, r := range [][2]string{{p + ".1", p + ".2"}, {p, p + ".1"}} {
		if err := os.Rename(r[0], r[1]); err != nil {
			t.Fatal(err)
		}
	}
	appendFile(t, p, numbered("b", 0, 10))
	for _, r := range [][2]string{{p + ".2", p + ".3"}, {p + ".1", p + ".2"}, {p, p + ".1"}} {
		if err := os.Rename(r[0], r[1]); err != nil {
			t.Fatal(err)
		}
	}
	appendFile(t, p, numbered("c", 0, 10))
	close(g.open)
	waitLines(t, &g.sink, 60)
	want := append(append(wantLines("a", 0, 40), wantLines("b", 0, 10)...), wantLines("c", 0, 10)...)
	checkEachOnce(t, g.texts(), want)
	if st := tl.Stats(); st.CatchUps != 1 || st.Rotations != 1 {
		t.Errorf("stats %+v, want 1 catch-up and 1 rotation", st)
	}
}

// TestNotifyDirWakesOnNewEntries watches the directories of the kubelet
// globs: a new pod directory, a new container directory in it and a new
// log file each signal, a write to a followed file does not.
func TestNotifyDirWakesOnNewEntries(t *testing.T) {
	base := t.TempDir()
	pods := filepath.Join(base, "var/log/pods")
	old := filepath.Join(pods, "ns_old_1/app")
	if err := os.MkdirAll(old, 0o755); err != nil {
		t.Fatal(err)
	}
	appendFile(t, filepath.Join(old, "0.log"), "x\n")
	globs := KubernetesGlobs(base)
	got := GlobDirs(globs)
	want := []string{pods, filepath.Join(pods, "ns_old_1"), old}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("GlobDirs = %q, want %q (var/log/containers does not exist)", got, want)
	}
	w, err := NewWatcher(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Go(func() { _ = w.Run(ctx) })
	wake := make(chan struct{}, 1)
	watch := func() {
		for _, d := range GlobDirs(globs) {
			if _, err := w.NotifyDir(d, wake); err != nil {
				t.Fatal(err)
			}
		}
	}
	watch()
	woken := func(what string) {
		t.Helper()
		select {
		case <-wake:
		case <-time.After(deadline):
			t.Fatalf("no wake-up for %s", what)
		}
	}
	// A write to a followed file is not a new entry.
	before := w.Events()
	appendFile(t, filepath.Join(old, "0.log"), "y\n")
	waitFor(t, "the write's event", func() bool { return w.Events() > before })
	select {
	case <-wake:
		t.Fatal("a write woke discovery")
	default:
	}
	newPod := filepath.Join(pods, "ns_new_2")
	if err := os.Mkdir(newPod, 0o755); err != nil {
		t.Fatal(err)
	}
	woken("a new pod directory")
	watch() // discovery watches the new directories after each round
	if err := os.Mkdir(filepath.Join(newPod, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	woken("a new container directory")
	watch()
	appendFile(t, filepath.Join(newPod, "app", "0.log"), "z\n")
	woken("a new log file")
}

// TestReadRotatedSince opens a path whose earlier files were rotated away
// while nobody read it: the rotated siblings written since the given time
// are read from 0, oldest first, before the file at the path; an older
// one, a compressed one and one with a checkpoint are left alone.
func TestReadRotatedSince(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "0.log")
	appendFile(t, p+".20260101-000000", numbered("ancient", 0, 3))
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(p+".20260101-000000", old, old); err != nil {
		t.Fatal(err)
	}
	since := time.Now().Add(-time.Minute)
	appendFile(t, p+".20261201-000000.gz", "\x1f\x8b\x08compressed\n")
	appendFile(t, p+".20261201-000001", numbered("r1", 0, 3))
	appendFile(t, p+".20261201-000002", numbered("r2", 0, 3))
	mid := time.Now().Add(-30 * time.Second)
	if err := os.Chtimes(p+".20261201-000001", mid, mid); err != nil {
		t.Fatal(err)
	}
	acked := p + ".20261201-000003"
	appendFile(t, acked, numbered("acked", 0, 3))
	cp := NewCheckpoints("")
	f, err := os.Open(acked)
	if err != nil {
		t.Fatal(err)
	}
	var scratch [FingerprintBytes]byte
	id, fi, err := identify(f, &scratch)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	cp.Ack(id, fi.Size())
	appendFile(t, p, numbered("cur", 0, 3))

	cfg := testConfig()
	cfg.Start = StartEnd // a path the checkpoints do not know, at the first open: from the end
	s := &sink{}
	tl, err := NewTailer(p, cfg, cp, s.handle, nil)
	if err != nil {
		t.Fatal(err)
	}
	var op Opening
	tl.OnFirstOpen(func(o Opening) { op = o })
	tl.ReadRotatedSince(since)
	runTailer(t, tl)
	waitLines(t, s, 6)
	appendFile(t, p, "cur 3\n")
	waitLines(t, s, 7)
	checkExactlyOnce(t, s.texts(), append(append(wantLines("r1", 0, 3), wantLines("r2", 0, 3)...), "cur 3"))
	if op.How != OpenEnd || op.Rotated != 2 {
		t.Errorf("opening %+v, want from the end with 2 rotated files read", op)
	}
}

// TestRenamedAwayAndBack renames the followed file away, puts another file
// at the path, then renames the first one back: it is taken back from the
// drains where it was, not read again from 0.
func TestRenamedAwayAndBack(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	cfg := testConfig()
	cfg.RotateWait = time.Hour
	appendFile(t, p, numbered("a", 0, 10))
	s := &sink{}
	tl, _ := start(t, p, cfg, nil, s)
	waitLines(t, s, 10)
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, p, numbered("b", 0, 5))
	waitLines(t, s, 15)
	if err := os.Rename(p, p+".b"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p+".1", p); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first file back at the path", func() bool { return tl.Stats().Opens == 3 })
	appendFile(t, p, numbered("a", 10, 15))
	waitLines(t, s, 20)
	checkEachOnce(t, s.texts(), append(wantLines("a", 0, 15), wantLines("b", 0, 5)...))
}
