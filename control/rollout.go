package control

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// RolloutState is where a rollout is.
type RolloutState string

// The states of a rollout: running → done, or paused (by an operator or
// by a wave reaching its failure budget) → running again, or aborted.
const (
	RolloutRunning RolloutState = "running"
	RolloutPaused  RolloutState = "paused"
	RolloutDone    RolloutState = "done"
	RolloutAborted RolloutState = "aborted"
)

// Wave is one step of a rollout.
type Wave struct {
	// Percent is the share of the rollout's agents that run the version
	// once the wave is through, counting the waves before it (1-100).
	Percent int `json:"percent"`
	// Soak is how long the wave's agents run the version before the next
	// wave starts.
	Soak time.Duration `json:"soak"`
	// FailureBudget is how many of the wave's agents may fail (report the
	// apply failed or reverted, or not report the version running within
	// Timeout) before the rollout pauses; at least 1.
	FailureBudget int `json:"failure_budget"`
	// Timeout is how long after the wave started its agents have to report
	// the version running; one that has not by then counts as a failure,
	// so that a silent agent cannot hold the wave back forever. Zero means
	// DefaultWaveTimeout: the soak time plus three agent heartbeats.
	Timeout time.Duration `json:"timeout"`
}

// AgentHeartbeat is how often an agent reports what it runs, by default.
const AgentHeartbeat = 30 * time.Second

// MaxWaveTimeout bounds a wave's time-out (and so its soak time plus
// slack): a day and an hour.
const MaxWaveTimeout = 25 * time.Hour

// DefaultWaveTimeout is the time-out of a wave with soak time soak that
// names none: the soak time plus three heartbeats, so that an agent
// that applied the version at once has missed three reports before it
// counts as failed.
func DefaultWaveTimeout(soak time.Duration) time.Duration { return soak + 3*AgentHeartbeat }

// WaveTimeout returns w's time-out, DefaultWaveTimeout when it names none.
func (w Wave) WaveTimeout() time.Duration {
	if w.Timeout == 0 {
		return DefaultWaveTimeout(w.Soak)
	}
	return w.Timeout
}

// Rollout brings version Version of Scope to the agents of the scope in
// waves. It is persisted on every step, so that a control plane that is
// killed resumes it where it was.
type Rollout struct {
	ID      int64        `json:"id"`
	Scope   Scope        `json:"scope"`
	Version int64        `json:"version"`
	SHA256  string       `json:"sha256"`
	Waves   []Wave       `json:"waves"`
	State   RolloutState `json:"state"`
	// Wave is the index of the current wave.
	Wave int `json:"wave"`
	// WaveStarted is when the current wave's agents were offered the
	// version; zero before.
	WaveStarted time.Time `json:"wave_started"`
	// Failures counts the current wave's failed agents at the last step.
	Failures int    `json:"failures"`
	Reason   string `json:"reason"`
}

// CheckWaves validates a rollout's waves: percents increasing up to 100,
// soak times within a day, budgets of at least one, time-outs unset or
// between one heartbeat and MaxWaveTimeout.
func CheckWaves(ws []Wave) error {
	if len(ws) == 0 || len(ws) > 20 {
		return Invalidf("a rollout needs 1-20 waves, got %d", len(ws))
	}
	var errs []string
	prev := 0
	for i, w := range ws {
		if w.Percent <= prev || w.Percent > 100 {
			errs = append(errs, fmt.Sprintf("waves[%d].percent %d must be above the previous wave's %d and at most 100", i, w.Percent, prev))
		}
		prev = w.Percent
		if w.Soak < 0 || w.Soak > 24*time.Hour {
			errs = append(errs, fmt.Sprintf("waves[%d].soak %s must be between 0 and 24h", i, w.Soak))
		}
		if w.Timeout != 0 && (w.Timeout < AgentHeartbeat || w.Timeout > MaxWaveTimeout) {
			errs = append(errs, fmt.Sprintf("waves[%d].timeout %s must be between %s (one heartbeat) and %s, or unset for the soak time plus 3 heartbeats", i, w.Timeout, AgentHeartbeat, MaxWaveTimeout))
		}
		if w.FailureBudget < 1 {
			errs = append(errs, fmt.Sprintf("waves[%d].failure_budget must be at least 1", i))
		}
	}
	if prev != 100 {
		errs = append(errs, "the last wave must reach 100 percent")
	}
	if len(errs) > 0 {
		return Invalidf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// Covers reports whether the scope applies to agent a.
func (s Scope) Covers(a Agent) bool {
	switch s.Kind {
	case ScopeGlobal:
		return true
	case ScopeSystem:
		return a.System == s.Name
	case ScopeApp:
		return a.System+"/"+a.App == s.Name
	case ScopeGroup:
		return a.System+"/"+a.App+"/"+a.Group == s.Name
	case ScopeNode:
		sel, err := ParseSelector(s.Name)
		return err == nil && sel.Matches(a)
	}
	return false
}

// WaveMembers returns the agents (IDs) that wave i adds: of the sorted
// ids not in taken, enough to bring the count to the wave's percent of
// all (rounded up, so that the first wave reaches at least one agent).
func WaveMembers(waves []Wave, i int, ids []string, taken map[string]bool) []string {
	ids = slices.Sorted(slices.Values(ids))
	want := (len(ids)*waves[i].Percent + 99) / 100
	var out []string
	have := 0
	for _, id := range ids {
		if taken[id] {
			have++
		}
	}
	for _, id := range ids {
		if have >= want {
			break
		}
		if !taken[id] {
			out = append(out, id)
			have++
		}
	}
	return out
}

// DefaultWaves are the waves of a rollout that names none: 5 % (at least
// one agent), 25 %, then everyone, each soaked 5 minutes, pausing at the
// first failure in the first wave, the second in the second, the fifth in
// the last.
func DefaultWaves() []Wave {
	return []Wave{
		{Percent: 5, Soak: 5 * time.Minute, FailureBudget: 1},
		{Percent: 25, Soak: 5 * time.Minute, FailureBudget: 2},
		{Percent: 100, Soak: 5 * time.Minute, FailureBudget: 5},
	}
}

// waveJSON is a Wave with its soak time and time-out as Go duration
// strings ("5m"); an unset time-out is omitted.
type waveJSON struct {
	Percent       int    `json:"percent"`
	Soak          string `json:"soak"`
	FailureBudget int    `json:"failure_budget"`
	Timeout       string `json:"timeout,omitempty"`
}

// MarshalJSON writes the soak time and time-out as duration strings.
func (w Wave) MarshalJSON() ([]byte, error) {
	j := waveJSON{Percent: w.Percent, Soak: w.Soak.String(), FailureBudget: w.FailureBudget}
	if w.Timeout != 0 {
		j.Timeout = w.Timeout.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads the soak time and time-out as duration strings.
func (w *Wave) UnmarshalJSON(b []byte) error {
	var j waveJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return err
	}
	soak, err := parseDuration("soak", j.Soak)
	if err != nil {
		return err
	}
	timeout, err := parseDuration("timeout", j.Timeout)
	if err != nil {
		return err
	}
	*w = Wave{Percent: j.Percent, Soak: soak, FailureBudget: j.FailureBudget, Timeout: timeout}
	return nil
}

// parseDuration reads field's duration string s; "" is zero.
func parseDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not a duration such as 5m", field, s)
	}
	return d, nil
}
