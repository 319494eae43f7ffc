package collect

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/internal/role"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/pipeline/kafka/kafkatest"
)

// The crash test runs a collector in a child process of the test binary,
// so that it can be killed with SIGKILL at a chosen point.
const (
	envChild      = "TPFLOW_AGENT_CRASH_CHILD"
	envBroker     = "TPFLOW_AGENT_CRASH_BROKER"
	envDir        = "TPFLOW_AGENT_CRASH_DIR"
	envState      = "TPFLOW_AGENT_CRASH_STATE"
	envBlockSeq   = "TPFLOW_AGENT_CRASH_BLOCK_SEQ"
	envBlockedMsg = "TPFLOW_AGENT_CRASH_BLOCKED"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) != "" {
		os.Exit(crashChild())
	}
	os.Exit(m.Run())
}

// crashConfig is the collector configuration of the crash test: the
// defaults, following dir/*.log from the beginning.
func crashConfig(dir, state string) Config {
	c := DefaultConfig()
	c.Host = "node-crash"
	c.Sources = []Source{{Name: "app", Globs: []string{filepath.Join(dir, "*.log")}, Container: ContainerNone}}
	c.Tail.Start = "beginning"
	c.StateFile = state
	c.MetricsEnabled = false
	c.Metrics.Kmsg = ""
	return c
}

// crashChild runs a collector that, from transaction blockSeq on, flushes
// the transaction's messages to the broker, reports that on a file and
// then never commits: the parent kills it there.
func crashChild() int {
	block, _ := strconv.ParseUint(os.Getenv(envBlockSeq), 10, 64)
	testHookBeforeCommit = func(ctx context.Context, seq uint64, tx *kafka.Txn) {
		if seq < block {
			return
		}
		if err := tx.Flush(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "flush:", err)
		}
		if err := os.WriteFile(os.Getenv(envBlockedMsg), []byte(strconv.FormatUint(seq, 10)), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		select {}
	}
	cfg := crashConfig(os.Getenv(envDir), os.Getenv(envState))
	// The kill lands before the state file is ever saved, as a kill
	// between a commit and the next save does: the restart has only
	// Kafka's record to resume from.
	cfg.SaveInterval = time.Hour
	a, err := New(cfg, kafkaConfig(os.Getenv(envBroker)), role.Settings{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := a.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// readCommitted reads topic with a read_committed group consumer until
// stop is called.
func readCommitted(t testing.TB, k kafka.Config, name, group string) (*topicReader, func()) {
	t.Helper()
	c, err := kafka.NewConsumer(k, k.Topic(name), group, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tr := &topicReader{}
	var wg sync.WaitGroup
	wg.Go(func() { kafkatest.FetchAll(ctx, c, func(m kafkago.Message) { tr.add(m, false) }) })
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); wg.Wait(); c.Close() }) }
	t.Cleanup(stop)
	return tr, stop
}

// countMethods counts calls per method.
func countMethods(calls []callLine) map[string]int {
	out := map[string]int{}
	for _, c := range calls {
		out[c.method]++
	}
	return out
}

// TestCrashBetweenProduceAndCommit kills a collector (SIGKILL) after the
// messages of a transaction reached the broker and before the commit. The
// restarted collector resumes from the offsets committed in Kafka and
// re-sends exactly the uncommitted batches: every line arrives once for
// read_committed consumers, and the lines committed before the crash are
// not produced again at all.
func TestCrashBetweenProduceAndCommit(t *testing.T) {
	br := startBroker(t)
	k := kafkaConfig(br.Addr())
	dir := t.TempDir()
	state := filepath.Join(t.TempDir(), "state.json")
	blocked := filepath.Join(t.TempDir(), "blocked")
	path := filepath.Join(dir, "app.log")
	const first, second = 500, 300
	write := func(from, n int) {
		var b strings.Builder
		for i := from; i < from+n; i++ {
			b.WriteString(perfLine(i, fmt.Sprintf("M%d", i), 1+i%50, true) + "\n")
		}
		appendFile(t, path, b.String())
	}
	write(0, first)

	committed, _ := readCommitted(t, k, kafka.TopicCalls, "crash-check")
	everything, _ := readTopic(t, k, kafka.TopicCalls) // read_uncommitted

	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), envChild+"=1", envBroker+"="+br.Addr(), envDir+"="+dir,
		envState+"="+state, envBlockedMsg+"="+blocked, envBlockSeq+"=2")
	var stderr strings.Builder
	child.Stderr = &stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			child.Process.Kill()
			child.Wait()
		}
	})
	waitFor(t, "the first lines committed", func() bool { return len(committed.calls()) >= first })
	write(first, second)
	waitFor(t, "the second transaction flushed and not committed", func() bool {
		_, err := os.Stat(blocked)
		return err == nil
	})
	waitFor(t, "the uncommitted calls on the broker", func() bool { return len(everything.calls()) > first })
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	killed = true
	t.Logf("child stderr: %s", stderr.String())
	if n := len(committed.calls()); n != first {
		t.Fatalf("read_committed saw %d calls before the restart, want %d", n, first)
	}

	r := runAgent(t, crashConfig(dir, state), k)
	waitFor(t, "every line committed after the restart", func() bool { return len(committed.calls()) >= first+second })
	r.stop(t)

	// A fresh read_committed consumer reads everything to the end.
	final, stopFinal := readCommitted(t, k, kafka.TopicCalls, "crash-final")
	waitFor(t, "the final read", func() bool { return len(final.calls()) >= first+second })
	logs, stopLogs := readCommitted(t, k, kafka.TopicLogs, "crash-logs")
	waitFor(t, "the log events", func() bool { return len(logs.logs()) >= first+second })
	// Whatever else the log holds would follow within the fetch wait.
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		if len(final.calls()) > first+second || len(logs.logs()) > first+second {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopFinal()
	stopLogs()

	got := countMethods(final.calls())
	all := countMethods(everything.calls())
	for i := range first + second {
		m := fmt.Sprintf("M%d", i)
		if got[m] != 1 {
			t.Errorf("%s delivered %d times to read_committed consumers, want 1", m, got[m])
		}
		if i < first && all[m] != 1 {
			t.Errorf("%s, committed before the crash, was produced %d times", m, all[m])
		}
	}
	if len(got) != first+second {
		t.Errorf("read_committed saw %d distinct methods, want %d", len(got), first+second)
	}
	offs := map[uint64]int{}
	for _, l := range logs.logs() {
		offs[l.offset]++
	}
	if len(offs) != first+second {
		t.Errorf("%d distinct log offsets, want %d", len(offs), first+second)
	}
	for off, n := range offs {
		if n != 1 {
			t.Errorf("log line at offset %d delivered %d times", off, n)
		}
	}
	resent := 0
	for i := first; i < first+second; i++ {
		if all[fmt.Sprintf("M%d", i)] == 2 {
			resent++
		}
	}
	if resent == 0 {
		t.Errorf("no line of the killed transaction was on the broker twice (aborted, then re-sent)")
	}
	t.Logf("%d of the %d lines of the killed transaction were produced twice (aborted copy, committed copy)", resent, second)
}

// TestBrokerOutageLongerThanTxnTimeout stops the broker for longer than
// the transaction timeout while the collector has lines to send: the
// failed transactions are aborted and their batches sent again once the
// broker is back, and every line arrives once.
func TestBrokerOutageLongerThanTxnTimeout(t *testing.T) {
	dataDir := t.TempDir()
	bc := kafka.DefaultBrokerConfig()
	bc.Listen = "127.0.0.1:0"
	bc.DataDir = dataDir
	bc.MaxMessageBytes = 16 << 20
	br, err := kafka.StartBroker(context.Background(), bc, nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := br.Addr()
	k := kafkaConfig(addr)
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	write := func(from, n int) {
		var b strings.Builder
		for i := from; i < from+n; i++ {
			b.WriteString(perfLine(i, fmt.Sprintf("M%d", i), 1+i%50, true) + "\n")
		}
		appendFile(t, path, b.String())
	}
	const first, second = 400, 400
	write(0, first)
	r := runAgent(t, crashConfig(dir, filepath.Join(t.TempDir(), "state.json")), k)
	committed, _ := readCommitted(t, k, kafka.TopicCalls, "outage-check")
	waitFor(t, "the first lines committed", func() bool { return len(committed.calls()) >= first })

	br.Close()
	down := time.Now()
	write(first, second)
	// The outage lasts longer than the transaction timeout, and the
	// collector has failed to commit at least once in it.
	outage := kafka.TxnTimeout + 2*time.Second
	waitFor(t, "a failed transaction", func() bool { return testutil.ToFloat64(r.a.m.produceErrors) >= 1 })
	if d := outage - time.Since(down); d > 0 {
		time.Sleep(d) // the outage itself, not a wait for a condition
	}
	bc.Listen = addr
	br2, err := kafka.StartBroker(context.Background(), bc, nil)
	if err != nil {
		t.Fatalf("restart broker on %s: %v", addr, err)
	}
	t.Cleanup(br2.Close)
	t.Logf("broker down for %s; %v failed commits", time.Since(down).Round(time.Millisecond), testutil.ToFloat64(r.a.m.produceErrors))

	end := time.Now().Add(60 * time.Second)
	for len(committed.calls()) < first+second && time.Now().Before(end) {
		time.Sleep(50 * time.Millisecond)
	}
	r.stop(t)
	final, stopFinal := readCommitted(t, k, kafka.TopicCalls, "outage-final")
	waitFor(t, "the final read", func() bool { return len(final.calls()) >= first+second })
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) && len(final.calls()) <= first+second {
		time.Sleep(50 * time.Millisecond)
	}
	stopFinal()
	got := countMethods(final.calls())
	for i := range first + second {
		if m := fmt.Sprintf("M%d", i); got[m] != 1 {
			t.Errorf("%s delivered %d times, want 1", m, got[m])
		}
	}
	if len(got) != first+second {
		t.Errorf("%d distinct methods, want %d", len(got), first+second)
	}
}
