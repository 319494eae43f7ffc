package collect

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tpflow/tpflow/pipeline/kafka"
)

// TestAgentKubernetesPreset follows a kubelet pod log (CRI lines) found by
// the kubernetes preset under a base directory: namespace, pod and
// container come from the path, app and group from the topology rule that
// matches the pod.
func TestAgentKubernetesPreset(t *testing.T) {
	br := startBroker(t)
	k := kafkaConfig(br.Addr())
	base := t.TempDir()
	podDir := filepath.Join(base, "var/log/pods/shop_cart-7d9f_0b6c2a1e-1111-2222-3333-444455556666/app")
	if err := os.MkdirAll(podDir, 0o755); err != nil {
		t.Fatal(err)
	}
	topo := filepath.Join(t.TempDir(), "topology.yaml")
	if err := os.WriteFile(topo, []byte("default: {system: mall, idc: dc2, env: prod}\nrules:\n  - match: {namespace: shop, pod: \"cart-*\"}\n    labels: {app: cart, group: g1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, base)
	cfg.Topology = topo
	cfg.Sources = []Source{{Name: "k8s", Preset: PresetKubernetes, Base: base}}
	appendFile(t, filepath.Join(podDir, "0.log"), `2026-11-27T10:00:00.5Z stdout F {"ts":"`+recentTS+`","method":"Cart.add","latency_ms":4,"ok":true,"level":"warn"}`+"\n")
	logs, _ := readTopic(t, k, kafka.TopicLogs)
	calls, _ := readTopic(t, k, kafka.TopicCalls)
	r := runAgent(t, cfg, k)
	waitFor(t, "the pod's line and call", func() bool { return len(logs.logs()) >= 1 && len(calls.calls()) >= 1 })
	r.stop(t)
	l := logs.logs()[0]
	want := map[string]string{"system": "mall", "app": "cart", "group": "g1", "idc": "dc2", "env": "prod", "host": "node-1",
		"namespace": "shop", "pod": "cart-7d9f", "container": "app"}
	for name, v := range want {
		if l.labels[name] != v {
			t.Errorf("label %s = %q, want %q", name, l.labels[name], v)
		}
	}
	if l.stream != "stdout" || l.level != "WARN" || l.unparsed {
		t.Errorf("log event %+v", l)
	}
	c := calls.calls()[0]
	if c.method != "Cart.add" || c.latencyUS != 4000 || c.labels["app"] != "cart" || c.labels["group"] != "g1" || c.labels["system"] != "mall" {
		t.Errorf("call %+v", c)
	}
}

// TestAgentKernelErrorsOnceAcrossRestarts runs the agent twice over the
// same kernel ring: the second run sends no kernel error again.
func TestAgentKernelErrorsOnceAcrossRestarts(t *testing.T) {
	br := startBroker(t)
	k := kafkaConfig(br.Addr())
	kb, err := os.ReadFile("../metrics/testdata/kmsg.txt")
	if err != nil {
		t.Fatal(err)
	}
	kmsgFile := filepath.Join(t.TempDir(), "kmsg")
	if err := os.WriteFile(kmsgFile, kb, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, t.TempDir())
	cfg.Metrics.Kmsg = kmsgFile
	logs, _ := readTopic(t, k, kafka.TopicLogs)
	count := func() int {
		n := 0
		for _, l := range logs.logs() {
			if l.stream == StreamKmsg {
				n++
			}
		}
		return n
	}
	r := runAgent(t, cfg, k)
	waitFor(t, "kernel errors", func() bool { return count() >= 5 })
	first := count()
	r.stop(t)
	if _, err := os.Stat(cfg.StateFile + kmsgSuffix); err != nil {
		t.Fatalf("no kernel state saved: %v", err)
	}
	// A new error record arrives while the agent is down.
	f, err := os.OpenFile(kmsgFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("\n3,100,9400000,-;EXT4-fs error (device sdb1): ext4_lookup:1700: inode #9: deleted inode referenced\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	r2 := runAgent(t, cfg, k)
	waitFor(t, "the new kernel error", func() bool { return count() >= first+1 })
	r2.stop(t)
	if got := count(); got != first+1 {
		t.Errorf("%d kernel error events after the restart, want %d (the first run's %d and the new one)", got, first+1, first)
	}
}
