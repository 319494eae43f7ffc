package rollout_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tpflow/tpflow/control"
	"github.com/tpflow/tpflow/control/rollout"
	"github.com/tpflow/tpflow/control/rollout/rollouttest"
	"github.com/tpflow/tpflow/control/store"
	"github.com/tpflow/tpflow/control/store/pgtest"
	"github.com/tpflow/tpflow/internal/testkit"
)

func TestMain(m *testing.M) { os.Exit(pgtest.RunMain(m)) }

var ctx = context.Background()

func newFleet(n int) *rollouttest.Fleet {
	f := rollouttest.New()
	for i := range n {
		f.Add(fmt.Sprintf("agent-%02d", i), control.Agent{System: "shop", App: "cart", Group: "blue", IDC: fmt.Sprintf("dc%d", i%2+1), Node: fmt.Sprintf("n%d", i)}, "old")
	}
	return f
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openStore(t *testing.T, dsn string, c *clock) store.Store {
	t.Helper()
	s, err := store.Open(ctx, dsn, c.now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var (
	olga  = control.Actor{Who: "olga"}
	scope = control.Scope{Kind: control.ScopeApp, Name: "shop/cart"}
	waves = []control.Wave{{Percent: 5, Soak: time.Minute, FailureBudget: 1}, {Percent: 25, Soak: time.Minute, FailureBudget: 2}, {Percent: 100, Soak: time.Minute, FailureBudget: 3}}
)

// setup opens the store of dsn (a new SQLite file for ""), with a fake
// clock, twenty agents of app shop/cart, and starts a rollout of a
// version of the app with body.
func setup(t *testing.T, dsn, body string) (*clock, store.Store, *rollouttest.Fleet, control.Version, control.Rollout) {
	t.Helper()
	if dsn == "" {
		dsn = filepath.Join(t.TempDir(), "c.db")
	}
	c := &clock{t: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)}
	s := openStore(t, dsn, c)
	v := version(t, s, body)
	return c, s, newFleet(20), v, start(t, s, v)
}

func version(t *testing.T, s store.Store, body string) control.Version {
	t.Helper()
	v, _, err := s.CreateVersion(ctx, olga, scope, []control.File{{Name: "tpflow.yaml", Body: body}}, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func start(t *testing.T, s store.Store, v control.Version) control.Rollout {
	t.Helper()
	r, _, err := s.CreateRollout(ctx, olga, control.Rollout{Scope: scope, Version: v.Version, Waves: waves})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// run steps e, advancing the clock 20s a step, until the rollout leaves
// running or steps run out.
func run(t *testing.T, e *rollout.Engine, s store.Store, c *clock, id int64, steps int) control.Rollout {
	t.Helper()
	for range steps {
		if err := e.Step(ctx); err != nil {
			t.Fatal(err)
		}
		r, err := s.Rollout(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != control.RolloutRunning {
			return r
		}
		c.add(20 * time.Second)
	}
	r, _ := s.Rollout(ctx, id)
	return r
}

func waveSizes(t *testing.T, s store.Store, id int64) []int {
	t.Helper()
	m, err := s.Members(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	sizes := make([]int, len(waves))
	for _, w := range m {
		sizes[w]++
	}
	return sizes
}

func TestGoodVersionReachesEveryAgentInWaves(t *testing.T) {
	c, s, f, v, r := setup(t, "", "log:\n  level: debug\n")
	e := rollout.New(s, f, c.now, nil)

	// After the first step only the first wave (5% of 20: one agent) has it.
	if err := e.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if running, _ := f.Count(v.SHA256); running != 1 {
		t.Fatalf("after the first step %d agents run the version, want 1", running)
	}
	got := run(t, e, s, c, r.ID, 50)
	if got.State != control.RolloutDone {
		t.Fatalf("rollout = %+v", got)
	}
	if running, _ := f.Count(v.SHA256); running != 20 {
		t.Errorf("%d of 20 agents run the version", running)
	}
	for k, n := range f.Applied() {
		if n != 1 {
			t.Errorf("%s applied %d times", k, n)
		}
	}
	if sz := waveSizes(t, s, r.ID); fmt.Sprint(sz) != "[1 4 15]" {
		t.Errorf("wave sizes %v, want [1 4 15]", sz)
	}
	// Soak: each wave ran at least a minute before the next one started.
	ops, _ := s.Operations(ctx, control.OperationFilter{Target: "rollout:1"})
	var actions []string
	var starts []time.Time
	for i := len(ops) - 1; i >= 0; i-- {
		actions = append(actions, ops[i].Action)
		if ops[i].Action == "rollout.wave" {
			starts = append(starts, ops[i].At)
		}
	}
	if strings.Join(actions, " ") != "rollout.create rollout.wave rollout.next_wave rollout.wave rollout.next_wave rollout.wave rollout.done" {
		t.Errorf("operations %v", actions)
	}
	for i := 1; i < len(starts); i++ {
		if d := starts[i].Sub(starts[i-1]); d < time.Minute {
			t.Errorf("wave %d started %s after wave %d, before its soak of 1m", i+1, d, i)
		}
	}
}

func TestFailingVersionStopsInTheFirstWaveAndIsMarkedBad(t *testing.T) {
	c, s, f, v, r := setup(t, "", "log:\n  level: debug\n# health: bad\n")
	got := run(t, rollout.New(s, f, c.now, nil), s, c, r.ID, 20)
	if got.State != control.RolloutPaused || got.Failures != 1 || got.Wave != 0 || !strings.Contains(got.Reason, "failure budget") {
		t.Fatalf("rollout = %+v, want paused in wave 1 with 1 failure", got)
	}
	if _, offered := f.Count(v.SHA256); offered != 1 {
		t.Errorf("%d agents were offered the version, want only the first wave's 1", offered)
	}
	if bad, err := s.IsBad(ctx, scope, v.Version); err != nil || !bad {
		t.Errorf("IsBad = %v, %v; want marked bad", bad, err)
	}
	if _, err := rollout.Abort(ctx, s, olga, r.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateRollout(ctx, olga, control.Rollout{Scope: scope, Version: v.Version, Waves: waves}); !errors.Is(err, control.ErrConflict) {
		t.Errorf("a rollout of a bad version = %v, want ErrConflict", err)
	}
}

// TestFailedWaveIsRevertedToTheLastGoodVersion rolls out a version that
// fails only in dc2: the second wave, half in dc2, reaches its budget of
// two; every agent that applied it, in dc1, is brought back to the version
// before it, and the rollout pauses.
func TestFailedWaveIsRevertedToTheLastGoodVersion(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)}
	s := openStore(t, filepath.Join(t.TempDir(), "c.db"), c)
	f := newFleet(20)
	good := version(t, s, "log:\n  level: info\n")
	bad := version(t, s, "log:\n  level: debug\n# health: bad in dc2\n")
	r := start(t, s, bad)
	got := run(t, rollout.New(s, f, c.now, nil), s, c, r.ID, 30)
	if got.State != control.RolloutPaused || got.Wave != 1 || got.Failures != 2 {
		t.Fatalf("rollout = %+v, want paused in wave 2 with 2 failures", got)
	}
	tried := 0
	for k := range f.Applied() {
		if strings.HasSuffix(k, "/"+bad.SHA256) {
			tried++
		}
	}
	if running, _ := f.Count(bad.SHA256); running != 0 || tried != 5 {
		t.Errorf("after the pause %d agents run the bad version and %d tried it; want 0 and the 5 of waves 1-2", running, tried)
	}
	if running, _ := f.Count(good.SHA256); running != 3 {
		t.Errorf("%d agents were brought back to the good version, want the 3 in dc1", running)
	}
}

// TestKilledEngineResumesWithoutApplyingAWaveTwice kills the engine (and
// its store handle) right after the second wave was recorded, before any
// of its agents could be offered the version, and runs a new one on the
// same store file: the rollout finishes, the waves keep their members and
// every agent applied the version once.
func TestKilledEngineResumesWithoutApplyingAWaveTwice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	c, s1, f, v, r := setup(t, path, "log:\n  level: debug\n")
	e1 := rollout.New(s1, f, c.now, nil)
	for range 20 {
		if got, _ := s1.Rollout(ctx, r.ID); got.Wave == 1 && !got.WaveStarted.IsZero() {
			break
		}
		if got, _ := s1.Rollout(ctx, r.ID); got.Wave == 1 {
			f.SetUnreachable(func(string) bool { return true }) // dies before its offers go out
		}
		if err := e1.Step(ctx); err != nil {
			t.Fatal(err)
		}
		c.add(20 * time.Second)
	}
	mid, _ := s1.Rollout(ctx, r.ID)
	if mid.Wave != 1 || mid.WaveStarted.IsZero() {
		t.Fatalf("did not stop in wave 2: %+v", mid)
	}
	if running, _ := f.Count(v.SHA256); running != 1 {
		t.Fatalf("%d agents run the version at the kill, want 1", running)
	}
	before := waveSizes(t, s1, r.ID)
	s1.Close()

	f.SetUnreachable(nil)
	s2 := openStore(t, path, c)
	got := run(t, rollout.New(s2, f, c.now, nil), s2, c, r.ID, 50)
	if got.State != control.RolloutDone {
		t.Fatalf("after restart: %+v", got)
	}
	after := waveSizes(t, s2, r.ID)
	if before[0] != after[0] || before[1] != after[1] || fmt.Sprint(after) != "[1 4 15]" {
		t.Errorf("wave members before the kill %v, after %v; want the first two kept and [1 4 15]", before, after)
	}
	for k, n := range f.Applied() {
		if n != 1 {
			t.Errorf("%s applied %d times", k, n)
		}
	}
	if running, _ := f.Count(v.SHA256); running != 20 {
		t.Errorf("%d of 20 agents run the version", running)
	}
}

func TestPauseResumeAbort(t *testing.T) {
	c, s, f, v, r := setup(t, "", "log:\n  level: debug\n")
	e := rollout.New(s, f, c.now, nil)
	if err := e.Step(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := rollout.Pause(ctx, s, control.Actor{Who: "olga", Reason: "lunch"}, r.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := rollout.Pause(ctx, s, olga, r.ID); !errors.Is(err, control.ErrConflict) {
		t.Errorf("pausing a paused rollout = %v", err)
	}
	for range 10 {
		c.add(time.Minute)
		if err := e.Step(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if running, _ := f.Count(v.SHA256); running != 1 {
		t.Errorf("a paused rollout reached %d agents, want the first wave's 1", running)
	}
	if _, err := rollout.Resume(ctx, s, olga, r.ID); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		c.add(time.Minute)
		_ = e.Step(ctx)
	}
	if running, _ := f.Count(v.SHA256); running <= 1 {
		t.Errorf("a resumed rollout did not go on: %d agents", running)
	}
	if _, err := rollout.Abort(ctx, s, olga, r.ID); err != nil {
		t.Fatal(err)
	}
	n, _ := f.Count(v.SHA256)
	for range 5 {
		c.add(time.Minute)
		_ = e.Step(ctx)
	}
	if m, _ := f.Count(v.SHA256); m != n {
		t.Errorf("an aborted rollout went on from %d to %d agents", n, m)
	}
	if _, err := rollout.Resume(ctx, s, olga, r.ID); !errors.Is(err, control.ErrConflict) {
		t.Errorf("resuming an aborted rollout = %v", err)
	}
	ops, _ := s.Operations(ctx, control.OperationFilter{Action: "rollout.pause"})
	if len(ops) != 1 || ops[0].Who != "olga" || ops[0].Reason != "lunch" {
		t.Errorf("pause operations = %+v", ops)
	}
}

// TestOneLeaderOnPostgres takes the leadership with two store handles on
// one PostgreSQL database, as two replicas would: one leads; when its
// connection dies (the server ends its session, as when the replica is
// killed) the other takes over.
func TestOneLeaderOnPostgres(t *testing.T) {
	t.Parallel()
	dsn := pgtest.DSN(t)
	c := &clock{t: time.Now()}
	a, b := openStore(t, dsn, c), openStore(t, dsn, c)
	la, ok, err := a.Lead(ctx)
	if err != nil || !ok {
		t.Fatalf("first Lead = %v, %v", ok, err)
	}
	if _, ok, err := b.Lead(ctx); err != nil || ok {
		t.Fatalf("second replica leads too: %v, %v", ok, err)
	}
	if err := la.Held(ctx); err != nil {
		t.Errorf("Held = %v", err)
	}
	// The leader's session dies.
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var killed bool
	if err := db.QueryRowContext(ctx, "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = 7349002"+
		" AND database = (SELECT oid FROM pg_database WHERE datname = current_database())").Scan(&killed); err != nil || !killed {
		t.Fatalf("cannot end the leader's session: %v %v", killed, err)
	}
	testkit.WaitFor(t, 10*time.Second, "the dead leader to notice", func() bool { return la.Held(ctx) != nil })
	var lb store.Leader
	testkit.WaitFor(t, 10*time.Second, "the other replica to take over", func() bool {
		l, ok, err := b.Lead(ctx)
		if err != nil {
			t.Fatal(err)
		}
		lb = l
		return ok
	})
	lb.Release()
	if l, ok, _ := b.Lead(ctx); !ok {
		t.Error("released leadership cannot be taken again")
	} else {
		l.Release()
	}
}

// TestLeaderHandsOverMidRollout runs two engines, as two control replicas
// on one PostgreSQL would: the first leads the rollout into its second
// wave and dies; the second takes the leadership and finishes the
// rollout, and every agent applied the version once.
func TestLeaderHandsOverMidRollout(t *testing.T) {
	t.Parallel()
	dsn := pgtest.DSN(t)
	c, sa, f, v, r := setup(t, dsn, "log:\n  level: debug\n")
	sb := openStore(t, dsn, c)

	ctxA, killA := context.WithCancel(ctx)
	doneA := make(chan struct{})
	go func() { _ = rollout.New(sa, f, c.now, nil).Run(ctxA, 5*time.Millisecond); close(doneA) }()
	testkit.WaitFor(t, 10*time.Second, "the first wave to run", func() bool { n, _ := f.Count(v.SHA256); return n == 1 })
	ctxB, stopB := context.WithCancel(ctx)
	doneB := make(chan struct{})
	go func() { _ = rollout.New(sb, f, c.now, nil).Run(ctxB, 5*time.Millisecond); close(doneB) }()
	defer func() { stopB(); <-doneB }()
	// The soak of the first wave passes while the first replica leads;
	// it starts the second wave and dies.
	c.add(time.Minute)
	testkit.WaitFor(t, 10*time.Second, "the second wave to run", func() bool { n, _ := f.Count(v.SHA256); return n == 5 })
	killA()
	<-doneA
	// Only the second replica is left to lead the rest; the soak times
	// pass as it polls.
	testkit.WaitFor(t, 10*time.Second, "the rollout to be done", func() bool {
		c.add(10 * time.Second)
		got, _ := sb.Rollout(ctx, r.ID)
		return got.State == control.RolloutDone
	})
	if n, _ := f.Count(v.SHA256); n != 20 {
		t.Errorf("%d of 20 agents run the version", n)
	}
	for k, n := range f.Applied() {
		if n != 1 {
			t.Errorf("%s applied %d times", k, n)
		}
	}
	if sz := waveSizes(t, sb, r.ID); fmt.Sprint(sz) != "[1 4 15]" {
		t.Errorf("wave sizes %v, want [1 4 15]", sz)
	}
}

// TestSilentAgentCountsAsFailureAtTheWaveTimeOut rolls out under the
// default waves while the first wave's only agent takes the offer and
// never answers: the wave holds until its default time-out (soak time plus
// three heartbeats), not a moment longer; then the silent agent counts
// against the budget of one, the rollout pauses and the operation history
// names the agent and the time-out.
func TestSilentAgentCountsAsFailureAtTheWaveTimeOut(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)}
	s := openStore(t, filepath.Join(t.TempDir(), "c.db"), c)
	f := newFleet(20)
	f.SetSilent(func(id string) bool { return id == "agent-00" })
	v := version(t, s, "log:\n  level: debug\n")
	r, _, err := s.CreateRollout(ctx, olga, control.Rollout{Scope: scope, Version: v.Version, Waves: control.DefaultWaves()})
	if err != nil {
		t.Fatal(err)
	}
	e := rollout.New(s, f, c.now, nil)
	timeout := control.DefaultWaveTimeout(5 * time.Minute)
	if timeout != 5*time.Minute+90*time.Second {
		t.Fatalf("default time-out for a 5m soak = %s, want 6m30s", timeout)
	}
	for elapsed := time.Duration(0); elapsed < timeout; elapsed += 30 * time.Second {
		if err := e.Step(ctx); err != nil {
			t.Fatal(err)
		}
		got, _ := s.Rollout(ctx, r.ID)
		if got.State != control.RolloutRunning || got.Wave != 0 || got.Failures != 0 {
			t.Fatalf("%s into the wave (time-out %s): %+v, want running in wave 1 with no failure", elapsed, timeout, got)
		}
		c.add(30 * time.Second)
	}
	if err := e.Step(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Rollout(ctx, r.ID)
	want := "wave 1 reached its failure budget: 1 of 1 agents failed; 1 did not report version 1 running within the wave's time-out of 6m30s: agent-00"
	if got.State != control.RolloutPaused || got.Failures != 1 || got.Reason != want {
		t.Fatalf("at the time-out: %+v, want paused with reason %q", got, want)
	}
	ops, _ := s.Operations(ctx, control.OperationFilter{Action: "rollout.pause"})
	if len(ops) != 1 || ops[0].Who != rollout.Who || ops[0].Reason != want {
		t.Errorf("pause operations = %+v", ops)
	}
	if bad, err := s.IsBad(ctx, scope, v.Version); err != nil || !bad {
		t.Errorf("IsBad = %v, %v; want marked bad", bad, err)
	}
	if _, offered := f.Count(v.SHA256); offered != 0 {
		t.Errorf("%d agents took the version, want none (the silent one never answered)", offered)
	}
}

// TestSilentAgentWithinTheBudgetDoesNotHoldTheWave makes one agent of
// the last wave (budget 3) silent: at the wave's time-out it counts as
// one failure, the others run the version, and the rollout is done, with
// the silent agent named in the history.
func TestSilentAgentWithinTheBudgetDoesNotHoldTheWave(t *testing.T) {
	c, s, f, v, r := setup(t, "", "log:\n  level: debug\n")
	f.SetSilent(func(id string) bool { return id == "agent-10" })
	got := run(t, rollout.New(s, f, c.now, nil), s, c, r.ID, 50)
	if got.State != control.RolloutDone || got.Failures != 1 {
		t.Fatalf("rollout = %+v, want done with 1 failure", got)
	}
	if running, _ := f.Count(v.SHA256); running != 19 {
		t.Errorf("%d agents run the version, want the 19 that answer", running)
	}
	ops, _ := s.Operations(ctx, control.OperationFilter{Action: "rollout.done"})
	if len(ops) != 1 || !strings.Contains(ops[0].Reason, "1 failed within the budget of 3; 1 did not report version 1 running within the wave's time-out of 2m30s: agent-10") {
		t.Errorf("done operations = %+v", ops)
	}
	// The last wave waited for the time-out, not only its soak.
	waveOps, _ := s.Operations(ctx, control.OperationFilter{Target: "rollout:1"})
	var lastWave time.Time
	for _, op := range waveOps {
		if op.Action == "rollout.wave" && op.At.After(lastWave) {
			lastWave = op.At
		}
	}
	if d := ops[0].At.Sub(lastWave); d < 2*time.Minute+30*time.Second {
		t.Errorf("the last wave ended %s after it started, before its time-out of 2m30s", d)
	}
}

func TestWaveTimeOutIsValidatedAndKeptInJSON(t *testing.T) {
	ok := []control.Wave{{Percent: 100, Soak: time.Minute, FailureBudget: 1, Timeout: 10 * time.Minute}}
	if err := control.CheckWaves(ok); err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{-time.Second, time.Second, 26 * time.Hour} {
		bad := []control.Wave{{Percent: 100, Soak: time.Minute, FailureBudget: 1, Timeout: d}}
		if err := control.CheckWaves(bad); err == nil || !strings.Contains(err.Error(), "waves[0].timeout "+d.String()) {
			t.Errorf("time-out %s: %v, want an error naming waves[0].timeout", d, err)
		}
	}
	b, err := json.Marshal(ok)
	if err != nil {
		t.Fatal(err)
	}
	var back []control.Wave
	if err := json.Unmarshal(b, &back); err != nil || len(back) != 1 || back[0] != ok[0] {
		t.Errorf("round trip of %s = %+v, %v", b, back, err)
	}
	if err := json.Unmarshal([]byte(`[{"percent":100,"soak":"1m","failure_budget":1,"timeout":"soon"}]`), &back); err == nil || !strings.Contains(err.Error(), `timeout "soon"`) {
		t.Errorf("a bad time-out = %v, want an error naming it", err)
	}
	if w := (control.Wave{Soak: time.Minute}); w.WaveTimeout() != 2*time.Minute+30*time.Second {
		t.Errorf("unset time-out = %s, want soak + 3 heartbeats", w.WaveTimeout())
	}
}
