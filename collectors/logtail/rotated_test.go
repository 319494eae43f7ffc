package logtail

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tpflow/tpflow/internal/testkit"
)

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCopytruncateReadsTheRestFromTheCopy truncates a file whose last
// lines the Tailer has not read yet: they are read from the copy.
func TestCopytruncateReadsTheRestFromTheCopy(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	appendFile(t, p, numbered("x", 0, 10))
	block, release := make(chan struct{}), make(chan struct{})
	s := &sink{}
	h := func(l Line) error {
		if string(l.Data) == "x 5" {
			close(block)
			<-release
		}
		return s.handle(l)
	}
	tl, err := NewTailer(p, testConfig(), nil, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	runTailer(t, tl)
	<-block
	// While the Tailer is busy: more lines, then copytruncate, then more.
	appendFile(t, p, numbered("x", 10, 20))
	copyFile(t, p, p+".1")
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, p, numbered("x", 20, 25))
	close(release)
	waitLines(t, s, 25)
	if got, want := s.texts(), wantLines("x", 0, 25); !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if st := tl.Stats(); st.CatchUps != 1 || st.Truncations != 1 {
		t.Errorf("stats %+v, want one catch-up and one truncation", st)
	}
}

func runTailer(t *testing.T, tl *Tailer) {
	t.Helper()
	testkit.Go(t, tl.Run)
}

// TestRotatedWhileDown rotates a file by rename and by copytruncate while
// no Tailer runs: the next Tailer reads the rotated file's unread end from
// the checkpoint, then the new file, each line once.
func TestRotatedWhileDown(t *testing.T) {
	for _, mode := range []string{"rename", "copytruncate"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "app.log")
			cp := NewCheckpoints(filepath.Join(dir, "state.json"))
			appendFile(t, p, numbered("x", 0, 10))
			s := &sink{ack: func(l Line) { cp.Ack(l.ID, l.End) }}
			_, stop := start(t, p, testConfig(), cp, s)
			waitLines(t, s, 10)
			stop()
			appendFile(t, p, numbered("x", 10, 15))
			// An older rotated file that was read to its end stays unread.
			switch mode {
			case "rename":
				if err := os.Rename(p, p+".1"); err != nil {
					t.Fatal(err)
				}
			case "copytruncate":
				copyFile(t, p, p+".1")
				if err := os.Truncate(p, 0); err != nil {
					t.Fatal(err)
				}
			}
			appendFile(t, p, numbered("x", 15, 20))
			s2 := &sink{ack: func(l Line) { cp.Ack(l.ID, l.End) }}
			tl, stop2 := start(t, p, testConfig(), cp, s2)
			waitLines(t, s2, 10)
			stop2()
			if got, want := s2.texts(), wantLines("x", 10, 20); !slices.Equal(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
			if st := tl.Stats(); st.CatchUps != 1 {
				t.Errorf("%d catch-ups, want 1", st.CatchUps)
			}
			// A third start finds nothing left in the rotated file.
			s3 := &sink{}
			_, stop3 := start(t, p, testConfig(), cp, s3)
			appendFile(t, p, "x 20\n")
			waitLines(t, s3, 1)
			stop3()
			if got := s3.texts(); !slices.Equal(got, []string{"x 20"}) {
				t.Errorf("third start read %q", got)
			}
		})
	}
}
