package logtail

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// msgCounter is a log handler that counts the records of one message.
type msgCounter struct {
	msg string
	n   *atomic.Int32
}

func (c msgCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c msgCounter) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c msgCounter) WithGroup(string) slog.Handler            { return c }
func (c msgCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Message == c.msg {
		c.n.Add(1)
	}
	return nil
}

// TestPlantedLinkOutsideRootIsNotRead rotates the followed file away and puts a symbolic link to a
// file outside the root at its path, as an attacker with write access to
// the log directory could between two discoveries.
func TestPlantedLinkOutsideRootIsNotRead(t *testing.T) {
	for _, tc := range []struct {
		name    string
		confine bool // the source root given, else the path's directory
	}{{"source root", true}, {"path directory", false}} {
		t.Run(tc.name, func(t *testing.T) {
			root, err := filepath.EvalSymlinks(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			outside := t.TempDir()
			secret := filepath.Join(outside, "secret.log")
			appendFile(t, secret, "SECRET password=hunter2\n")
			dir := filepath.Join(root, "app")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, "app.log")
			appendFile(t, p, numbered("a", 0, 3))

			var logged atomic.Int32
			s := &sink{}
			tl, err := NewTailer(p, testConfig(), nil, s.handle, slog.New(msgCounter{refusedMsg, &logged}))
			if err != nil {
				t.Fatal(err)
			}
			if tc.confine {
				if err := tl.ConfineTo(root); err != nil {
					t.Fatal(err)
				}
			}
			runTailer(t, tl)
			waitLines(t, s, 3)

			if err := os.Rename(p, p+".1"); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(secret, p); err != nil {
				t.Fatal(err)
			}
			appendFile(t, p+".1", numbered("a", 3, 5))
			waitFor(t, "the link refused", func() bool { return tl.Stats().Refused >= 1 })
			// Many more looks at the path: the link is still refused, and
			// counted and logged once.
			checks := tl.Stats().Checks
			waitFor(t, "more checks", func() bool { return tl.Stats().Checks >= checks+20 })
			waitLines(t, s, 5)
			for _, l := range s.texts() {
				if strings.Contains(l, "SECRET") {
					t.Fatalf("the file outside the root was read: %q", s.texts())
				}
			}
			if n := tl.Stats().Refused; n != 1 {
				t.Fatalf("refusals counted %d, want 1", n)
			}
			if n := logged.Load(); n != 1 {
				t.Fatalf("refusal logged %d times, want 1", n)
			}

			// A real file at the path again is followed.
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			appendFile(t, p, numbered("b", 0, 2))
			waitLines(t, s, 7)
			checkEachOnce(t, s.texts(), append(wantLines("a", 0, 5), wantLines("b", 0, 2)...))

			// A directory on the way swapped for a link out of the root:
			// refused only when the source root is known.
			if !tc.confine {
				return
			}
			if err := os.Rename(dir, dir+".old"); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, dir); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(secret, filepath.Join(outside, "app.log")); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the directory link refused", func() bool { return tl.Stats().Refused >= 2 })
			checks = tl.Stats().Checks
			waitFor(t, "more checks", func() bool { return tl.Stats().Checks >= checks+20 })
			for _, l := range s.texts() {
				if strings.Contains(l, "SECRET") {
					t.Fatalf("the file outside the root was read: %q", s.texts())
				}
			}
		})
	}
}

func TestConfineToRefusesAPathOutsideTheRoot(t *testing.T) {
	root := t.TempDir()
	tl, err := NewTailer(filepath.Join(t.TempDir(), "x.log"), testConfig(), nil, (&sink{}).handle, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tl.ConfineTo(root); err == nil {
		t.Fatal("a path outside the root was accepted")
	}
}

// TestRootDirectoryCreatedAgain deletes the followed file's directory, the
// Tailer's root by default, and creates it again with a new file: the new
// file is read, through a root opened on the new directory.
func TestRootDirectoryCreatedAgain(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "app")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "app.log")
	appendFile(t, p, numbered("a", 0, 2))
	s := &sink{}
	start(t, p, testConfig(), nil, s)
	waitLines(t, s, 2)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	appendFile(t, p, numbered("b", 0, 2))
	waitLines(t, s, 4)
	checkEachOnce(t, s.texts(), append(wantLines("a", 0, 2), wantLines("b", 0, 2)...))
}
