package collect

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tpflow/tpflow/internal/role"
	"github.com/tpflow/tpflow/internal/testkit"
)

// TestStateLockHandsOver: a second agent on the same state file stands
// by (ready once Kafka answered, counted in the standby gauge) until the
// first releases the lock, then takes it and reports that it waited; a
// standby whose context ends returns at once without the lock.
func TestStateLockHandsOver(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	newAgent := func() *Agent {
		a, err := New(cfg, defaultKafka("127.0.0.1:1"), role.Settings{})
		if err != nil {
			t.Fatal(err)
		}
		a.connected.Store(true)
		return a
	}
	old, next := newAgent(), newAgent()
	f, waited, err := old.lockState(context.Background())
	if err != nil || f == nil || waited {
		t.Fatalf("first lockState = %v, waited %v, %v; want the lock at once", f, waited, err)
	}

	// A third agent gives up when its context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 3*lockPoll)
	defer cancel()
	if g, _, err := newAgent().lockState(ctx); g != nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("lockState with the lock held and ctx ending = %v, %v; want the context's error", g, err)
	}

	var wg sync.WaitGroup
	var got struct {
		waited bool
		err    error
	}
	wg.Go(func() {
		g, w, err := next.lockState(context.Background())
		got.waited, got.err = w, err
		if g != nil {
			g.Close()
		}
	})
	testkit.WaitFor(t, 5*time.Second, "the new agent to stand by", func() bool { return next.standby.Load() })
	if err := next.Ready(context.Background()); err != nil {
		t.Errorf("a standby agent with Kafka reached is not ready: %v", err)
	}
	// Several tries of the waiter while the old agent holds the lock: it
	// must still wait.
	time.Sleep(4 * lockPoll)
	if !next.standby.Load() {
		t.Fatal("the new agent took the lock while the old one held it")
	}
	f.Close() // the old agent stops
	wg.Wait()
	if got.err != nil || !got.waited {
		t.Fatalf("lockState after the release: waited %v, %v; want the lock after a wait", got.waited, got.err)
	}
	if next.standby.Load() {
		t.Error("still standing by after taking the lock")
	}
}

// TestReadyReflectsThePipeline: not ready before Kafka answered; ready
// through a short outage; not ready, with the last error, once commits
// have failed for stallAfter; ready again after a commit; not ready when
// the send queue stays full with no commit for stallAfter.
func TestReadyReflectsThePipeline(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	cfg := testConfig(t, t.TempDir())
	a, err := New(cfg, defaultKafka("127.0.0.1:1"), role.Settings{Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ready := func() error { return a.Ready(context.Background()) }
	if err := ready(); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Ready before Kafka answered = %v, want ErrNotConnected", err)
	}
	a.connected.Store(true)
	a.noteCommit()
	if err := ready(); err != nil {
		t.Fatalf("Ready after a commit = %v", err)
	}
	a.noteFailure(errors.New("dial tcp 10.0.0.1:9092: connection refused"))
	now = now.Add(stallAfter - time.Second)
	a.noteFailure(errors.New("dial tcp 10.0.0.1:9092: i/o timeout"))
	if err := ready(); err != nil {
		t.Fatalf("Ready %s into an outage = %v, want ready (shorter than %s)", stallAfter-time.Second, err, stallAfter)
	}
	now = now.Add(2 * time.Second)
	err = ready()
	if err == nil || !strings.Contains(err.Error(), "no transaction committed to Kafka for 31s") || !strings.Contains(err.Error(), "i/o timeout") {
		t.Fatalf("Ready %s into an outage = %v, want the duration and the last error", stallAfter+time.Second, err)
	}
	a.noteCommit()
	if err := ready(); err != nil {
		t.Fatalf("Ready after the outage = %v", err)
	}

	b := newBatcher(cfg.Batch, 1, "p", "h")
	a.bp.Store(b)
	for range cap(b.q) {
		b.q <- &sendBatch{}
	}
	if err := ready(); err != nil {
		t.Fatalf("Ready with a full queue just after a commit = %v", err)
	}
	now = now.Add(stallAfter)
	if err := ready(); err == nil || !strings.Contains(err.Error(), "backlog") {
		t.Fatalf("Ready with a full queue and no commit for %s = %v, want a backlog error", stallAfter, err)
	}
	<-b.q
	if err := ready(); err != nil {
		t.Fatalf("Ready once the queue moves = %v", err)
	}
}
