package collect

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tpflow/tpflow/collectors/metrics"
	"github.com/tpflow/tpflow/internal/role"
	"github.com/tpflow/tpflow/pipeline/kafka"

	"github.com/tpflow/tpflow/internal/testkit"
)

// requireKmsg returns the real kernel log device, failing with CI set and
// skipping otherwise when it cannot be read.
func requireKmsg(t *testing.T) string {
	t.Helper()
	f, err := os.Open("/dev/kmsg")
	if err != nil {
		testkit.Missing(t, "/dev/kmsg not readable: "+err.Error())
		return ""
	}
	f.Close()
	return "/dev/kmsg"
}

// TestAgentStopsWhileReadingKmsg runs the agent on the real /dev/kmsg,
// the default, with lines to send, and cancels it once the ring is read:
// Run returns within 5 s and the offsets of the file are saved.
func TestAgentStopsWhileReadingKmsg(t *testing.T) {
	kmsg := requireKmsg(t)
	br := startBroker(t)
	k := kafkaConfig(br.Addr())
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.Metrics.Kmsg = kmsg
	log := filepath.Join(dir, "a.log")
	var lines strings.Builder
	for i := range 1000 {
		lines.WriteString(perfLine(i, "Stop.m", 1, true) + "\n")
	}
	appendFile(t, log, lines.String())
	a, err := New(cfg, k, role.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	size := fileSize(t, log)
	waitFor(t, "the file acknowledged", func() bool {
		for _, c := range a.cp.All() {
			if c.Offset == size {
				return true
			}
		}
		return false
	})
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5 s of the stop while reading /dev/kmsg")
	}
	t.Logf("stopped in %s", time.Since(start))
	b, err := os.ReadFile(cfg.StateFile)
	if err != nil {
		t.Fatalf("no state file after the stop: %v", err)
	}
	if !strings.Contains(string(b), `"offset":`) {
		t.Errorf("state file %s", b)
	}
}

// TestOpenKmsgDeadline blocks a read of the real /dev/kmsg after its ring
// is drained and checks that cancelling the context ends it.
func TestOpenKmsgDeadline(t *testing.T) {
	kmsg := requireKmsg(t)
	ctx, cancel := context.WithCancel(context.Background())
	f, closeFn, err := metrics.OpenKmsg(ctx, kmsg)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	r := metrics.NewKmsgReader(f)
	errc := make(chan error, 1)
	go func() {
		for {
			if _, err := r.Next(); err != nil {
				errc <- err
				return
			}
		}
	}()
	cancel()
	select {
	case err := <-errc:
		if !os.IsTimeout(err) {
			t.Errorf("read ended with %v, want a deadline error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a read of /dev/kmsg did not end within 5 s of the cancel")
	}
}

// TestCheckBudget refuses batch sizes whose worst case exceeds the Kafka
// message limit or leaves no room around the longest line, naming the
// keys, and accepts the defaults with every codec but snappy.
func TestCheckBudget(t *testing.T) {
	k := kafka.DefaultConfig()
	c := DefaultConfig()
	for _, codec := range []string{kafka.CompressionNone, kafka.CompressionLZ4, kafka.CompressionZstd, kafka.CompressionGzip} {
		k.Compression = codec
		if err := c.CheckBudget(k); err != nil {
			t.Errorf("defaults with %s: %v", codec, err)
		}
	}
	k.Compression = kafka.CompressionSnappy
	err := c.CheckBudget(k)
	if err == nil || !strings.Contains(err.Error(), "batch.max_bytes") || !strings.Contains(err.Error(), "kafka.max_message_bytes") {
		t.Errorf("defaults with snappy: %v, want an error naming both keys", err)
	}
	k.Compression = kafka.CompressionLZ4
	c.Batch.MaxBytes = k.MaxMessageBytes
	if err := c.CheckBudget(k); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("max_bytes = max_message_bytes: %v, want an error with the largest budget", err)
	}
	c = DefaultConfig()
	c.Tail.MaxLineBytes = c.Batch.MaxBytes
	if err := c.CheckBudget(k); err == nil || !strings.Contains(err.Error(), "tail.max_line_bytes") {
		t.Errorf("max_line_bytes = max_bytes: %v", err)
	}
	// The error's suggestion is itself accepted.
	c = DefaultConfig()
	c.Batch.MaxBytes = k.MaxMessageBytes
	for c.Batch.MaxBytes+CompressionRoom(k.Compression, c.Batch.MaxBytes)+recordFraming > k.MaxMessageBytes {
		c.Batch.MaxBytes -= 1024
	}
	if err := c.CheckBudget(k); err != nil {
		t.Errorf("the largest budget: %v", err)
	}
}
