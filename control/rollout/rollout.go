// Package rollout is the rollout engine: it brings a configuration version
// to the agents of its scope in waves, soaks each wave, and pauses the
// rollout and marks the version bad when a wave reaches its failure
// budget. Every step is persisted in the store before it acts, so that a
// control plane killed at any moment resumes without applying a wave
// twice; with several replicas on PostgreSQL only the one holding the
// advisory lock steps rollouts. DESIGN.md next to the control model
// describes the guarantees.
package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/tpflow/tpflow/control"
	"github.com/tpflow/tpflow/control/store"
)

// Apply statuses an agent reports for the version it was offered.
const (
	StatusApplying = "applying"
	StatusApplied  = "applied"
	StatusFailed   = "failed"
	StatusReverted = "reverted"
)

// AgentState is what an agent reports: who it is, and what it runs.
type AgentState struct {
	ID string
	control.Agent
	// Running is the sha256 of the configuration it runs.
	Running string
	// Offered is the sha256 of the last configuration it was offered, and
	// Status how applying it went.
	Offered string
	Status  string
}

// Fleet is the agents as the control plane sees them.
type Fleet interface {
	// Agents returns every agent's last report.
	Agents(ctx context.Context) ([]AgentState, error)
	// Offer sends version v to agent id. Offering the version an agent
	// already has is a no-op for it.
	Offer(ctx context.Context, id string, v control.Version) error
}

// Engine steps rollouts. It is not safe for concurrent use: one goroutine
// runs it.
type Engine struct {
	store store.Store
	fleet Fleet
	now   func() time.Time
	log   *slog.Logger
	// who is the name the engine's operations are recorded under.
	who string
}

// Engine's name in the operation history.
const Who = "rollout-engine"

// New returns an engine over s and fleet; now and log may be nil.
func New(s store.Store, fleet Fleet, now func() time.Time, log *slog.Logger) *Engine {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Engine{store: s, fleet: fleet, now: now, log: log, who: Who}
}

// Run steps the rollouts every interval while this replica leads, until
// ctx is done; it tries to lead every interval while it does not.
func (e *Engine) Run(ctx context.Context, interval time.Duration) error {
	var lead store.Leader
	defer func() {
		if lead != nil {
			lead.Release()
		}
	}()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if lead != nil {
			if err := lead.Held(ctx); err != nil {
				e.log.Warn("lost rollout leadership", "err", err)
				lead.Release()
				lead = nil
			}
		}
		if lead == nil {
			l, ok, err := e.store.Lead(ctx)
			if err != nil && ctx.Err() == nil {
				e.log.Warn("cannot try rollout leadership", "err", err)
			}
			if ok {
				lead = l
			}
		}
		if lead != nil {
			if err := e.Step(ctx); err != nil && ctx.Err() == nil {
				e.log.Warn("rollout step failed; trying again", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Step advances every running rollout as far as it can now.
func (e *Engine) Step(ctx context.Context) error {
	rs, err := e.store.Rollouts(ctx, control.RolloutRunning)
	if err != nil {
		return err
	}
	agents, err := e.fleet.Agents(ctx)
	if err != nil {
		return fmt.Errorf("cannot list agents: %w", err)
	}
	var errs []error
	for _, r := range rs {
		if err := e.step(ctx, r, agents); err != nil {
			errs = append(errs, fmt.Errorf("rollout %d: %w", r.ID, err))
		}
	}
	return errors.Join(errs...)
}

func (e *Engine) actor(reason string) control.Actor { return control.Actor{Who: e.who, Reason: reason} }

// step advances rollout r by at most one wave change.
func (e *Engine) step(ctx context.Context, r control.Rollout, agents []AgentState) error {
	members, err := e.store.Members(ctx, r.ID)
	if err != nil {
		return err
	}
	byID := map[string]AgentState{}
	var targets []string
	for _, a := range agents {
		if r.Scope.Covers(a.Agent) {
			targets = append(targets, a.ID)
			byID[a.ID] = a
		}
	}
	v, err := e.store.Version(ctx, r.Scope, r.Version)
	if err != nil {
		return err
	}
	if r.WaveStarted.IsZero() {
		// Start the wave: record its members first, then offer.
		taken := map[string]bool{}
		for id := range members {
			taken[id] = true
		}
		wave := control.WaveMembers(r.Waves, r.Wave, targets, taken)
		next := r
		next.WaveStarted = e.now().UTC()
		if _, err := e.store.StartWave(ctx, e.actor(fmt.Sprintf("wave %d of %d: %d agents", r.Wave+1, len(r.Waves), len(wave))), next, wave); err != nil {
			return err
		}
		for _, id := range wave {
			members[id] = r.Wave
		}
		r = next
	}
	// Offer the version to the wave's agents that neither run it nor
	// tried it (after a restart between recording and offering).
	var wave []string
	for id, w := range members {
		if w == r.Wave {
			wave = append(wave, id)
		}
	}
	slices.Sort(wave)
	w := r.Waves[r.Wave]
	timeout := w.WaveTimeout()
	timedOut := e.now().Sub(r.WaveStarted) >= timeout
	// An agent gone from the fleet neither holds the wave back nor
	// counts as a failure; one that has not reported the version running
	// within the wave's time-out counts as a failure, so that a silent
	// agent cannot hold the wave back forever.
	failures, running, present := 0, 0, 0
	var silent []string
	for _, id := range wave {
		a, ok := byID[id]
		if !ok {
			continue
		}
		present++
		switch {
		case a.Running == r.SHA256 && (a.Offered != r.SHA256 || a.Status == StatusApplied):
			running++
			continue
		case a.Offered == r.SHA256 && (a.Status == StatusFailed || a.Status == StatusReverted):
			failures++
			continue
		case a.Offered != r.SHA256:
			if err := e.fleet.Offer(ctx, id, v); err != nil {
				e.log.Warn("cannot offer version", "rollout", r.ID, "agent", id, "err", err)
			}
		}
		if timedOut {
			failures++
			silent = append(silent, id)
		}
	}
	var why string
	if len(silent) > 0 {
		why = fmt.Sprintf("; %d did not report version %d running within the wave's time-out of %s: %s", len(silent), r.Version, timeout, strings.Join(silent, ", "))
	}
	next := r
	next.Failures = failures
	switch {
	case failures >= w.FailureBudget:
		// Mark the version bad, bring every member that runs it back to
		// the last good version, then pause: each step is idempotent, so
		// an engine killed in between does them again on restart.
		next.State = control.RolloutPaused
		next.Reason = fmt.Sprintf("wave %d reached its failure budget: %d of %d agents failed%s", r.Wave+1, failures, len(wave), why)
		if _, err := e.store.MarkBad(ctx, e.actor(next.Reason), r.Scope, r.Version, next.Reason); err != nil {
			return err
		}
		if err := e.revert(ctx, r, members, byID); err != nil {
			return err
		}
		_, err := e.store.UpdateRollout(ctx, e.actor(next.Reason), r, next, "rollout.pause")
		return err
	case running+failures == present && e.now().Sub(r.WaveStarted) >= w.Soak:
		// Every member runs the version or failed within the budget.
		next.Wave++
		next.WaveStarted = time.Time{}
		next.Failures = 0
		action := "rollout.next_wave"
		if next.Wave == len(r.Waves) {
			next.Wave--
			next.WaveStarted = r.WaveStarted
			next.Failures = failures
			next.State = control.RolloutDone
			action = "rollout.done"
		}
		reason := ""
		if failures > 0 {
			reason = fmt.Sprintf("wave %d through: %d of %d agents run the version, %d failed within the budget of %d%s", r.Wave+1, running, len(wave), failures, w.FailureBudget, why)
		}
		_, err := e.store.UpdateRollout(ctx, e.actor(reason), r, next, action)
		return err
	case failures != r.Failures:
		_, err := e.store.UpdateRollout(ctx, e.actor(fmt.Sprintf("wave %d: %d of %d agents failed%s", r.Wave+1, failures, len(wave), why)), r, next, "rollout.failures")
		return err
	}
	return nil
}

// revert offers the newest version of r's scope older than r's and not
// marked bad to every member of r that runs r's version. Without such a
// version the members keep what they run (their own health gate has
// reverted the failed ones).
func (e *Engine) revert(ctx context.Context, r control.Rollout, members map[string]int, byID map[string]AgentState) error {
	for n := r.Version - 1; n >= 1; n-- {
		bad, err := e.store.IsBad(ctx, r.Scope, n)
		if err != nil {
			return err
		}
		if bad {
			continue
		}
		good, err := e.store.Version(ctx, r.Scope, n)
		if err != nil {
			return err
		}
		for id := range members {
			if a, ok := byID[id]; ok && a.Running == r.SHA256 {
				if err := e.fleet.Offer(ctx, id, good); err != nil {
					e.log.Warn("cannot revert agent", "rollout", r.ID, "agent", id, "err", err)
				}
			}
		}
		return nil
	}
	return nil
}

// Pause, Resume and Abort change a rollout's state for an operator.

// Pause stops a running rollout after its current step.
func Pause(ctx context.Context, s store.Store, a control.Actor, id int64) (control.Rollout, error) {
	return set(ctx, s, a, id, "rollout.pause", control.RolloutPaused, control.RolloutRunning)
}

// Resume runs a paused rollout again; its current wave is soaked and
// counted afresh.
func Resume(ctx context.Context, s store.Store, a control.Actor, id int64) (control.Rollout, error) {
	return set(ctx, s, a, id, "rollout.resume", control.RolloutRunning, control.RolloutPaused)
}

// Abort ends a running or paused rollout for good.
func Abort(ctx context.Context, s store.Store, a control.Actor, id int64) (control.Rollout, error) {
	return set(ctx, s, a, id, "rollout.abort", control.RolloutAborted, control.RolloutRunning, control.RolloutPaused)
}

func set(ctx context.Context, s store.Store, a control.Actor, id int64, action string, to control.RolloutState, from ...control.RolloutState) (control.Rollout, error) {
	r, err := s.Rollout(ctx, id)
	if err != nil {
		return r, err
	}
	ok := false
	for _, f := range from {
		ok = ok || r.State == f
	}
	if !ok {
		return r, fmt.Errorf("%w: rollout %d is %s", control.ErrConflict, id, r.State)
	}
	next := r
	next.State, next.Reason = to, a.Reason
	if to == control.RolloutRunning {
		next.Failures = 0
	}
	_, err = s.UpdateRollout(ctx, a, r, next, action)
	return next, err
}
