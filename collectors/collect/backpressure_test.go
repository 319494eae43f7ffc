package collect

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/tpflow/tpflow/pipeline/kafka"
)

// TestAgentWaitsForKafka stops the broker while lines keep coming: the
// agent stops acknowledging (offsets stay where Kafka left them, at most
// max_in_flight batches wait) and ships everything once the broker is
// back on the same address.
func TestAgentWaitsForKafka(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	bc := kafka.DefaultBrokerConfig()
	bc.Listen = addr
	bc.DataDir = t.TempDir()
	bc.MaxMessageBytes = 16 << 20
	br, err := kafka.StartBroker(context.Background(), bc, nil)
	if err != nil {
		t.Fatal(err)
	}
	k := kafkaConfig(addr)
	k.WriteTimeout = time.Second
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	cfg.Batch.MaxEvents = 200
	cfg.Batch.MaxInFlight = 2
	logFile := filepath.Join(dir, "app.log")
	write := func(from, to int) {
		var b strings.Builder
		for i := from; i < to; i++ {
			b.WriteString(perfLine(i, "M.m", 1, true) + "\n")
		}
		appendFile(t, logFile, b.String())
	}
	write(0, 100)
	r := runAgent(t, cfg, k)
	acked := func() int64 {
		var off int64
		for _, c := range r.a.cp.All() {
			off += c.Offset
		}
		return off
	}
	waitFor(t, "the first lines acknowledged", func() bool { return r.a.Ready(context.Background()) == nil && acked() > 0 })
	br.Close()
	before := acked()
	// Lines keep coming until the agent has read more than it can send:
	// the open transaction holds what it collected before its commit
	// failed, max_in_flight batches wait in the queue, and the tailers
	// block.
	total := 100
	waitFor(t, "the batch queue full and a produce failed", func() bool {
		if len(r.a.b.q) < cfg.Batch.MaxInFlight {
			write(total, total+500)
			total += 500
		}
		return len(r.a.b.q) == cfg.Batch.MaxInFlight && testutil.ToFloat64(r.a.m.produceErrors) > 0
	})
	if got := acked(); got != before {
		t.Fatalf("offsets moved from %d to %d while Kafka was down", before, got)
	}
	// A blocked agent stays within the bound and acknowledges nothing
	// while its failed transaction waits for Kafka.
	if got := acked(); got != before {
		t.Fatalf("offsets moved from %d to %d while Kafka was down", before, got)
	}
	if n := len(r.a.b.q); n > cfg.Batch.MaxInFlight {
		t.Fatalf("%d batches queued, bound is %d", n, cfg.Batch.MaxInFlight)
	}
	br, err = kafka.StartBroker(context.Background(), bc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	logs, _ := readTopic(t, k, kafka.TopicLogs)
	waitFor(t, "every line shipped after Kafka came back", func() bool {
		seen := map[string]bool{}
		for _, l := range logs.logs() {
			seen[l.msg] = true
		}
		for i := range total {
			if !seen[perfLine(i, "M.m", 1, true)] {
				return false
			}
		}
		return true
	})
	waitFor(t, "offsets at the end of the file", func() bool {
		return acked() == fileSize(t, logFile)
	})
}
