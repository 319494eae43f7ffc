package collect

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tpflow/tpflow/internal/role"
	"github.com/tpflow/tpflow/internal/testkit"
	"github.com/tpflow/tpflow/pipeline/kafka"
)

func lines(prefix string, from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "%s %d\n", prefix, i)
	}
	return b.String()
}

// TestAgentStartOnlyAtFirstStart runs the agent with the default tail
// settings and a rescan interval longer than the test, so only directory
// events find new files. At its very first start a file already there is
// read from its end (tail.start); files created while it runs are read
// from 0, also one renamed away at once with its rotated copy; after a
// stop, what was appended, rotated and created meanwhile is read in full,
// and each start logs one summary of what it resumed and skipped.
func TestAgentStartOnlyAtFirstStart(t *testing.T) {
	br := startBroker(t)
	k := kafkaConfig(br.Addr())
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.Tail = DefaultConfig().Tail
	cfg.Rediscover = time.Hour
	cfg.Sources[0].Parser = ParserNone
	logs, _ := readTopic(t, k, kafka.TopicLogs)
	have := func(prefix string, from, to int) func() bool {
		return func() bool {
			got := map[string]bool{}
			for _, l := range logs.logs() {
				got[l.msg] = true
			}
			for i := from; i < to; i++ {
				if !got[fmt.Sprintf("%s %d", prefix, i)] {
					return false
				}
			}
			return true
		}
	}
	a := filepath.Join(dir, "a.log")
	appendFile(t, a, lines("a", 0, 5))

	var log1 testkit.Buffer
	r := runAgentLog(t, cfg, k, &log1)
	waitFor(t, "first start summary", func() bool { return len(log1.Lines("following files")) == 1 })
	appendFile(t, a, lines("a", 5, 10))
	waitFor(t, "lines appended after the first start", have("a", 5, 10))
	appendFile(t, filepath.Join(dir, "b.log"), lines("b", 0, 5))
	waitFor(t, "a file created while running, read from 0", have("b", 0, 5))
	// Created and rotated away before discovery can have seen it, then a
	// new file at the path: the rotated copy is read from 0 too.
	e := filepath.Join(dir, "e.log")
	appendFile(t, e, lines("e", 0, 5))
	if err := os.Rename(e, e+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, e, lines("e", 5, 10))
	waitFor(t, "a file rotated before it was found", have("e", 0, 10))
	r.stop(t)

	// While down: a grows and is rotated twice (the file between the two
	// rotations was never read), f appears and is rotated.
	appendFile(t, a, lines("a", 10, 15))
	rename := func(from, to string) {
		t.Helper()
		if err := os.Rename(from, to); err != nil {
			t.Fatal(err)
		}
	}
	rename(a, a+".1")
	appendFile(t, a, lines("a2", 0, 5))
	rename(a+".1", a+".2")
	rename(a, a+".1")
	appendFile(t, a, lines("a3", 0, 5))
	f := filepath.Join(dir, "f.log")
	appendFile(t, f, lines("f", 0, 5))
	rename(f, f+".1")
	appendFile(t, f, lines("f", 5, 10))

	var log2 testkit.Buffer
	r = runAgentLog(t, cfg, k, &log2)
	waitFor(t, "everything written while down", func() bool {
		return have("a", 10, 15)() && have("a2", 0, 5)() && have("a3", 0, 5)() && have("f", 0, 10)()
	})
	r.stop(t)

	seen := map[string]int{}
	for _, l := range logs.logs() {
		seen[l.msg]++
	}
	for i := range 5 {
		if n := seen[fmt.Sprintf("a %d", i)]; n != 0 {
			t.Errorf("line a %d, present before the first start, read %d times despite tail.start end", i, n)
		}
	}
	for msg, n := range seen {
		if n != 1 {
			t.Errorf("%q arrived %d times", msg, n)
		}
	}
	s1, s2 := log1.Lines("following files"), log2.Lines("following files")
	if len(s1) != 1 || !strings.Contains(s1[0], "first_start=true") || !strings.Contains(s1[0], "skipped_to_end=1") {
		t.Errorf("first start summary %q", s1)
	}
	if len(s2) != 1 || !strings.Contains(s2[0], "first_start=false") || !strings.Contains(s2[0], "resumed=2") ||
		!strings.Contains(s2[0], "from_start=2") || !strings.Contains(s2[0], "skipped_to_end=0") {
		t.Errorf("restart summary %q", s2)
	}
	if w := log1.Lines("level=WARN"); len(w) > 0 {
		t.Errorf("warnings under normal operation: %q", w)
	}
}

// TestAgentDiscoveryProblemLoggedOnce runs the kubernetes preset on a
// node without Docker's directory: the missing root is logged once at
// WARN with a remedy, however many rescans there are.
func TestAgentDiscoveryProblemLoggedOnce(t *testing.T) {
	br := startBroker(t)
	k := kafkaConfig(br.Addr())
	base := t.TempDir()
	if err := os.MkdirAll(filepath.Join(base, "var/log/pods"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, base)
	cfg.Sources = []Source{{Name: "k8s", Preset: PresetKubernetes, Base: base}}
	cfg.Rediscover = 100 * time.Millisecond
	var log testkit.Buffer
	r := runAgentLog(t, cfg, k, &log)
	waitFor(t, "ten rescans", func() bool { return r.a.rounds.Load() >= 10 })
	r.stop(t)
	w := log.Lines("level=WARN")
	if len(w) != 1 || !strings.Contains(w[0], "var/lib/docker/containers") || !strings.Contains(w[0], "remedy=") {
		t.Fatalf("warnings %q, want one about the missing Docker directory with a remedy", w)
	}
}

func runAgentLog(t *testing.T, cfg Config, k kafka.Config, w *testkit.Buffer) *running {
	t.Helper()
	l := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return runAgent(t, cfg, k, role.Settings{Logger: l})
}
