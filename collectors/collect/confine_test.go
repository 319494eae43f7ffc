package collect

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tpflow/tpflow/pipeline/kafka"
)

// TestAgentPlantedLinkNotShipped rotates a followed file and plants, at its
// path, a link to a file outside the source's root that holds a secret
// line: the lines of the rotated file are shipped, the secret never
// reaches Kafka.
func TestAgentPlantedLinkNotShipped(t *testing.T) {
	br := startBroker(t)
	k := kafkaConfig(br.Addr())
	dir := t.TempDir()
	outside := t.TempDir()
	line := func(method string) string {
		return `{"ts":"` + recentTS + `","method":"` + method + `","latency_ms":4,"ok":true,"level":"warn"}` + "\n"
	}
	secret := filepath.Join(outside, "secret.log")
	appendFile(t, secret, line("Secret.password")+"SECRET password=hunter2\n")
	p := filepath.Join(dir, "app.log")
	appendFile(t, p, line("Cart.add"))
	cfg := testConfig(t, dir)
	logs, _ := readTopic(t, k, kafka.TopicLogs)
	calls, _ := readTopic(t, k, kafka.TopicCalls)
	r := runAgent(t, cfg, k)
	waitFor(t, "the first call", func() bool { return len(calls.calls()) >= 1 })

	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, p); err != nil {
		t.Fatal(err)
	}
	appendFile(t, p+".1", line("Cart.pay"))
	refused := func() int64 {
		var n int64
		for _, f := range r.a.snapshotFiles() {
			n += f.t.Stats().Refused
		}
		return n
	}
	waitFor(t, "the link refused", func() bool { return refused() >= 1 })
	// A file created after the refusal is shipped: what came before it
	// has been read and produced.
	appendFile(t, filepath.Join(dir, "later.log"), line("Cart.done"))
	waitFor(t, "the later file's call", func() bool {
		for _, c := range calls.calls() {
			if c.method == "Cart.done" {
				return true
			}
		}
		return false
	})
	waitFor(t, "the rotated file's call", func() bool {
		for _, c := range calls.calls() {
			if c.method == "Cart.pay" {
				return true
			}
		}
		return false
	})
	r.stop(t)
	for _, c := range calls.calls() {
		if strings.HasPrefix(c.method, "Secret") {
			t.Fatalf("a call from the file outside the root reached Kafka: %+v", c)
		}
	}
	for _, l := range logs.logs() {
		if strings.Contains(l.msg, "SECRET") || strings.Contains(l.msg, "Secret") {
			t.Fatalf("a line from the file outside the root reached Kafka: %+v", l)
		}
	}
}
