package logtail

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tpflow/tpflow/internal/testkit"
)

// deadline is generous: the tests poll for a condition and only fail when
// it is not met this long, so a loaded machine slows them without failing.
const deadline = 20 * time.Second

func testConfig() Config {
	c := DefaultConfig()
	c.Start = StartBeginning
	c.PollInterval = 20 * time.Millisecond
	c.PartialTimeout = 100 * time.Millisecond
	c.RotateWait = 50 * time.Millisecond
	c.MaxLineBytes = 64
	c.ReadBufferBytes = 512
	return c
}

type got struct {
	Line
	at time.Time
}

type sink struct {
	mu    sync.Mutex
	lines []got
	ack   func(Line) // called under mu
}

func (s *sink) handle(l Line) error {
	l.Data = append([]byte(nil), l.Data...)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, got{l, time.Now()})
	if s.ack != nil {
		s.ack(l)
	}
	return nil
}

func (s *sink) get() []got {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]got(nil), s.lines...)
}

func (s *sink) texts() []string {
	var out []string
	for _, g := range s.get() {
		out = append(out, string(g.Data))
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitLines(t *testing.T, s *sink, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d lines", n), func() bool { return len(s.get()) >= n })
}

// start runs a Tailer until the test ends and returns it; stop ends it
// early, like a crash of the collector.
func start(t *testing.T, path string, cfg Config, cp *Checkpoints, s *sink) (tl *Tailer, stop func()) {
	t.Helper()
	tl, err := NewTailer(path, cfg, cp, s.handle, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tl, testkit.Go(t, tl.Run)
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func numbered(prefix string, from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "%s %d\n", prefix, i)
	}
	return b.String()
}

func wantLines(prefix string, from, to int) []string {
	return strings.Split(strings.TrimSuffix(numbered(prefix, from, to), "\n"), "\n")
}

// checkExactlyOnce fails unless got holds every line of want once, in order.
func checkExactlyOnce(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("lines:\n got %q\nwant %q", got, want)
	}
}

func TestAppendAndRead(t *testing.T) {
	p := filepath.Join(t.TempDir(), "app.log")
	appendFile(t, p, numbered("old", 0, 3))
	s := &sink{}
	tl, _ := start(t, p, testConfig(), nil, s)
	for i := 0; i < 100; i += 10 {
		appendFile(t, p, numbered("new", i, i+10))
	}
	waitLines(t, s, 103)
	checkExactlyOnce(t, s.texts(), append(wantLines("old", 0, 3), wantLines("new", 0, 100)...))
	var off int64
	for _, g := range s.get() {
		if g.Offset != off || g.End != off+int64(len(g.Data))+1 || g.Partial || g.Truncated {
			t.Fatalf("line %q: offset %d end %d partial %v truncated %v, want offset %d", g.Data, g.Offset, g.End, g.Partial, g.Truncated, off)
		}
		off = g.End
	}
	if st := tl.Stats(); st.Lines != 103 || st.Bytes != off || st.Opens != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestStartEnd(t *testing.T) {
	p := filepath.Join(t.TempDir(), "app.log")
	appendFile(t, p, numbered("old", 0, 3))
	cfg := testConfig()
	cfg.Start = StartEnd
	s := &sink{}
	tl, _ := start(t, p, cfg, nil, s)
	waitFor(t, "open", func() bool { return tl.Stats().Opens == 1 })
	appendFile(t, p, numbered("new", 0, 2))
	waitLines(t, s, 2)
	checkExactlyOnce(t, s.texts(), wantLines("new", 0, 2))
}

func TestPartialLineFlushedAfterTimeout(t *testing.T) {
	p := filepath.Join(t.TempDir(), "app.log")
	cfg := testConfig()
	s := &sink{}
	tl, _ := start(t, p, cfg, nil, s) // the file appears after start: read from 0
	written := time.Now()
	appendFile(t, p, "abc")
	waitLines(t, s, 1)
	g := s.get()[0]
	if string(g.Data) != "abc" || !g.Partial || g.Offset != 0 || g.End != 3 {
		t.Fatalf("got %+v", g)
	}
	if waited := g.at.Sub(written); waited < cfg.PartialTimeout {
		t.Fatalf("partial line flushed after %s, before the %s time-out", waited, cfg.PartialTimeout)
	}
	appendFile(t, p, "def\n")
	waitLines(t, s, 2)
	if g := s.get()[1]; string(g.Data) != "def" || g.Partial || g.Offset != 3 || g.End != 7 {
		t.Fatalf("got %+v", g)
	}
	if st := tl.Stats(); st.Partial != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPartialLineCompletedBeforeTimeout(t *testing.T) {
	p := filepath.Join(t.TempDir(), "app.log")
	cfg := testConfig()
	cfg.PartialTimeout = time.Hour
	s := &sink{}
	tl, _ := start(t, p, cfg, nil, s)
	appendFile(t, p, "ab")
	waitFor(t, "partial bytes read", func() bool { return tl.Stats().Bytes == 2 })
	appendFile(t, p, "c\n")
	waitLines(t, s, 1)
	if g := s.get()[0]; string(g.Data) != "abc" || g.Partial || g.End != 4 {
		t.Fatalf("got %+v", g)
	}
}

func TestLongLineTruncated(t *testing.T) {
	p := filepath.Join(t.TempDir(), "app.log")
	cfg := testConfig() // 64-byte lines, 512-byte reads
	long := strings.Repeat("x", 200)
	huge := strings.Repeat("y", 2000) // spans several reads
	appendFile(t, p, long+"\nshort\n"+huge+"\n")
	s := &sink{}
	tl, _ := start(t, p, cfg, nil, s)
	waitLines(t, s, 3)
	g := s.get()
	if string(g[0].Data) != long[:64] || !g[0].Truncated || g[0].End != 201 {
		t.Fatalf("long line %+v", g[0])
	}
	if string(g[1].Data) != "short" || g[1].Truncated || g[1].Offset != 201 {
		t.Fatalf("short line %+v", g[1])
	}
	if string(g[2].Data) != huge[:64] || !g[2].Truncated || g[2].End != 201+6+2001 {
		t.Fatalf("huge line %+v", g[2])
	}
	if st := tl.Stats(); st.Truncated != 2 || st.DroppedBytes != 136+1936 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRenameRotation(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	cfg := testConfig()
	cfg.RotateWait = time.Second // the late write below must land inside it
	appendFile(t, p, numbered("a", 0, 50))
	s := &sink{}
	tl, _ := start(t, p, cfg, nil, s)
	waitLines(t, s, 20) // mid-file or done: either way nothing may be lost

	// A writer keeps its descriptor across the rename and writes once more.
	w, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteString(numbered("a", 50, 60)); err != nil {
		t.Fatal(err)
	}
	w.Close()
	appendFile(t, p, numbered("b", 0, 30))
	waitLines(t, s, 90)
	// A second rotation, this time of a file that is being read.
	if err := os.Rename(p, p+".2"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, p, numbered("c", 0, 30))
	waitLines(t, s, 120)

	want := append(append(wantLines("a", 0, 60), wantLines("b", 0, 30)...), wantLines("c", 0, 30)...)
	checkExactlyOnce(t, s.texts(), want)
	waitFor(t, "rotations counted", func() bool { st := tl.Stats(); return st.Rotations == 2 && st.Opens == 3 })
	if st := tl.Stats(); st.Truncations != 0 || st.Rewrites != 0 || st.Partial != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCopyTruncate(t *testing.T) {
	p := filepath.Join(t.TempDir(), "app.log")
	appendFile(t, p, numbered("line", 0, 50))
	s := &sink{}
	tl, _ := start(t, p, testConfig(), nil, s)
	waitLines(t, s, 50)

	// copytruncate: copy, then truncate in place; the writer goes on at 0.
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p+".1", b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 0); err != nil {
		t.Fatal(err)
	}
	appendFile(t, p, numbered("line", 50, 60))
	waitLines(t, s, 60)
	appendFile(t, p, numbered("line", 60, 100))
	waitLines(t, s, 100)

	got := s.texts()
	seen := map[string]int{}
	dups := 0
	for _, l := range got {
		if seen[l]++; seen[l] > 1 {
			dups++
		}
	}
	for _, l := range wantLines("line", 0, 100) {
		if seen[l] == 0 {
			t.Errorf("lost %q", l)
		}
	}
	st := tl.Stats()
	t.Logf("copytruncate: %d lines, %d duplicates, stats %+v", len(got), dups, st)
	if dups != 0 || st.Truncations+st.Rewrites != 1 {
		t.Fatalf("%d duplicates, stats %+v", dups, st)
	}
	if g := s.get()[50]; g.Offset != 0 {
		t.Fatalf("first line after truncation at offset %d, want 0", g.Offset)
	}
}

func TestRewriteInPlaceDetectedByFingerprint(t *testing.T) {
	p := filepath.Join(t.TempDir(), "app.log")
	appendFile(t, p, numbered("old", 0, 10))
	s := &sink{}
	tl, _ := start(t, p, testConfig(), nil, s)
	waitLines(t, s, 10)
	// Same inode, longer content: the size alone does not show the change.
	if err := os.WriteFile(p, []byte(numbered("new", 0, 30)), 0o644); err != nil {
		t.Fatal(err)
	}
	waitLines(t, s, 40)
	checkExactlyOnce(t, s.texts(), append(wantLines("old", 0, 10), wantLines("new", 0, 30)...))
	if st := tl.Stats(); st.Truncations+st.Rewrites != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestDeleteWhileOpen(t *testing.T) {
	p := filepath.Join(t.TempDir(), "app.log")
	cfg := testConfig()
	cfg.RotateWait = time.Second
	appendFile(t, p, numbered("a", 0, 10))
	s := &sink{}
	tl, _ := start(t, p, cfg, nil, s)
	waitLines(t, s, 10)
	w, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteString(numbered("a", 10, 20) + "tail"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	waitLines(t, s, 21)
	if g := s.get()[20]; string(g.Data) != "tail" || !g.Partial {
		t.Fatalf("last line of the deleted file %+v", g)
	}
	waitFor(t, "deleted file closed", func() bool { return tl.Stats().Rotations == 1 })
	appendFile(t, p, numbered("b", 0, 5)) // a new file at the path, from 0
	waitLines(t, s, 26)
	checkExactlyOnce(t, s.texts(), append(append(wantLines("a", 0, 20), "tail"), wantLines("b", 0, 5)...))
	if g := s.get()[21]; g.Offset != 0 {
		t.Fatalf("new file read from %d", g.Offset)
	}
}

func TestCheckpointsSaveLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	c := NewCheckpoints(path)
	a := Identity{Dev: 1, Ino: 2, FP: 3, FPLen: 1024}
	b := Identity{Dev: 1, Ino: 5, FP: 6, FPLen: 10}
	c.Ack(a, 100)
	c.Ack(b, 7)
	c.Ack(Identity{Dev: 1, Ino: 5, FP: 9, FPLen: 20}, 30) // b grew
	c.Ack(Identity{Dev: 1, Ino: 5, FP: 6, FPLen: 10}, 31) // late ack with the short fingerprint
	if err := c.Save(); err != nil {
		t.Fatal(err)
	}
	l, err := LoadCheckpoints(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []Checkpoint{{a, 100}, {Identity{Dev: 1, Ino: 5, FP: 9, FPLen: 20}, 31}}
	if got := l.All(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("loaded %v, want %v", got, want)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
	l.Forget(a)
	if _, ok := l.Lookup(a); ok {
		t.Fatal("forgotten checkpoint still there")
	}
}

func TestCheckpointsMissingOrCorrupt(t *testing.T) {
	dir := t.TempDir()
	c, err := LoadCheckpoints(filepath.Join(dir, "none.json"))
	if !errors.Is(err, ErrNoState) || !errors.Is(err, fs.ErrNotExist) || c == nil || len(c.All()) != 0 {
		t.Fatalf("missing: %v, %v", c, err)
	}
	for name, body := range map[string]string{
		"garbage":    "{not json",
		"version":    `{"version":7,"files":[]}`,
		"bad offset": `{"version":1,"files":[{"dev":1,"ino":2,"fp":3,"fp_len":4,"offset":-1}]}`,
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := LoadCheckpoints(p)
		if !errors.Is(err, ErrCorruptState) || c == nil || len(c.All()) != 0 {
			t.Fatalf("%s: %v, %v", name, c, err)
		}
		c.Ack(Identity{Ino: 1}, 1) // still usable, and saves over the bad file
		if err := c.Save(); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadCheckpoints(p); err != nil {
			t.Fatalf("%s after save: %v", name, err)
		}
	}

	// A tailer with the empty store starts from its configured position.
	state := filepath.Join(dir, "corrupt.json")
	if err := os.WriteFile(state, []byte("\x00\x01"), 0o644); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "app.log")
	appendFile(t, log, numbered("old", 0, 5))
	for _, startAt := range []string{StartEnd, StartBeginning} {
		c, err := LoadCheckpoints(state)
		if !errors.Is(err, ErrCorruptState) {
			t.Fatal(err)
		}
		cfg := testConfig()
		cfg.Start = startAt
		s := &sink{}
		tl, stop := start(t, log, cfg, c, s)
		waitFor(t, "open", func() bool { return tl.Stats().Opens == 1 })
		appendFile(t, log, "marker "+startAt+"\n")
		waitFor(t, "marker", func() bool {
			txt := s.texts()
			return len(txt) > 0 && txt[len(txt)-1] == "marker "+startAt
		})
		stop()
		n := len(s.get())
		if startAt == StartEnd && n != 1 || startAt == StartBeginning && n != 7 {
			t.Fatalf("start %s: read %q", startAt, s.texts())
		}
	}
}

func TestResumeFromAckAfterCrash(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	state := filepath.Join(dir, "state.json")
	appendFile(t, p, numbered("line", 0, 10))
	cp, _ := LoadCheckpoints(state)
	s := &sink{}
	// The sink has made lines 0..4 durable only.
	s.ack = func(l Line) {
		if l.Offset < int64(len(numbered("line", 0, 5))) {
			cp.Ack(l.ID, l.End)
		}
	}
	_, stop := start(t, p, testConfig(), cp, s)
	waitLines(t, s, 10)
	if err := cp.Save(); err != nil {
		t.Fatal(err)
	}
	stop() // crash: lines 5..9 were read but never acknowledged
	appendFile(t, p, numbered("line", 10, 15))

	cp2, err := LoadCheckpoints(state)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Start = StartEnd // the checkpoint wins over the configured position
	s2 := &sink{}
	start(t, p, cfg, cp2, s2)
	waitLines(t, s2, 10)
	checkExactlyOnce(t, s2.texts(), wantLines("line", 5, 15))
	if g := s2.get()[0]; g.Offset != int64(len(numbered("line", 0, 5))) {
		t.Fatalf("resumed at %d", g.Offset)
	}
}

func TestInodeReuseDetectedByFingerprint(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	appendFile(t, p, numbered("first file", 0, 5))
	cp := NewCheckpoints(filepath.Join(dir, "state.json"))
	s := &sink{ack: nil}
	s.ack = func(l Line) { cp.Ack(l.ID, l.End) }
	_, stop := start(t, p, testConfig(), cp, s)
	waitLines(t, s, 5)
	stop()
	// Another file on the same inode, longer than the checkpointed offset.
	if err := os.WriteFile(p, []byte(numbered("second file", 0, 8)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.Start = StartEnd
	s2 := &sink{}
	tl, _ := start(t, p, cfg, cp, s2)
	waitLines(t, s2, 8)
	checkExactlyOnce(t, s2.texts(), wantLines("second file", 0, 8))
	if st := tl.Stats(); st.Rewrites != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestShortFileFingerprintGrows(t *testing.T) {
	p := filepath.Join(t.TempDir(), "app.log")
	appendFile(t, p, "a\n")
	s := &sink{}
	start(t, p, testConfig(), nil, s)
	waitLines(t, s, 1)
	// One write, so that the tailer reads the 21 new lines only once the
	// file is past FingerprintBytes (written line by line, a read between
	// two writes gave the last line a fingerprint of the file so far).
	appendFile(t, p, strings.Repeat("b", 60)+"\n"+strings.Repeat(strings.Repeat("c", 60)+"\n", 20))
	waitLines(t, s, 22)
	g := s.get()
	if g[0].ID.FPLen != 2 || g[21].ID.FPLen != FingerprintBytes || !g[0].ID.sameInode(g[21].ID) {
		t.Fatalf("identities %v then %v", g[0].ID, g[21].ID)
	}
	// Acks carrying either identity are one checkpoint with the long one:
	// an ack of an earlier line with the short identity, coming later at
	// no smaller offset (the lines of one batch), keeps it.
	cp := NewCheckpoints("")
	cp.Ack(g[21].ID, g[21].End)
	cp.Ack(g[0].ID, g[21].End)
	if all := cp.All(); len(all) != 1 || all[0].Identity != g[21].ID || all[0].Offset != g[21].End {
		t.Fatalf("checkpoints %v", all)
	}
	// A short identity at a smaller offset is the file restarted at 0
	// (copytruncate): it replaces the long one.
	cp.Ack(g[0].ID, g[0].End)
	if all := cp.All(); len(all) != 1 || all[0].Identity != g[0].ID || all[0].Offset != g[0].End {
		t.Fatalf("checkpoints after a restart %v", all)
	}
}

func TestFileAppearingLaterReadFromStart(t *testing.T) {
	p := filepath.Join(t.TempDir(), "app.log")
	cfg := testConfig()
	cfg.Start = StartEnd // applies only to a file present at start
	s := &sink{}
	tl, _ := start(t, p, cfg, nil, s)
	waitFor(t, "first check", func() bool { return tl.Stats().Checks > 0 })
	appendFile(t, p, numbered("line", 0, 3))
	waitLines(t, s, 3)
	checkExactlyOnce(t, s.texts(), wantLines("line", 0, 3))
}

func TestRotatedWhileDownReadFromStart(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.log")
	state := filepath.Join(dir, "state.json")
	appendFile(t, p, numbered("a", 0, 3))
	cp := NewCheckpoints(state)
	s := &sink{}
	s.ack = func(l Line) { cp.Ack(l.ID, l.End) }
	cfg := testConfig()
	cfg.Start = StartEnd
	tl, stop := start(t, p, cfg, cp, s)
	waitFor(t, "open", func() bool { return tl.Stats().Opens == 1 })
	appendFile(t, p, numbered("a", 3, 5))
	waitLines(t, s, 2)
	if err := cp.Save(); err != nil {
		t.Fatal(err)
	}
	stop()
	// Rotated while down: the new file at the path has no checkpoint, but
	// the path is known, so it is read from 0 despite start: end.
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, p, numbered("b", 0, 4))
	cp2, err := LoadCheckpoints(state)
	if err != nil {
		t.Fatal(err)
	}
	s2 := &sink{}
	start(t, p, cfg, cp2, s2)
	waitLines(t, s2, 4)
	checkExactlyOnce(t, s2.texts(), wantLines("b", 0, 4))
}
