package alerting

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/tpflow/tpflow/internal/atomicfile"
)

// stateVersion is the version of the state file's format.
const stateVersion = 1

type stateFile struct {
	Version int          `json:"version"`
	SavedAt time.Time    `json:"saved_at"`
	Alerts  []stateAlert `json:"alerts"`
	// Seen and History keep what absent groups and compare_to need across
	// restarts; files without them restore no such memory.
	Seen    []stateSeen    `json:"seen,omitempty"`
	History []stateHistory `json:"history,omitempty"`
}

type stateSeen struct {
	Rule   string            `json:"rule"`
	Labels map[string]string `json:"labels"`
	Last   time.Time         `json:"last"`
}

type stateHistory struct {
	Rule   string            `json:"rule"`
	Labels map[string]string `json:"labels"`
	At     []time.Time       `json:"at"`
	Values []float64         `json:"values"`
}

type stateAlert struct {
	Rule            string            `json:"rule"`
	Key             string            `json:"key"` // fingerprint of the by labels
	State           string            `json:"state"`
	Labels          map[string]string `json:"labels"`
	Annotations     map[string]string `json:"annotations,omitempty"`
	Value           float64           `json:"value"`
	ActiveAt        time.Time         `json:"active_at"`
	FiredAt         time.Time         `json:"fired_at"`
	LastTrueAt      time.Time         `json:"last_true_at"`
	ResolvedAt      time.Time         `json:"resolved_at"`
	LastSentAt      time.Time         `json:"last_sent_at"`
	KeepFiringSince time.Time         `json:"keep_firing_since"`
	ValidUntil      time.Time         `json:"valid_until"`
}

// SaveState writes the alerts' state to path atomically: a reader sees the
// previous file or the new one, never a torn one.
func (m *Manager) SaveState(path string) error {
	m.mu.Lock()
	sf := stateFile{Version: stateVersion, SavedAt: m.now()}
	for rule, as := range m.active {
		for key, a := range as {
			sf.Alerts = append(sf.Alerts, stateAlert{
				Rule: rule, Key: key, State: a.State.String(), Labels: a.Labels, Annotations: a.Annotations,
				Value: a.Value, ActiveAt: a.ActiveAt, FiredAt: a.FiredAt, LastTrueAt: a.LastTrueAt,
				ResolvedAt: a.ResolvedAt, LastSentAt: a.LastSentAt, KeepFiringSince: a.KeepFiringSince,
				ValidUntil: a.ValidUntil,
			})
		}
	}
	for rule, gs := range m.seen {
		for _, g := range gs {
			sf.Seen = append(sf.Seen, stateSeen{Rule: rule, Labels: g.labels, Last: g.last})
		}
	}
	for rule, hs := range m.hist {
		for fp, h := range hs {
			sf.History = append(sf.History, stateHistory{Rule: rule, Labels: m.histLabels[rule][fp], At: h.at, Values: h.v})
		}
	}
	data, err := json.MarshalIndent(sf, "", "  ")
	m.mu.Unlock()
	if err != nil {
		return fmt.Errorf("cannot encode alert state: %w", err)
	}
	return atomicfile.Write(path, data, 0o600)
}

// RestoreState loads alert state saved by SaveState. A missing file is not
// an error: there is nothing to restore. Alerts of rules that are no longer
// in the rule set are dropped; restored alerts keep their start and last
// sent times, so a restart neither notifies them again before their resend
// time nor forgets them.
func (m *Manager) RestoreState(path string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot read alert state: %w", err)
	}
	var sf stateFile
	if err := json.Unmarshal(data, &sf); err != nil {
		return fmt.Errorf("cannot decode alert state %s: %w", path, err)
	}
	if sf.Version != stateVersion {
		return fmt.Errorf("cannot restore alert state %s: version %d, want %d", path, sf.Version, stateVersion)
	}
	live := map[string]bool{}
	for _, r := range m.rules.Rules() {
		live[r.Name] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range sf.Alerts {
		if !live[s.Rule] {
			continue
		}
		var st State
		switch s.State {
		case "pending":
			st = StatePending
		case "firing":
			st = StateFiring
		case "resolved":
			st = StateResolved
		default:
			return fmt.Errorf("cannot restore alert state %s: rule %q: unknown state %q", path, s.Rule, s.State)
		}
		as := m.active[s.Rule]
		if as == nil {
			as = map[string]*Alert{}
			m.active[s.Rule] = as
		}
		as[s.Key] = &Alert{
			Rule: s.Rule, Labels: s.Labels, Annotations: s.Annotations, State: st, Value: s.Value,
			ActiveAt: s.ActiveAt, FiredAt: s.FiredAt, LastTrueAt: s.LastTrueAt, ResolvedAt: s.ResolvedAt,
			LastSentAt: s.LastSentAt, KeepFiringSince: s.KeepFiringSince, ValidUntil: s.ValidUntil,
		}
	}
	for _, s := range sf.Seen {
		if !live[s.Rule] {
			continue
		}
		if m.seen[s.Rule] == nil {
			m.seen[s.Rule] = map[string]seenGroup{}
		}
		m.seen[s.Rule][fingerprint(s.Labels)] = seenGroup{labels: s.Labels, last: s.Last}
	}
	for _, s := range sf.History {
		if !live[s.Rule] || len(s.At) != len(s.Values) {
			continue
		}
		fp := fingerprint(s.Labels)
		if m.hist[s.Rule] == nil {
			m.hist[s.Rule] = map[string]*history{}
			m.histLabels[s.Rule] = map[string]map[string]string{}
		}
		m.hist[s.Rule][fp] = &history{at: s.At, v: s.Values}
		m.histLabels[s.Rule][fp] = s.Labels
	}
	return nil
}
