// Package rollouttest is an in-process fleet for rollout tests: agents
// that apply an offered version at once, and fail the health gate of one
// whose first file says "health: bad" (or "health: bad in IDC" for the
// agents of that IDC), reverting to what ran before; silent agents never
// answer.
package rollouttest

import (
	"context"
	"errors"
	"maps"
	"strings"
	"sync"

	"github.com/tpflow/tpflow/control"
	"github.com/tpflow/tpflow/control/rollout"
)

// Fleet is a rollout.Fleet of in-process agents. It is safe for
// concurrent use.
type Fleet struct {
	mu      sync.Mutex
	agents  map[string]*rollout.AgentState
	applied map[string]int // ID/sha → times applied
	fail    func(id string) bool
	silent  func(id string) bool
}

// New returns an empty fleet.
func New() *Fleet {
	return &Fleet{agents: map[string]*rollout.AgentState{}, applied: map[string]int{}}
}

// Add adds an agent running the configuration of sha256 running.
func (f *Fleet) Add(id string, a control.Agent, running string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.agents[id] = &rollout.AgentState{ID: id, Agent: a, Running: running}
}

// SetUnreachable makes Offer fail for the agents fail returns true for;
// nil makes every agent reachable again.
func (f *Fleet) SetUnreachable(fail func(id string) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = fail
}

// SetSilent makes the agents silent returns true for take offers and
// never answer them: their reports stay as they were. nil makes every
// agent answer again.
func (f *Fleet) SetSilent(silent func(id string) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.silent = silent
}

// Agents implements rollout.Fleet.
func (f *Fleet) Agents(context.Context) ([]rollout.AgentState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]rollout.AgentState, 0, len(f.agents))
	for _, a := range f.agents {
		out = append(out, *a)
	}
	return out, nil
}

// Offer implements rollout.Fleet: the agent applies v unless it already
// has it.
func (f *Fleet) Offer(_ context.Context, id string, v control.Version) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil && f.fail(id) {
		return errors.New("agent unreachable")
	}
	a, ok := f.agents[id]
	if !ok {
		return errors.New("no agent " + id)
	}
	if a.Offered == v.SHA256 || f.silent != nil && f.silent(id) {
		return nil
	}
	f.applied[id+"/"+v.SHA256]++
	a.Offered = v.SHA256
	if len(v.Files) > 0 && (strings.Contains(v.Files[0].Body, "health: bad\n") || strings.Contains(v.Files[0].Body, "health: bad in "+a.IDC+"\n")) {
		a.Status = rollout.StatusReverted
		return nil
	}
	a.Running, a.Status = v.SHA256, rollout.StatusApplied
	return nil
}

// Count returns how many agents run sha and how many were offered it.
func (f *Fleet) Count(sha string) (running, offered int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.agents {
		if a.Running == sha {
			running++
		}
		if a.Offered == sha {
			offered++
		}
	}
	return running, offered
}

// Applied returns how often each agent applied each version, by
// "ID/sha".
func (f *Fleet) Applied() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.applied)
}
