package alerting

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/tpflow/tpflow/schemas"
)

// LogLine is one log line as the log measures see it.
type LogLine struct {
	Time                                             time.Time
	System, App, Group, IDC, Host, Container, Stream string
	Level, Message                                   string
}

func (l *LogLine) label(name string) string {
	if v, ok := schemas.KeyLabelValue(name, l.System, l.App, l.Group, l.IDC); ok {
		return v
	}
	switch name {
	case schemas.LabelHost:
		return l.Host
	case schemas.LabelContainer:
		return l.Container
	case "stream":
		return l.Stream
	case "level":
		return l.Level
	}
	panic("BUG: unknown log label " + name)
}

// KernelStream is the stream of kernel log lines.
const KernelStream = "kmsg"

// appErrorLevels are the levels app_error_rate counts, compared without
// regard to case.
var appErrorLevels = []string{"ERROR", "FATAL", "CRITICAL"}

// LogCounterConfig bounds a LogCounter.
type LogCounterConfig struct {
	// MaxGroups bounds the label sets counted per rule; lines of further
	// groups are dropped and counted.
	MaxGroups int
	// Samples is how many lines of a group each bucket keeps for the
	// alert's lines annotation, and SampleBytes the most bytes of each.
	Samples     int
	SampleBytes int
}

// DefaultLogCounterConfig returns 10000 groups per rule and 5 lines of at
// most 240 bytes.
func DefaultLogCounterConfig() LogCounterConfig {
	return LogCounterConfig{MaxGroups: 10000, Samples: 5, SampleBytes: 240}
}

// LogCounter counts, per log rule and group of its by labels, the lines
// that match the rule in one-second buckets of event time, and keeps the
// first lines of each bucket. Lines older than the rule's window are not
// counted. Memory is bounded by MaxGroups per rule and by the buckets of
// one window. LogCounter is safe for concurrent use.
type LogCounter struct {
	cfg      LogCounterConfig
	classify func(msg string) []string

	mu      sync.Mutex
	rules   map[string]*logRule
	late    uint64
	dropped uint64
}

type logRule struct {
	rule   *Rule
	sig    string
	groups map[string]*logGroup
}

type logGroup struct {
	labels  map[string]string
	buckets []logBucket // ordered by start
}

// logBucket is one second of a group's lines.
type logBucket struct {
	start   int64 // Unix seconds
	n       uint64
	samples []string
}

// NewLogCounter returns a counter. classify returns the kernel error
// classes of a kernel message (the node collector's filter); nil counts no
// kernel errors.
func NewLogCounter(cfg LogCounterConfig, classify func(msg string) []string) *LogCounter {
	if classify == nil {
		classify = func(string) []string { return nil }
	}
	return &LogCounter{cfg: cfg, classify: classify, rules: map[string]*logRule{}}
}

// signature identifies what a rule counts: a rule whose signature is
// unchanged by a reload keeps its counts.
func signature(r *Rule) string {
	var b strings.Builder
	b.WriteString(string(r.Measure))
	b.WriteByte(0)
	if r.Pattern != nil {
		b.WriteString(r.Pattern.String())
	}
	b.WriteByte(0)
	b.WriteString(strings.Join(r.Classes, ","))
	b.WriteByte(0)
	b.WriteString(strings.Join(r.By, ","))
	for _, m := range r.Matchers {
		b.WriteByte(0)
		b.WriteString(m.Label)
		b.WriteByte(byte('0' + m.Type))
		b.WriteString(m.Value)
	}
	b.WriteByte(0)
	b.WriteString(r.Window.String())
	return b.String()
}

// SetRules makes the log rules among rules the ones counted. A rule that
// counts what it counted before keeps its counts.
func (c *LogCounter) SetRules(rules []*Rule) {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := map[string]*logRule{}
	for _, r := range rules {
		if !r.Measure.isLog() {
			continue
		}
		sig := signature(r)
		if old := c.rules[r.Name]; old != nil && old.sig == sig {
			old.rule = r
			next[r.Name] = old
			continue
		}
		next[r.Name] = &logRule{rule: r, sig: sig, groups: map[string]*logGroup{}}
	}
	c.rules = next
}

// HasRules reports whether any log rule is counted.
func (c *LogCounter) HasRules() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.rules) > 0
}

// Late is the number of lines older than every window when they arrived;
// Dropped the number of lines not counted because a rule had MaxGroups
// groups.
func (c *LogCounter) Late() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.late
}

// Dropped is the number of lines not counted because a rule had MaxGroups
// groups.
func (c *LogCounter) Dropped() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dropped
}

// Add counts l for every rule it matches, as of now. Add does not retain l.
func (c *LogCounter) Add(l *LogLine, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var classes []string
	classified := false
	counted := false
	for _, lr := range c.rules {
		r := lr.rule
		if l.Time.Before(now.Add(-r.Window)) {
			continue
		}
		if !r.matchesBy(l.label) {
			continue
		}
		switch r.Measure {
		case LogPatternRate:
			if r.Pattern.MatchString(l.Message) {
				c.count(lr, l, "")
				counted = true
			}
		case AppErrorRate:
			if l.Stream != KernelStream && slices.ContainsFunc(appErrorLevels, func(s string) bool { return strings.EqualFold(s, l.Level) }) {
				c.count(lr, l, "")
				counted = true
			}
		case KernelErrorRate:
			if l.Stream != KernelStream {
				continue
			}
			if !classified {
				classes, classified = c.classify(l.Message), true
			}
			for _, cl := range classes {
				if slices.Contains(r.Classes, cl) {
					c.count(lr, l, cl)
					counted = true
				}
			}
		}
	}
	if !counted && len(c.rules) > 0 && l.Time.Before(now.Add(-c.maxWindow())) {
		c.late++
	}
}

func (c *LogCounter) maxWindow() time.Duration {
	var w time.Duration
	for _, lr := range c.rules {
		w = max(w, lr.rule.Window)
	}
	return w
}

// count adds l to its group of lr; class, when set, is a label of the group.
func (c *LogCounter) count(lr *logRule, l *LogLine, class string) {
	var kb strings.Builder
	for _, name := range lr.rule.By {
		kb.WriteString(l.label(name))
		kb.WriteByte(0)
	}
	kb.WriteString(class)
	key := kb.String()
	g := lr.groups[key]
	if g == nil {
		if len(lr.groups) >= c.cfg.MaxGroups {
			c.dropped++
			return
		}
		ls := make(map[string]string, len(lr.rule.By)+1)
		for _, name := range lr.rule.By {
			ls[name] = l.label(name)
		}
		if class != "" {
			ls["class"] = class
		}
		g = &logGroup{labels: ls}
		lr.groups[key] = g
	}
	start := l.Time.Unix()
	i := len(g.buckets)
	for i > 0 && g.buckets[i-1].start > start {
		i--
	}
	if i == 0 || g.buckets[i-1].start != start {
		g.buckets = slices.Insert(g.buckets, i, logBucket{start: start})
		i++
	}
	b := &g.buckets[i-1]
	b.n++
	if len(b.samples) < c.cfg.Samples {
		b.samples = append(b.samples, clip(l.Message, c.cfg.SampleBytes))
	}
}

// clip cuts s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// logGroupStat is one group's count over a rule's window.
type logGroupStat struct {
	labels map[string]string
	n      uint64
	lines  []string
}

// groups returns the groups of rule name with lines in the window ending
// at now, and forgets buckets and groups older than the window.
func (c *LogCounter) groups(r *Rule, now time.Time) []logGroupStat {
	c.mu.Lock()
	defer c.mu.Unlock()
	lr := c.rules[r.Name]
	if lr == nil {
		return nil
	}
	from := now.Add(-r.Window).Unix()
	var out []logGroupStat
	for key, g := range lr.groups {
		i := 0
		for i < len(g.buckets) && g.buckets[i].start < from {
			i++
		}
		g.buckets = g.buckets[i:]
		if len(g.buckets) == 0 {
			delete(lr.groups, key)
			continue
		}
		st := logGroupStat{labels: maps.Clone(g.labels)}
		for _, b := range g.buckets {
			st.n += b.n
			for _, s := range b.samples {
				if len(st.lines) < c.cfg.Samples {
					st.lines = append(st.lines, s)
				}
			}
		}
		out = append(out, st)
	}
	return out
}
