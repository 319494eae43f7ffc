package alerting

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/schemas"
)

// WindowSource reads sliding windows; aggregator.Engine implements it.
// MergeKeys merges the digests of every matching key into one window, so
// its percentiles are those of the merged calls.
type WindowSource interface {
	MergeKeys(match func(aggregator.Key) bool, d time.Duration) aggregator.Window
	Windows(match func(aggregator.Key) bool, d time.Duration) []aggregator.Window
}

// NotifyFunc hands alerts that need sending to the notifiers. It must not
// block for long: senders queue.
type NotifyFunc func(ctx context.Context, alerts []Alert)

// State is where an alert is in its lifecycle.
type State int

// The alert states. Inactive alerts are not kept.
const (
	StateInactive State = iota
	StatePending
	StateFiring
	StateResolved
)

func (s State) String() string {
	switch s {
	case StatePending:
		return "pending"
	case StateFiring:
		return "firing"
	case StateResolved:
		return "resolved"
	}
	return "inactive"
}

// Alert is one alert of one rule and one group of keys. Labels hold
// alertname, the by labels and the rule's labels.
type Alert struct {
	Rule        string
	Labels      map[string]string
	Annotations map[string]string
	State       State
	Value       float64

	ActiveAt        time.Time // the condition first held
	FiredAt         time.Time
	LastTrueAt      time.Time // the condition last held
	ResolvedAt      time.Time
	LastSentAt      time.Time
	KeepFiringSince time.Time // the condition stopped holding while kept firing
	// ValidUntil is the EndsAt sent with a firing alert: if no update
	// arrives by then, the receiver resolves it on its own.
	ValidUntil time.Time
}

// EndsAt is the end time to send: ResolvedAt for a resolved alert, ValidUntil
// for a firing one.
func (a *Alert) EndsAt() time.Time {
	if a.State == StateResolved {
		return a.ResolvedAt
	}
	return a.ValidUntil
}

// Config configures a Manager.
type Config struct {
	// Interval is how often Run evaluates the rules.
	Interval time.Duration `yaml:"interval"`
	// ResendDelay is how often a firing or resolved alert is sent again.
	ResendDelay time.Duration `yaml:"resend_delay"`
	// ResolvedRetention is how long a resolved alert is still re-sent.
	ResolvedRetention time.Duration `yaml:"resolved_retention"`
	// StateFile, when set, is where Run saves alert state after each
	// evaluation and where NewManager's caller restores it from.
	StateFile string `yaml:"state_file"`
}

// DefaultConfig returns the defaults Prometheus uses.
func DefaultConfig() Config {
	return Config{Interval: 15 * time.Second, ResendDelay: time.Minute, ResolvedRetention: 15 * time.Minute}
}

// Validate reports every value that cannot work, each as a
// *schemas.FieldError.
func (c Config) Validate() error {
	var errs []error
	if c.Interval <= 0 {
		errs = append(errs, schemas.Fieldf("interval", "must be positive, got %s", c.Interval))
	}
	if c.ResendDelay <= 0 {
		errs = append(errs, schemas.Fieldf("resend_delay", "must be positive, got %s", c.ResendDelay))
	}
	if c.ResolvedRetention < 0 {
		errs = append(errs, schemas.Fieldf("resolved_retention", "must not be negative, got %s", c.ResolvedRetention))
	}
	return errors.Join(errs...)
}

// Manager evaluates the rules of a RuleSet against a WindowSource and keeps
// the alerts' lifecycle. Manager is safe for concurrent use.
type Manager struct {
	cfg    Config
	rules  *RuleSet
	src    WindowSource
	notify NotifyFunc
	now    func() time.Time
	log    *slog.Logger

	onChange NotifyFunc
	logs     *LogCounter
	res      *ResourceStore

	mu     sync.Mutex
	active map[string]map[string]*Alert // rule name → group fingerprint → alert
	// seen holds, per qps or calls rule, the groups that had calls and
	// when they last had, so that a group whose calls stop measures 0.
	seen map[string]map[string]seenGroup
	// hist holds, per compare_to rule and group, the values measured, to
	// compare a window with the same window compare_to earlier.
	hist       map[string]map[string]*history
	histLabels map[string]map[string]map[string]string // the labels of each history, for the state file
}

// absentRetention is how long a group that stopped sending calls still
// measures 0 for qps and calls rules; after it the group is forgotten and
// its alert resolves.
const absentRetention = 24 * time.Hour

type seenGroup struct {
	labels map[string]string
	last   time.Time
}

// history is one group's values at most one per step, oldest first.
type history struct {
	at []time.Time
	v  []float64
}

// historyPoints bounds a history: the step is CompareTo / historyPoints
// (at least the evaluation interval).
const historyPoints = 1440

func (h *history) add(now time.Time, v float64, step, keep time.Duration) {
	if n := len(h.at); n > 0 && now.Sub(h.at[n-1]) < step {
		return
	}
	h.at = append(h.at, now)
	h.v = append(h.v, v)
	i := 0
	for i < len(h.at) && now.Sub(h.at[i]) > keep {
		i++
	}
	h.at, h.v = h.at[i:], h.v[i:]
}

// at returns the value recorded nearest to t, if one is within tol.
func (h *history) value(t time.Time, tol time.Duration) (float64, bool) {
	i, _ := slices.BinarySearchFunc(h.at, t, func(a, b time.Time) int { return a.Compare(b) })
	best, ok := 0.0, false
	bestD := tol + 1
	for _, j := range []int{i - 1, i} {
		if j < 0 || j >= len(h.at) {
			continue
		}
		d := h.at[j].Sub(t)
		if d < 0 {
			d = -d
		}
		if d <= tol && d < bestD {
			best, ok, bestD = h.v[j], true, d
		}
	}
	return best, ok
}

// SetLogCounter makes the log measures read c. Without one, log rules see
// no lines. Call it before Run; c's rules are set by its owner
// (LogCounter.SetRules).
func (m *Manager) SetLogCounter(c *LogCounter) { m.logs = c }

// SetResourceStore makes the resource measures read s. Without one,
// resource rules see no containers. Call it before Run.
func (m *Manager) SetResourceStore(s *ResourceStore) { m.res = s }

// OnStateChange makes Tick hand f a copy of every alert whose state changed
// in the evaluation (pending, firing, resolved, and inactive for a pending
// alert whose condition stopped holding), in the order the changes happened.
// An alert that goes from inactive to firing in one evaluation (for: 0s) is
// handed twice, pending then firing. Call it before Run.
func (m *Manager) OnStateChange(f NotifyFunc) { m.onChange = f }

// NewManager returns a Manager. notify may be nil; now defaults to
// time.Now and log to a discarding logger.
func NewManager(cfg Config, rules *RuleSet, src WindowSource, notify NotifyFunc, now func() time.Time, log *slog.Logger) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("alerting: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{cfg: cfg, rules: rules, src: src, notify: notify, now: now, log: log,
		active: map[string]map[string]*Alert{}, seen: map[string]map[string]seenGroup{}, hist: map[string]map[string]*history{},
		histLabels: map[string]map[string]map[string]string{}}, nil
}

// Run evaluates the rules every Interval until ctx ends, sends what needs
// sending and saves the state after each evaluation.
func (m *Manager) Run(ctx context.Context) error {
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		m.Tick(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Tick evaluates once at m's now, saves the state file if one is
// configured, and then hands the state changes and what needs sending to
// their functions. Saving first means a process killed while it notifies
// restarts knowing the alerts it was notifying about: it keeps their start
// times and resolves them later, instead of starting them afresh and
// leaving the first ones firing at the receivers. The cost is that a kill
// in that window delays a notification to the next resend.
func (m *Manager) Tick(ctx context.Context) {
	send, changes := m.eval(m.now())
	if m.cfg.StateFile != "" {
		if err := m.SaveState(m.cfg.StateFile); err != nil {
			m.log.Warn("cannot save alert state", "path", m.cfg.StateFile, "err", err)
		}
	}
	if len(changes) > 0 && m.onChange != nil {
		m.onChange(ctx, changes)
	}
	if len(send) > 0 && m.notify != nil {
		m.notify(ctx, send)
	}
}

// Eval evaluates every rule at time now, advances the alerts' lifecycle and
// returns copies of the alerts that need sending now, marked as sent.
func (m *Manager) Eval(now time.Time) []Alert {
	send, _ := m.eval(now)
	return send
}

// eval is Eval that also returns the state changes, as OnStateChange
// describes.
func (m *Manager) eval(now time.Time) (send, changes []Alert) {
	rules := m.rules.Rules()
	m.mu.Lock()
	defer m.mu.Unlock()
	live := make(map[string]bool, len(rules))
	for _, r := range rules {
		live[r.Name] = true
		send = append(send, m.evalRule(r, now, &changes)...)
	}
	// Alerts of removed rules are dropped, as Prometheus does; a firing one
	// resolves at the receiver when its ValidUntil passes.
	for name := range m.active {
		if !live[name] {
			delete(m.active, name)
		}
	}
	for name := range m.seen {
		if !live[name] {
			delete(m.seen, name)
		}
	}
	for name := range m.hist {
		if !live[name] {
			delete(m.hist, name)
			delete(m.histLabels, name)
		}
	}
	return send, changes
}

// group is the merged window of the keys that share the rule's by labels.
type group struct {
	labels map[string]string
	stat   aggregator.Window
}

// evalGroup is one group's measured value; ok is false when the window
// holds no data. lines are a log group's first lines.
type evalGroup struct {
	labels map[string]string
	value  float64
	ok     bool
	lines  []string
}

// evalGroups measures every group of r.
func (m *Manager) evalGroups(r *Rule, now time.Time) []evalGroup {
	if r.Measure.isLog() {
		if m.logs == nil {
			return nil
		}
		gs := m.logs.groups(r, now)
		out := make([]evalGroup, len(gs))
		for i, g := range gs {
			out[i] = evalGroup{labels: g.labels, value: float64(g.n) / r.Window.Seconds(), ok: g.n > 0, lines: g.lines}
		}
		return out
	}
	if r.Measure.isResource() {
		if m.res == nil {
			return nil
		}
		return m.res.groups(r)
	}
	gs := r.groups(m.src)
	out := make([]evalGroup, len(gs))
	for i, g := range gs {
		v, ok := r.value(g.stat)
		out[i] = evalGroup{labels: g.labels, value: v, ok: ok}
	}
	if r.Measure == QPS || r.Measure == Calls {
		out = m.withAbsent(r, out, now)
	}
	if r.CompareTo > 0 {
		m.compare(r, out, now)
	}
	return out
}

// withAbsent adds the groups of r that had calls within absentRetention
// but have none in the window now, measuring 0, and remembers the groups
// that have calls.
func (m *Manager) withAbsent(r *Rule, gs []evalGroup, now time.Time) []evalGroup {
	seen := m.seen[r.Name]
	if seen == nil {
		seen = map[string]seenGroup{}
		m.seen[r.Name] = seen
	}
	present := make(map[string]bool, len(gs))
	for _, g := range gs {
		if g.ok {
			fp := fingerprint(g.labels)
			present[fp] = true
			seen[fp] = seenGroup{labels: g.labels, last: now}
		}
	}
	for fp, sg := range seen {
		switch {
		case present[fp]:
		case now.Sub(sg.last) > absentRetention:
			delete(seen, fp)
		default:
			gs = append(gs, evalGroup{labels: maps.Clone(sg.labels), value: 0, ok: true})
		}
	}
	return gs
}

// compare records each group's value and replaces it with its ratio to the
// value of the same window r.CompareTo earlier; a group without an earlier
// value, or an earlier value of 0, is not measured.
func (m *Manager) compare(r *Rule, gs []evalGroup, now time.Time) {
	hs := m.hist[r.Name]
	if hs == nil {
		hs = map[string]*history{}
		m.hist[r.Name] = hs
		m.histLabels[r.Name] = map[string]map[string]string{}
	}
	hl := m.histLabels[r.Name]
	step := max(m.cfg.Interval, r.CompareTo/historyPoints)
	live := make(map[string]bool, len(gs))
	for i := range gs {
		g := &gs[i]
		if !g.ok {
			continue
		}
		fp := fingerprint(g.labels)
		live[fp] = true
		h := hs[fp]
		if h == nil {
			h = &history{}
			hs[fp] = h
			hl[fp] = maps.Clone(g.labels)
		}
		past, ok := h.value(now.Add(-r.CompareTo), step)
		h.add(now, g.value, step, r.CompareTo+step)
		if !ok || past == 0 {
			g.ok = false
			continue
		}
		g.value /= past
	}
	for fp, h := range hs {
		if !live[fp] && len(h.at) > 0 && now.Sub(h.at[len(h.at)-1]) > r.CompareTo+step {
			delete(hs, fp)
			delete(hl, fp)
		}
	}
}

func labelOf(k aggregator.Key, name string) string {
	if v, ok := schemas.KeyLabelValue(name, k.System, k.App, k.Group, k.IDC, k.Method); ok {
		return v
	}
	panic("BUG: unknown label " + name)
}

func (r *Rule) matches(k aggregator.Key) bool {
	return r.matchesBy(func(name string) string { return labelOf(k, name) })
}

// matchesBy reports whether every matcher of r matches the value label
// gives its label: a call key's, a log line's or a container metric's.
func (r *Rule) matchesBy(label func(string) string) bool {
	for _, mt := range r.Matchers {
		if !mt.Matches(label(mt.Label)) {
			return false
		}
	}
	return true
}

// groups reads the rule's windows, one per distinct value of its by labels.
// A group of several keys is read with one MergeKeys, which merges the keys'
// digests; percentiles are never averaged.
func (r *Rule) groups(src WindowSource) []group {
	kws := src.Windows(r.matches, r.Window)
	if r.perKey() {
		out := make([]group, len(kws))
		for i, kw := range kws {
			out[i] = group{labels: r.byLabels(kw.Key), stat: kw}
		}
		return out
	}
	type member struct {
		labels map[string]string
		n      int
		stat   aggregator.Window
	}
	byFP := map[string]*member{}
	var order []string
	for _, kw := range kws {
		ls := r.byLabels(kw.Key)
		fp := fingerprint(ls)
		g := byFP[fp]
		if g == nil {
			g = &member{labels: ls}
			byFP[fp] = g
			order = append(order, fp)
		}
		g.n++
		g.stat = kw
	}
	out := make([]group, 0, len(order))
	for _, fp := range order {
		g := byFP[fp]
		if g.n > 1 {
			want := g.labels
			g.stat = src.MergeKeys(func(k aggregator.Key) bool {
				if !r.matches(k) {
					return false
				}
				for _, l := range r.By {
					if labelOf(k, l) != want[l] {
						return false
					}
				}
				return true
			}, r.Window)
		}
		out = append(out, group{labels: g.labels, stat: g.stat})
	}
	return out
}

func (r *Rule) byLabels(k aggregator.Key) map[string]string {
	ls := make(map[string]string, len(r.By))
	for _, l := range r.By {
		ls[l] = labelOf(k, l)
	}
	return ls
}

// value is the rule's measure of ws in the measure's unit; ok is false when
// the window holds no calls.
func (r *Rule) value(ws aggregator.Window) (v float64, ok bool) {
	if ws.Count == 0 {
		return 0, false
	}
	const usPerMs = 1000
	switch r.Measure {
	case TP50:
		return ws.P50 / usPerMs, true
	case TP90:
		return ws.P90 / usPerMs, true
	case TP99:
		return ws.P99 / usPerMs, true
	case TP999:
		return ws.P999 / usPerMs, true
	case AvgLatency:
		return ws.AvgUs / usPerMs, true
	case QPS:
		return ws.QPS, true
	case ErrorRate:
		return ws.ErrorRate, true
	case Calls:
		return float64(ws.Count), true
	}
	panic("BUG: unknown measure " + string(r.Measure))
}

// fingerprint identifies a label set.
func fingerprint(ls map[string]string) string {
	keys := slices.Sorted(maps.Keys(ls))
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(ls[k])
		b.WriteByte(0)
	}
	return b.String()
}

func (m *Manager) evalRule(r *Rule, now time.Time, changes *[]Alert) []Alert {
	alerts := m.active[r.Name]
	if alerts == nil {
		alerts = map[string]*Alert{}
		m.active[r.Name] = alerts
	}
	holding := map[string]bool{}
	for _, g := range m.evalGroups(r, now) {
		v, ok := g.value, g.ok
		if !ok || !r.Op.compare(v, r.Threshold) {
			continue
		}
		fp := fingerprint(g.labels)
		holding[fp] = true
		a := alerts[fp]
		created := a == nil || a.State == StateResolved
		if created {
			a = &Alert{Rule: r.Name, State: StatePending, ActiveAt: now}
			alerts[fp] = a
		}
		a.Value = v
		a.LastTrueAt = now
		a.KeepFiringSince = time.Time{}
		m.render(r, a, g.labels)
		if len(g.lines) > 0 {
			if _, set := a.Annotations["lines"]; !set {
				a.Annotations["lines"] = strings.Join(g.lines, "\n")
			}
		}
		if created {
			*changes = append(*changes, a.copy())
		}
		if a.State == StatePending && now.Sub(a.ActiveAt) >= r.For {
			a.State = StateFiring
			a.FiredAt = now
			*changes = append(*changes, a.copy())
		}
	}
	var send []Alert
	for fp, a := range alerts {
		if !holding[fp] {
			switch a.State {
			case StatePending:
				delete(alerts, fp)
				gone := a.copy()
				gone.State = StateInactive
				*changes = append(*changes, gone)
				continue
			case StateFiring:
				// As in Prometheus, keep_firing_for counts from the first
				// evaluation at which the condition no longer held.
				if a.KeepFiringSince.IsZero() {
					a.KeepFiringSince = now
				}
				if now.Sub(a.KeepFiringSince) >= r.KeepFiringFor {
					a.State = StateResolved
					a.ResolvedAt = now
					*changes = append(*changes, a.copy())
				}
			case StateResolved:
				if now.Sub(a.ResolvedAt) > m.cfg.ResolvedRetention {
					delete(alerts, fp)
					continue
				}
			}
		}
		if a.State == StateFiring {
			a.ValidUntil = now.Add(4 * max(m.cfg.Interval, m.cfg.ResendDelay))
		}
		if m.needsSending(a, now) {
			a.LastSentAt = now
			send = append(send, a.copy())
		}
	}
	return send
}

func (m *Manager) needsSending(a *Alert, now time.Time) bool {
	switch a.State {
	case StatePending, StateInactive:
		return false
	case StateResolved:
		if a.ResolvedAt.After(a.LastSentAt) {
			return true
		}
	case StateFiring:
		if a.LastSentAt.Before(a.FiredAt) {
			return true
		}
	}
	return !a.LastSentAt.Add(m.cfg.ResendDelay).After(now)
}

// render sets a's labels and annotations from the rule's templates; the
// templates see the by labels and a's value.
func (m *Manager) render(r *Rule, a *Alert, byLabels map[string]string) {
	ls := maps.Clone(byLabels)
	maps.Copy(ls, expand(r.labelTmpl, byLabels, a.Value))
	ls["alertname"] = r.Name
	a.Labels = ls
	a.Annotations = expand(r.annTmpl, ls, a.Value)
}

func (a *Alert) copy() Alert {
	c := *a
	c.Labels = maps.Clone(a.Labels)
	c.Annotations = maps.Clone(a.Annotations)
	return c
}

// Alerts returns copies of every pending, firing and resolved alert,
// ordered by rule and labels.
func (m *Manager) Alerts() []Alert {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Alert
	for _, as := range m.active {
		for _, a := range as {
			out = append(out, a.copy())
		}
	}
	slices.SortFunc(out, func(a, b Alert) int {
		if c := strings.Compare(a.Rule, b.Rule); c != 0 {
			return c
		}
		return strings.Compare(fingerprint(a.Labels), fingerprint(b.Labels))
	})
	return out
}
