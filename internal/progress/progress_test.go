package progress

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// lines is a writer that hands each write to a channel.
type lines chan string

func (l lines) Write(b []byte) (int, error) {
	select {
	case l <- string(b):
	default:
		panic("test writer full")
	}
	return len(b), nil
}

func status(s string) func(time.Duration) string {
	return func(elapsed time.Duration) string { return fmt.Sprintf("%s %v\n", s, elapsed >= 0) }
}

func next(t *testing.T, l lines) string {
	t.Helper()
	select {
	case s := <-l:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no line written")
		return ""
	}
}

// TestQuietWhileQuick: before after has passed, neither the status nor a
// new one is written; the command's own lines are.
func TestQuietWhileQuick(t *testing.T) {
	l := make(lines, 10)
	p := Start(l, time.Hour, 0, status("a"))
	p.Set(status("b"))
	p.Printf("own %d\n", 1)
	p.Stop()
	p.Set(status("c"))
	close(l)
	var got []string
	for s := range l {
		got = append(got, s)
	}
	if strings.Join(got, "") != "own 1\n" {
		t.Errorf("wrote %q, want only the command's own line", got)
	}
}

// TestEveryStepOnceLoud: with every 0, the status is written when after
// passes and then at each Set, and never after Stop.
func TestEveryStepOnceLoud(t *testing.T) {
	l := make(lines, 10)
	p := Start(l, 0, 0, status("connecting"))
	if s := next(t, l); s != "connecting true\n" {
		t.Fatalf("first line %q", s)
	}
	p.Set(status("rendering"))
	if s := next(t, l); s != "rendering true\n" {
		t.Fatalf("after Set %q", s)
	}
	p.Stop()
	p.Set(status("late"))
	if len(l) != 0 {
		t.Errorf("wrote %q after Stop", <-l)
	}
}

// TestRepeatsEveryInterval: with every set, the latest status is written
// again and again without Set.
func TestRepeatsEveryInterval(t *testing.T) {
	l := make(lines, 1000)
	p := Start(l, time.Millisecond, time.Millisecond, status("a"))
	defer p.Stop()
	for i := 0; i < 3; i++ {
		if s := next(t, l); s != "a true\n" {
			t.Fatalf("line %d %q", i, s)
		}
	}
	p.Set(status("b"))
	for s := next(t, l); s != "b true\n"; s = next(t, l) {
		if s != "a true\n" {
			t.Fatalf("line %q", s)
		}
	}
}
