package collect

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tpflow/tpflow/collectors/parse"
	"github.com/tpflow/tpflow/pipeline/kafka"
)

// TestAgentAwkwardInput feeds one agent CRI partial lines, Docker json
// lines, a multi-line stack trace, a 1 MiB line, a line without a trailing
// newline, invalid UTF-8 and binary garbage, each through the source that
// would meet it. None stops the agent; each yields the event it should,
// and a good line after all of them still becomes a call.
func TestAgentAwkwardInput(t *testing.T) {
	br := startBroker(t)
	k := kafkaConfig(br.Addr())
	dir := t.TempDir()
	for _, d := range []string{"plain", "cri", "docker", "ml"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(t, dir)
	cfg.Sources = []Source{
		{Name: "plain", Globs: []string{filepath.Join(dir, "plain", "*.log")}},
		{Name: "cri", Globs: []string{filepath.Join(dir, "cri", "*.log")}, Container: ContainerCRI},
		{Name: "docker", Globs: []string{filepath.Join(dir, "docker", "*.log")}, Container: ContainerDocker},
		{Name: "ml", Globs: []string{filepath.Join(dir, "ml", "*.log")}, Parser: ParserNone,
			Multiline: parse.MultilineConfig{Start: `^\d{4}-\d{2}-\d{2} `, Timeout: 300 * time.Millisecond}},
	}
	logs, _ := readTopic(t, k, kafka.TopicLogs)
	calls, _ := readTopic(t, k, kafka.TopicCalls)
	r := runAgent(t, cfg, k)

	// CRI: a line split in three fragments on stdout, a whole one on stderr
	// in between.
	cri := strings.Join([]string{
		`2026-11-27T10:00:00.000000001Z stdout P {"ts":"` + recentTS + `","method":"Cri.join",`,
		`2026-11-27T10:00:00.000000002Z stderr F warning: disk almost full`,
		`2026-11-27T10:00:00.000000003Z stdout P "latency_ms":5,`,
		`2026-11-27T10:00:00.000000004Z stdout F "ok":true}`,
		`not a CRI line`,
		"",
	}, "\n")
	appendFile(t, filepath.Join(dir, "cri", "c.log"), cri)
	// Docker: stdout and stderr lines with escapes.
	docker := `{"log":"{\"ts\":\"` + recentTS + `\",\"method\":\"Docker.m\",\"latency_ms\":2,\"ok\":false}\n","stream":"stdout","time":"2026-11-27T10:00:01.5Z"}` + "\n" +
		`{"log":"tab\there \"quoted\"\n","stream":"stderr","time":"2026-11-27T10:00:02Z"}` + "\n" +
		`{"log":"broken` + "\n"
	appendFile(t, filepath.Join(dir, "docker", "d.log"), docker)
	// Multiline: a stack trace between two records.
	ml := "2026-11-27 10:00:00 ERROR boom\njava.lang.IllegalStateException: bad\n\tat a.B.c(B.java:10)\n\tat a.B.d(B.java:20)\n2026-11-27 10:00:01 INFO next\n"
	appendFile(t, filepath.Join(dir, "ml", "m.log"), ml)
	// Plain: a 1 MiB line, invalid UTF-8, binary garbage, then a good line
	// and a line without a newline.
	plain := filepath.Join(dir, "plain", "p.log")
	appendFile(t, plain, strings.Repeat("x", 1<<20)+"\n")
	appendFile(t, plain, "caf\xe9 au lait \xff\xfe\n")
	garbage := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(rng.UintN(256))
	}
	appendFile(t, plain, string(garbage)+"\n")
	appendFile(t, plain, perfLine(1, "After.garbage", 3, true)+"\n")
	appendFile(t, plain, "no newline at the end")

	waitFor(t, "the call after the garbage and the partial line", func() bool {
		return contains(logs.logs(), "no newline at the end") != nil && len(calls.calls()) >= 3
	})
	// The multiline record still open (INFO next) is completed by its time-out.
	waitFor(t, "the last multiline record", func() bool { return contains(logs.logs(), "INFO next") != nil })
	r.stop(t)
	all := logs.logs()

	// CRI.
	if l := contains(all, `"method":"Cri.join"`); l == nil || l.msg != `{"ts":"`+recentTS+`","method":"Cri.join","latency_ms":5,"ok":true}` || l.stream != "stdout" || l.unparsed {
		t.Errorf("joined CRI line: %+v", l)
	} else if l.tsNano != time.Date(2026, 11, 27, 10, 0, 0, 1, time.UTC).UnixNano() {
		t.Errorf("joined CRI line time %d, want the first fragment's", l.tsNano)
	}
	if l := contains(all, "disk almost full"); l == nil || l.stream != "stderr" || l.msg != "warning: disk almost full" {
		t.Errorf("CRI stderr line: %+v", l)
	}
	if l := contains(all, "not a CRI line"); l == nil || !l.unparsed || l.stream != StreamFile {
		t.Errorf("bad CRI line: %+v", l)
	}
	// Docker.
	if l := contains(all, "Docker.m"); l == nil || l.stream != "stdout" || l.unparsed || strings.HasSuffix(l.msg, "\n") {
		t.Errorf("docker stdout line: %+v", l)
	}
	if l := contains(all, "tab\there"); l == nil || l.stream != "stderr" || l.msg != "tab\there \"quoted\"" {
		t.Errorf("docker stderr line: %+v", l)
	}
	if l := contains(all, `{"log":"broken`); l == nil || !l.unparsed {
		t.Errorf("broken docker line: %+v", l)
	}
	// Multiline.
	want := "2026-11-27 10:00:00 ERROR boom\njava.lang.IllegalStateException: bad\n\tat a.B.c(B.java:10)\n\tat a.B.d(B.java:20)"
	if l := contains(all, "ERROR boom"); l == nil || l.msg != want {
		t.Errorf("stack trace record: %+v", l)
	}
	// Plain.
	if l := contains(all, "xxxxxxxx"); l == nil || !l.truncated || len(l.msg) != cfg.Tail.MaxLineBytes {
		t.Errorf("1 MiB line: truncated %v, %d bytes kept, want %d", l != nil && l.truncated, len(l.msg), cfg.Tail.MaxLineBytes)
	}
	if l := contains(all, "au lait"); l == nil || !l.unparsed || l.msg != "caf\uFFFD au lait \uFFFD" {
		t.Errorf("invalid UTF-8 line: %+v", l)
	}
	var garbageEvents int
	for _, l := range all {
		if l.src == plain && l.unparsed && !strings.Contains(l.msg, "au lait") && !strings.Contains(l.msg, "xxxx") && !strings.Contains(l.msg, "no newline") {
			garbageEvents++
		}
	}
	if garbageEvents == 0 {
		t.Error("no unparsed events for the binary garbage")
	}
	if l := contains(all, "no newline at the end"); l == nil || l.msg != "no newline at the end" {
		t.Errorf("line without a newline: %+v", l)
	}
	methods := map[string]bool{}
	for _, c := range calls.calls() {
		methods[c.method] = true
	}
	for _, m := range []string{"Cri.join", "Docker.m", "After.garbage"} {
		if !methods[m] {
			t.Errorf("no call %s among %v", m, methods)
		}
	}
}
