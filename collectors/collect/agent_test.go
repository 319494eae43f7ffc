package collect

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tpflow/tpflow/pipeline/kafka"
)

// TestAgentShipsLinesCallsKernelErrorsAndSamples runs the agent against
// the embedded broker: perf-json lines become calls and log events with
// the topology's labels (a file rule labels the plain file), kernel error records become ERROR log events,
// and node and container samples go to the metrics topic.
func TestAgentShipsLinesCallsKernelErrorsAndSamples(t *testing.T) {
	br := startBroker(t)
	k := kafkaConfig(br.Addr())
	dir := t.TempDir()
	topo := filepath.Join(t.TempDir(), "topology.yaml")
	if err := os.WriteFile(topo, []byte("default: {system: shop, idc: dc1, env: prod}\nrules:\n  - match: {container: \"?*\"}\n    labels: {app: cart, group: blue}\n"+
		"  - match: {file: \"app.log*\"}\n    labels: {app: legacy, group: g9}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	kmsgFile := filepath.Join(t.TempDir(), "kmsg")
	kb, err := os.ReadFile("../metrics/testdata/kmsg.txt")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kmsgFile, kb, 0o644); err != nil {
		t.Fatal(err)
	}
	cg, _ := filepath.Abs("../metrics/testdata/cgroupv1")
	proc, _ := filepath.Abs("../metrics/testdata/proc")

	cfg := testConfig(t, dir)
	cfg.Topology = topo
	cfg.Metrics.Kmsg = kmsgFile
	cfg.MetricsEnabled = true
	cfg.Metrics.CgroupRoot = cg
	cfg.Metrics.ProcRoot = proc
	cfg.Metrics.FileSystems = []string{dir}
	cfg.Metrics.Interval = time.Second

	var b strings.Builder
	for i := range 100 {
		b.WriteString(perfLine(i, "Cart.add", i, i%10 != 0) + "\n")
	}
	b.WriteString("plain text, not json\n")
	appendFile(t, filepath.Join(dir, "app.log"), b.String())

	logs, _ := readTopic(t, k, kafka.TopicLogs)
	calls, _ := readTopic(t, k, kafka.TopicCalls)
	mets, _ := readTopic(t, k, kafka.TopicMetrics)
	r := runAgent(t, cfg, k)

	waitFor(t, "101 file lines and the kernel errors", func() bool { return len(logs.logs()) >= 101+8 })
	waitFor(t, "100 calls", func() bool { return len(calls.calls()) >= 100 })
	waitFor(t, "container samples", func() bool {
		for _, s := range mets.samples() {
			if s.labels["container"] == "abc" {
				return true
			}
		}
		return false
	})
	// More lines after start are followed.
	appendFile(t, filepath.Join(dir, "app.log"), perfLine(100, "Cart.del", 7, true)+"\n")
	// Its call and its log event go to different topics: wait for both.
	waitFor(t, "the appended call and its log event", func() bool {
		n := 0
		for _, l := range logs.logs() {
			if l.stream == StreamFile {
				n++
			}
		}
		return len(calls.calls()) >= 101 && n >= 102
	})
	r.stop(t)

	var fileLines, kernel int
	for _, l := range logs.logs() {
		switch l.stream {
		case StreamFile:
			fileLines++
			// A plain file: app and group from the topology's file rule.
			want := map[string]string{"system": "shop", "app": "legacy", "group": "g9", "idc": "dc1", "env": "prod", "host": "node-1", "namespace": "", "pod": "", "container": ""}
			for k, v := range want {
				if l.labels[k] != v {
					t.Errorf("file line label %s = %q, want %q (%v)", k, l.labels[k], v, l.labels)
				}
			}
			if l.src != filepath.Join(dir, "app.log") || l.sourceID == 0 {
				t.Errorf("source %q id %d", l.src, l.sourceID)
			}
			if strings.HasPrefix(l.msg, "plain") != l.unparsed {
				t.Errorf("unparsed=%v for %q", l.unparsed, l.msg)
			}
			if !l.unparsed && l.level != "INFO" {
				t.Errorf("level %q for %q", l.level, l.msg)
			}
		case StreamKmsg:
			kernel++
			if l.level != LevelError || l.src != SourceKmsg || l.labels["host"] != "node-1" {
				t.Errorf("kernel event %+v", l)
			}
		default:
			t.Errorf("unexpected stream %q", l.stream)
		}
	}
	if fileLines != 102 {
		t.Errorf("%d file log events, want 102", fileLines)
	}
	// The testdata ring has these error records: ICRC, two I/O errors,
	// an EXT4-fs error, an EDAC memory error, a memory failure and rx crc
	// errors; the filter decides, and the count must match it.
	if kernel < 5 {
		t.Errorf("%d kernel error events, want at least 5", kernel)
	}
	cs := calls.calls()
	var failed int
	for _, c := range cs {
		if c.labels["system"] != "shop" || c.labels["idc"] != "dc1" || c.labels["host"] != "node-1" {
			t.Errorf("call labels %v", c.labels)
		}
		if !c.ok {
			failed++
		}
	}
	if len(cs) != 101 || failed != 10 {
		t.Errorf("%d calls, %d failed; want 101 and 10", len(cs), failed)
	}
	var node, abc bool
	for _, s := range mets.samples() {
		if s.labels["host"] != "node-1" {
			t.Errorf("sample without host: %+v", s)
		}
		switch s.labels["container"] {
		case "":
			node = true
		case "abc":
			abc = true
			if s.labels["app"] != "cart" || s.labels["group"] != "blue" {
				t.Errorf("container sample labels %v", s.labels)
			}
		}
	}
	if !node || !abc {
		t.Errorf("node samples %v, container abc samples %v", node, abc)
	}
}
