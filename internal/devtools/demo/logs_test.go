package demo

import (
	"bufio"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tpflow/tpflow/collectors/parse"
	"github.com/tpflow/tpflow/collectors/topology"
)

// TestLogWriter writes lines over several rotations and checks that every
// line is a perf-json call of a log app, that the counts match, and that
// at most Keep rotated files are left per app.
func TestLogWriter(t *testing.T) {
	dir := t.TempDir()
	// Files of an earlier run are removed; other files are left alone.
	for _, f := range []string{"gateway-edge.log", "gateway-edge.log.7", "other.log"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("old\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := DefaultLogConfig(dir)
	cfg.Rotate = 10 * time.Second
	w, err := NewLogWriter(cfg, t0)
	if err != nil {
		t.Fatal(err)
	}
	lp, err := parse.New(parse.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	written := map[string]int{}
	byFile := map[string]map[string]int{} // what each file should hold, by the rotation it was written in
	for s := 0; s < 45; s++ {
		from := t0.Add(time.Duration(s) * time.Second)
		got, err := w.Write(from, from.Add(time.Second), 100)
		if err != nil {
			t.Fatal(err)
		}
		gen := s / 10 // rotation period
		if byFile[string(rune('0'+gen))] == nil {
			byFile[string(rune('0'+gen))] = map[string]int{}
		}
		n := 0
		for app, c := range got {
			written[app] += c
			byFile[string(rune('0'+gen))][app] += c
			n += c
		}
		if n != 100 {
			t.Fatalf("second %d: %d lines, want 100", s, n)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if len(written) != len(LogApps()) {
		t.Fatalf("lines of %d apps, want %d", len(written), len(LogApps()))
	}
	if _, err := os.Stat(filepath.Join(dir, "other.log")); err != nil {
		t.Errorf("a foreign file was removed: %v", err)
	}
	// 45 s at one rotation per 10 s: 4 rotations; .log holds period 4, .1
	// period 3, .2 period 2; periods 0 and 1 are deleted.
	for _, app := range LogApps() {
		for n, gen := range []string{"4", "3", "2"} {
			p := w.path(app, n)
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			lines := 0
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var c parse.Call
				if err := lp.ParseCall(sc.Bytes(), &c); err != nil {
					t.Fatalf("%s: %q: %v", p, sc.Text(), err)
				}
				if c.App != app || c.Group != LogGroup(app) || c.Method == "" || c.LatencyUS == 0 || c.TS < t0.UnixMilli() || c.System != "" {
					t.Fatalf("%s: bad call %+v from %q", p, c, sc.Text())
				}
				lines++
			}
			f.Close()
			if lines != byFile[gen][app] {
				t.Errorf("%s: %d lines, want %d", p, lines, byFile[gen][app])
			}
		}
		if _, err := os.Stat(w.path(app, 3)); !os.IsNotExist(err) {
			t.Errorf("%s: a third rotated file exists (%v)", app, err)
		}
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(left) != 3*len(LogApps())+1 {
		t.Errorf("files left: %v", left)
	}

	// The topology labels the files' lines with the system, idc and env.
	tf := filepath.Join(dir, "topology.yaml")
	if err := os.WriteFile(tf, LogTopology(), 0o644); err != nil {
		t.Fatal(err)
	}
	topo, err := topology.Load(tf)
	if err != nil {
		t.Fatal(err)
	}
	if l := topo.Resolve(topology.Source{}); l.System != LogSystem || l.IDC != LogIDC || l.Env != LogEnv {
		t.Errorf("topology labels %+v", l)
	}
	// Each app's file and its rotated copies carry the app and its group.
	for _, app := range LogApps() {
		for _, name := range []string{app + ".log", app + ".log.1"} {
			l := topo.Resolve(topology.Source{File: filepath.Join(dir, name)})
			if l.App != app || l.Group != LogGroup(app) || l.System != LogSystem {
				t.Errorf("%s: topology labels %+v", name, l)
			}
		}
	}
}
