package collect

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// lockSuffix names the state file's companion that one agent at a time
// holds an exclusive flock on. During a rolling update the new agent's pod
// starts beside the old one on the same state directory; it waits on the
// lock, the old agent commits its last transaction and saves its offsets
// on SIGTERM, and its exit releases the lock (the kernel drops a flock
// when its holder dies, SIGKILL included).
const lockSuffix = ".lock"

// lockPoll is how often a waiting agent tries the lock again. flock has
// no time-out, so a waiting agent polls instead of blocking, to stop at
// once when its context ends.
const lockPoll = 50 * time.Millisecond

// lockState takes the exclusive lock next to the state file, waiting while
// another agent holds it, and reports whether it had to wait. It returns
// ctx's error when ctx ends first. Without a state file there is nothing
// to share and nothing to lock: it returns a nil file.
func (a *Agent) lockState(ctx context.Context) (f *os.File, waited bool, err error) {
	if a.cfg.StateFile == "" {
		return nil, false, nil
	}
	path := a.cfg.StateFile + lockSuffix
	f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false, fmt.Errorf("cannot open the state lock %s: %w", path, err)
	}
	tick := time.NewTicker(lockPoll)
	defer tick.Stop()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, false, fmt.Errorf("cannot lock %s: %w", path, err)
		}
		if !waited {
			waited = true
			a.standby.Store(true)
			a.m.standby.Set(1)
			a.log.Info("standing by: another collector holds the state lock; taking over when it stops",
				"lock", path, "holder_pid", holderPID(f))
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, waited, ctx.Err()
		case <-tick.C:
		}
	}
	// The holder's pid, for the next agent's log line and for an operator.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if waited {
		a.standby.Store(false)
		a.m.standby.Set(0)
		a.log.Info("took over the state lock", "lock", path)
	}
	return f, waited, nil
}

// holderPID returns the pid the lock's holder wrote, or "unknown".
func holderPID(f *os.File) string {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	if s := strings.TrimSpace(string(b[:n])); s != "" {
		return s
	}
	return "unknown"
}

// stallAfter is how long the agent may fail to commit, or hold a full send
// queue without a commit, before it reports not ready: longer than the
// transaction time-out and a broker's leader election, so a blip does not
// flap readiness.
const stallAfter = 30 * time.Second

// Ready reports whether the agent reached Kafka and its pipeline moves:
// an error until Kafka first answered, when no transaction has committed
// for stallAfter while commits fail (Kafka unreachable, fenced, refusing),
// or when the send queue is full and nothing committed for stallAfter (a
// backlog that does not drain). An agent standing by for the state lock
// is ready once Kafka answered: during a rolling update the old agent
// stops only once the new one is ready, and the new one starts reading
// only once the old one has stopped. It is the collect role's readiness
// check.
func (a *Agent) Ready(context.Context) error {
	if !a.connected.Load() {
		return ErrNotConnected
	}
	if a.standby.Load() {
		return nil
	}
	now := a.now()
	if since := a.failingSince.Load(); since != 0 {
		if d := now.Sub(time.Unix(0, since)); d >= stallAfter {
			msg, _ := a.lastErr.Load().(string)
			return fmt.Errorf("no transaction committed to Kafka for %s: %s", d.Round(time.Second), msg)
		}
	}
	if b := a.bp.Load(); b != nil && len(b.q) == cap(b.q) {
		if d := now.Sub(time.Unix(0, a.lastCommit.Load())); d >= stallAfter {
			return fmt.Errorf("backlog: the send queue is full (%d batches) and nothing committed for %s", cap(b.q), d.Round(time.Second))
		}
	}
	return nil
}

// noteCommit records a committed transaction for Ready.
func (a *Agent) noteCommit() {
	a.lastCommit.Store(a.now().UnixNano())
	a.failingSince.Store(0)
}

// noteFailure records a failed commit for Ready.
func (a *Agent) noteFailure(err error) {
	a.lastErr.Store(err.Error())
	a.failingSince.CompareAndSwap(0, a.now().UnixNano())
}
