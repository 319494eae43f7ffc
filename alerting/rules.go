// Package alerting evaluates alert rules over the aggregator's sliding
// windows and keeps each alert's Prometheus-style lifecycle (inactive →
// pending → firing → resolved). Rules come from YAML files; the windows come
// through WindowSource; notifications leave through a NotifyFunc.
package alerting

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"time"

	"github.com/tpflow/tpflow/internal/config"

	"github.com/tpflow/tpflow/schemas"
)

// Measure names what a rule compares with its threshold.
type Measure string

// The supported measures. Latency measures are compared and reported in
// milliseconds, qps in calls per second and error_rate as a ratio in [0, 1].
const (
	TP50       Measure = "tp50"
	TP90       Measure = "tp90"
	TP99       Measure = "tp99"
	TP999      Measure = "tp999"
	QPS        Measure = "qps"
	ErrorRate  Measure = "error_rate"
	AvgLatency Measure = "avg_latency"
	// Calls is the number of calls in the window; with qps, a group seen
	// before that has no calls now measures 0 (see DESIGN.md), so
	// "calls == 0" is an absent-data rule.
	Calls Measure = "calls"
)

// The log measures count matching log lines (LogCounter) and are reported
// in lines per second over the window: log_pattern_rate the lines whose
// message matches the rule's pattern, kernel_error_rate the kernel lines
// (stream kmsg) of the rule's classes, one alert per class and group, and
// app_error_rate the application lines (any stream but kmsg) at level
// ERROR, FATAL or CRITICAL.
const (
	LogPatternRate  Measure = "log_pattern_rate"
	KernelErrorRate Measure = "kernel_error_rate"
	AppErrorRate    Measure = "app_error_rate"
)

var supportedMeasures = []Measure{TP50, TP90, TP99, TP999, QPS, ErrorRate, AvgLatency, Calls,
	LogPatternRate, KernelErrorRate, AppErrorRate, CPUUsage, CPUUtilization, MemoryUsage, MemoryUtilization}

// unsupportedMeasures are planned measures over resource data that the
// evaluator cannot read yet.
var unsupportedMeasures = []string{"disk_io", "network_io"}

// KernelClasses are the kernel error classes a kernel_error_rate rule may
// name, as the node collector's kernel error filter tags them.
var KernelClasses = []string{"crc", "io", "ext4", "memory"}

// isLog reports whether m counts log lines.
func (m Measure) isLog() bool {
	switch m {
	case LogPatternRate, KernelErrorRate, AppErrorRate:
		return true
	}
	return false
}

// labelNames are the labels a rule of measure m may select and group by.
func (m Measure) labelNames() []string {
	switch {
	case m.isLog():
		return LogLabelNames
	case m.isResource():
		return ResourceLabelNames
	}
	return LabelNames
}

// defaultBy is the by clause of a rule of measure m that gives none.
func (m Measure) defaultBy() []string {
	switch m {
	case KernelErrorRate:
		return []string{"host"}
	case LogPatternRate, AppErrorRate:
		return schemas.KeyLabelNames(2)
	case CPUUsage, CPUUtilization, MemoryUsage, MemoryUtilization:
		return ResourceLabelNames
	}
	return LabelNames
}

// isLatency reports whether m is a latency measure (milliseconds).
func (m Measure) isLatency() bool {
	switch m {
	case TP50, TP90, TP99, TP999, AvgLatency:
		return true
	}
	return false
}

// LabelNames are the labels a selector and a by clause of a call measure
// may name, from the coarsest to the finest level.
var LabelNames = schemas.KeyLabelNames(-1)

// LogLabelNames are the labels a selector and a by clause of a log measure
// may name.
var LogLabelNames = append(schemas.KeyLabelNames(4), schemas.LabelHost, schemas.LabelContainer, "stream", "level")

// Op is a comparison between a measure's value and a rule's threshold.
type Op string

var ops = []Op{">", ">=", "<", "<=", "==", "!="}

func (o Op) compare(v, threshold float64) bool {
	switch o {
	case ">":
		return v > threshold
	case ">=":
		return v >= threshold
	case "<":
		return v < threshold
	case "<=":
		return v <= threshold
	case "==":
		return v == threshold
	case "!=":
		return v != threshold
	}
	panic("BUG: unknown op " + string(o))
}

// MatchType is how a Matcher compares a label value.
type MatchType int

// The matcher types, written in a selector value as a prefix: none or "=" for
// MatchEqual, "!=", "=~" and "!~". Regular expressions are anchored.
const (
	MatchEqual MatchType = iota
	MatchNotEqual
	MatchRegexp
	MatchNotRegexp
)

// Matcher is one label condition of a selector.
type Matcher struct {
	Label string
	Type  MatchType
	Value string
	re    *regexp.Regexp
}

// Matches reports whether the label value v satisfies m.
func (m *Matcher) Matches(v string) bool {
	switch m.Type {
	case MatchEqual:
		return v == m.Value
	case MatchNotEqual:
		return v != m.Value
	case MatchRegexp:
		return m.re.MatchString(v)
	case MatchNotRegexp:
		return !m.re.MatchString(v)
	}
	panic("BUG: unknown matcher type")
}

func parseMatcher(label, s string) (*Matcher, error) {
	m := &Matcher{Label: label}
	switch {
	case strings.HasPrefix(s, "=~"):
		m.Type, m.Value = MatchRegexp, s[2:]
	case strings.HasPrefix(s, "!~"):
		m.Type, m.Value = MatchNotRegexp, s[2:]
	case strings.HasPrefix(s, "!="):
		m.Type, m.Value = MatchNotEqual, s[2:]
	case strings.HasPrefix(s, "="):
		m.Type, m.Value = MatchEqual, s[1:]
	default:
		m.Type, m.Value = MatchEqual, s
	}
	if m.Type == MatchRegexp || m.Type == MatchNotRegexp {
		re, err := regexp.Compile("^(?:" + m.Value + ")$")
		if err != nil {
			return nil, fmt.Errorf("bad regular expression %q: %w", m.Value, err)
		}
		m.re = re
	}
	return m, nil
}

// Rule is one validated alert rule.
type Rule struct {
	Name          string
	Matchers      []*Matcher
	Measure       Measure
	Window        time.Duration
	Op            Op
	Threshold     float64 // in the measure's unit (ms for latency)
	For           time.Duration
	KeepFiringFor time.Duration
	// By lists the labels an alert is evaluated per, in LabelNames order;
	// keys that agree on them are merged (digests, never averaged
	// percentiles). All five labels, the default, evaluate every key alone.
	By          []string
	Labels      map[string]string
	Annotations map[string]string
	// Pattern is the regular expression of a log_pattern_rate rule,
	// unanchored, matched against each line's message.
	Pattern *regexp.Regexp
	// Classes are the kernel error classes of a kernel_error_rate rule.
	Classes []string
	// CompareTo, when set, makes the measured value the ratio of the
	// window's value to the value of the same window CompareTo earlier
	// (e.g. 24h or 168h), and Threshold a ratio.
	CompareTo time.Duration

	File string // where the rule was loaded from
	Line int

	labelTmpl, annTmpl map[string]*template.Template
}

// perKey reports whether the rule is evaluated per aggregator key.
func (r *Rule) perKey() bool {
	return !r.Measure.isLog() && !r.Measure.isResource() && len(r.By) == len(LabelNames)
}

// ValidationError is one problem with one field of a rules file.
type ValidationError struct {
	File         string
	Line, Column int
	Rule         string // empty for file-level problems
	Field        string
	Msg          string
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:%d", e.File, e.Line)
	if e.Column > 0 {
		fmt.Fprintf(&b, ":%d", e.Column)
	}
	b.WriteString(": ")
	if e.Rule != "" {
		fmt.Fprintf(&b, "rule %q: ", e.Rule)
	}
	if e.Field != "" {
		fmt.Fprintf(&b, "field %q: ", e.Field)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrInvalidRules is wrapped by every error ParseRules returns for a file
// that does not validate.
var ErrInvalidRules = errors.New("invalid alert rules")

type invalidRules struct{ errs []error }

func (e *invalidRules) Error() string {
	msgs := make([]string, len(e.errs))
	for i, err := range e.errs {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "\n")
}

func (e *invalidRules) Unwrap() []error { return append([]error{ErrInvalidRules}, e.errs...) }

// LoadFile reads and validates one rules file.
func LoadFile(path string) ([]*Rule, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read rules file: %w", err)
	}
	return ParseRules(path, data)
}

// ruleFile is a rules file as written: a mapping with one key, rules.
type ruleFile struct {
	Rules []ruleSpec `yaml:"rules"`
}

// ruleSpec is one rule as written. Durations and the threshold stay text
// until the measure says how to read them; a nil pointer is a key the
// rule does not have.
type ruleSpec struct {
	Name          *string           `yaml:"name"`
	Selector      map[string]string `yaml:"selector"`
	Measure       *string           `yaml:"measure"`
	Pattern       *string           `yaml:"pattern"`
	Classes       *config.Strings   `yaml:"classes"`
	CompareTo     *string           `yaml:"compare_to"`
	Window        *string           `yaml:"window"`
	Op            *string           `yaml:"op"`
	Threshold     *string           `yaml:"threshold"`
	For           *string           `yaml:"for"`
	KeepFiringFor *string           `yaml:"keep_firing_for"`
	By            *config.Strings   `yaml:"by"`
	Labels        map[string]string `yaml:"labels"`
	Annotations   map[string]string `yaml:"annotations"`
}

const ruleKeys = "name, selector, measure, pattern, classes, compare_to, window, op, threshold, for, keep_firing_for, by, labels, annotations"

// ParseRules validates the rules file data; file names it in errors. A file
// is a mapping with one key, rules, holding a list of rules. Every problem
// found is reported, each with its file, line, column and field.
func ParseRules(file string, data []byte) ([]*Rule, error) {
	var f ruleFile
	src, err := config.Decode(file, data, &f)
	if err != nil {
		return nil, &invalidRules{issueErrors(file, err, nil)}
	}
	p := &parser{file: file, src: src}
	// A rule with a key that did not decode is reported with that key
	// only: its other checks would guess.
	broken := map[int]bool{}
	for _, is := range src.Issues() {
		if i, ok := ruleIndex(is.Path); ok {
			broken[i] = true
		}
	}
	p.errs = issueErrors(file, src.Report(nil), f.Rules)
	var rules []*Rule
	seen := map[string]int{}
	for i, spec := range f.Rules {
		if broken[i] {
			continue
		}
		r := p.rule(i, spec)
		if r == nil {
			continue
		}
		if line, dup := seen[r.Name]; dup {
			p.errorf(i, "", "name", "duplicate rule name (first defined on line %d)", line)
			continue
		}
		seen[r.Name] = r.Line
		rules = append(rules, r)
	}
	if len(p.errs) > 0 {
		sortByPosition(p.errs)
		return nil, &invalidRules{p.errs}
	}
	return rules, nil
}

// ruleIndex returns i of a path under "rules[i]".
func ruleIndex(path string) (int, bool) {
	rest, ok := strings.CutPrefix(path, "rules[")
	if !ok {
		return 0, false
	}
	n, _, ok := strings.Cut(rest, "]")
	i, err := strconv.Atoi(n)
	return i, ok && err == nil
}

// issueErrors words the loader's issues as ValidationErrors: the rule by
// its name, the field relative to the rule.
func issueErrors(file string, err error, specs []ruleSpec) []error {
	var ce *config.Error
	if !errors.As(err, &ce) {
		if err == nil {
			return nil
		}
		return []error{&ValidationError{File: file, Msg: err.Error()}}
	}
	var out []error
	for _, is := range ce.Issues {
		e := &ValidationError{File: file, Line: is.Line, Column: is.Column, Field: is.Path, Msg: is.Msg}
		known := "rules"
		if i, ok := ruleIndex(is.Path); ok {
			e.Field = strings.TrimPrefix(strings.TrimPrefix(is.Path, fmt.Sprintf("rules[%d]", i)), ".")
			if i < len(specs) && specs[i].Name != nil {
				e.Rule = *specs[i].Name
			}
			known = ruleKeys
		}
		if is.Key != "" && strings.HasPrefix(is.Msg, "unknown key") {
			e.Field = is.Key
			e.Msg = "unknown key"
			if s := config.Suggest(is.Key, strings.Split(known, ", ")); s != "" {
				e.Msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			e.Msg += " (known: " + known + ")"
		}
		out = append(out, e)
	}
	return out
}

func sortByPosition(errs []error) {
	pos := func(e error) (int, int) {
		var ve *ValidationError
		if errors.As(e, &ve) {
			return ve.Line, ve.Column
		}
		return 0, 0
	}
	slices.SortStableFunc(errs, func(a, b error) int {
		la, ca := pos(a)
		lb, cb := pos(b)
		if la != lb {
			return la - lb
		}
		return ca - cb
	})
}

type parser struct {
	file string
	src  *config.Source
	errs []error
	name string // of the rule being read
}

// errorf records a problem with the key at path of rule i (the rule itself
// for an empty path), shown as field.
func (p *parser) errorf(i int, path, field, format string, args ...any) {
	at := fmt.Sprintf("rules[%d]", i)
	if path != "" {
		at += "." + path
	}
	line, col := p.src.Position(at)
	p.errs = append(p.errs, &ValidationError{File: p.file, Line: line, Column: col, Rule: p.name, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// rule validates rule i; it returns nil when the rule is invalid.
func (p *parser) rule(i int, s ruleSpec) *Rule {
	before := len(p.errs)
	line, _ := p.src.Position(fmt.Sprintf("rules[%d]", i))
	r := &Rule{File: p.file, Line: line}
	p.name = ""
	if s.Name != nil {
		r.Name, p.name = *s.Name, *s.Name
		if r.Name == "" {
			p.errorf(i, "name", "name", "must be a non-empty string")
		}
	} else {
		p.errorf(i, "", "name", "required")
	}
	// The measure decides which labels and fields the rule may use.
	if s.Measure != nil {
		p.measure(i, *s.Measure, r)
	} else {
		p.errorf(i, "", "measure", "required")
	}
	r.By = r.Measure.defaultBy()
	if s.Selector != nil {
		r.Matchers = p.selector(i, s.Selector, r.Measure.labelNames())
	}
	if s.Pattern != nil {
		if r.Measure != LogPatternRate {
			p.errorf(i, "pattern", "pattern", "only a log_pattern_rate rule has a pattern")
		} else if re, err := regexp.Compile(*s.Pattern); err != nil || *s.Pattern == "" {
			p.errorf(i, "pattern", "pattern", "bad regular expression %q: %v", *s.Pattern, err)
		} else {
			r.Pattern = re
		}
	} else if r.Measure == LogPatternRate {
		p.errorf(i, "", "pattern", "required for log_pattern_rate: a regular expression over the log message")
	}
	if s.CompareTo != nil {
		if r.Measure.isLog() || r.Measure.isResource() {
			p.errorf(i, "compare_to", "compare_to", "only call measures can be compared with an earlier window")
		} else if d, ok := p.duration(i, "compare_to", *s.CompareTo); ok && d <= 0 {
			p.errorf(i, "compare_to", "compare_to", "must be positive, e.g. 24h or 168h")
		} else {
			r.CompareTo = d
		}
	}
	if s.Classes != nil {
		if r.Measure != KernelErrorRate {
			p.errorf(i, "classes", "classes", "only a kernel_error_rate rule has classes")
		} else {
			r.Classes = p.classes(i, *s.Classes)
		}
	}
	if r.Measure == KernelErrorRate && r.Classes == nil {
		r.Classes = KernelClasses
	}
	switch {
	case s.Window != nil:
		if d, ok := p.duration(i, "window", *s.Window); ok && d <= 0 {
			p.errorf(i, "window", "window", "must be positive")
		} else {
			r.Window = d
		}
	case s.For != nil:
		p.errorf(i, "for", "for", "needs a window: set \"window\" to the length of the window the measure is computed over")
	default:
		p.errorf(i, "", "window", "required")
	}
	if s.Op != nil {
		if !slices.Contains(ops, Op(*s.Op)) {
			p.errorf(i, "op", "op", "unknown comparison %q (known: > >= < <= == !=)", *s.Op)
		} else {
			r.Op = Op(*s.Op)
		}
	} else {
		p.errorf(i, "", "op", "required")
	}
	if s.For != nil {
		r.For, _ = p.duration(i, "for", *s.For)
	}
	if s.KeepFiringFor != nil {
		r.KeepFiringFor, _ = p.duration(i, "keep_firing_for", *s.KeepFiringFor)
	}
	if s.By != nil {
		r.By = p.by(i, *s.By, r.Measure.labelNames())
	}
	if s.Labels != nil {
		r.Labels, r.labelTmpl = p.templates(i, s.Labels, "labels")
	}
	if s.Annotations != nil {
		r.Annotations, r.annTmpl = p.templates(i, s.Annotations, "annotations")
	}
	switch {
	case s.Threshold == nil:
		p.errorf(i, "", "threshold", "required")
	case r.CompareTo > 0:
		r.Threshold = p.threshold(i, *s.Threshold, QPS) // a ratio
	default:
		r.Threshold = p.threshold(i, *s.Threshold, r.Measure)
	}
	if len(p.errs) > before {
		return nil
	}
	return r
}

func (p *parser) selector(i int, sel map[string]string, labels []string) []*Matcher {
	var ms []*Matcher
	keys := make([]string, 0, len(sel))
	for k := range sel {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		field := "selector." + k
		if !slices.Contains(labels, k) {
			p.errorf(i, field, field, "unknown label (known: %s)", strings.Join(labels, ", "))
			continue
		}
		m, err := parseMatcher(k, sel[k])
		if err != nil {
			p.errorf(i, field, field, "%v", err)
			continue
		}
		ms = append(ms, m)
	}
	return ms
}

func (p *parser) measure(i int, name string, r *Rule) {
	m := Measure(name)
	switch {
	case slices.Contains(supportedMeasures, m):
		r.Measure = m
	case slices.Contains(unsupportedMeasures, name):
		p.errorf(i, "measure", "measure", "measure %q is not supported yet (resource measures are planned)", name)
	default:
		names := make([]string, len(supportedMeasures))
		for i, m := range supportedMeasures {
			names[i] = string(m)
		}
		p.errorf(i, "measure", "measure", "unknown measure %q (known: %s)", name, strings.Join(names, ", "))
	}
}

func (p *parser) duration(i int, field, s string) (time.Duration, bool) {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		p.errorf(i, field, field, "bad duration %q: want a non-negative duration such as 30s or 5m", s)
		return 0, false
	}
	return d, true
}

// threshold accepts a number for every measure and, for latency measures, a
// duration; latency thresholds are in milliseconds.
func (p *parser) threshold(i int, s string, m Measure) float64 {
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) {
		return f
	}
	if m.isLatency() {
		if d, err := time.ParseDuration(s); err == nil {
			return float64(d) / float64(time.Millisecond)
		}
		p.errorf(i, "threshold", "threshold", "bad threshold %q: want milliseconds or a duration such as 250ms", s)
		return 0
	}
	p.errorf(i, "threshold", "threshold", "bad threshold %q: want a number", s)
	return 0
}

func (p *parser) by(i int, names []string, labels []string) []string {
	var out []string
	for _, l := range labels {
		if slices.Contains(names, l) {
			out = append(out, l)
		}
	}
	for _, name := range names {
		if !slices.Contains(labels, name) {
			p.errorf(i, "by", "by", "unknown label %q (known: %s)", name, strings.Join(labels, ", "))
		}
	}
	if len(names) == 0 {
		p.errorf(i, "by", "by", "must name at least one label")
	}
	return out
}

func (p *parser) classes(i int, names []string) []string {
	if len(names) == 0 {
		p.errorf(i, "classes", "classes", "must name at least one class (known: %s)", strings.Join(KernelClasses, ", "))
	}
	var out []string
	for _, c := range KernelClasses {
		if slices.Contains(names, c) {
			out = append(out, c)
		}
	}
	for _, name := range names {
		if !slices.Contains(KernelClasses, name) {
			p.errorf(i, "classes", "classes", "unknown kernel error class %q (known: %s)", name, strings.Join(KernelClasses, ", "))
		}
	}
	return out
}

// tmplPrefix gives templates Prometheus' $labels and $value.
const tmplPrefix = "{{$labels := .Labels}}{{$value := .Value}}"

func (p *parser) templates(i int, m map[string]string, field string) (map[string]string, map[string]*template.Template) {
	raw := map[string]string{}
	tmpls := map[string]*template.Template{}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		f := field + "." + k
		if field == "labels" && k == "alertname" {
			p.errorf(i, f, f, "alertname is the rule's name and cannot be set")
			continue
		}
		t, err := template.New(f).Option("missingkey=zero").Parse(tmplPrefix + m[k])
		if err != nil {
			p.errorf(i, f, f, "bad template: %v", err)
			continue
		}
		raw[k] = m[k]
		tmpls[k] = t
	}
	return raw, tmpls
}

type tmplData struct {
	Labels map[string]string
	Value  float64
}

func expand(tmpls map[string]*template.Template, labels map[string]string, value float64) map[string]string {
	out := make(map[string]string, len(tmpls))
	var buf bytes.Buffer
	for k, t := range tmpls {
		buf.Reset()
		if err := t.Execute(&buf, tmplData{Labels: labels, Value: value}); err != nil {
			out[k] = fmt.Sprintf("<error expanding template: %v>", err)
			continue
		}
		out[k] = buf.String()
	}
	return out
}

// RuleSet holds the rule set in force. Load replaces it only when every file
// validates, so a bad edit keeps the previous rules running.
// RuleSet is safe for concurrent use.
type RuleSet struct {
	mu    sync.RWMutex
	rules []*Rule
}

// Rules returns the rules in force. Callers must not modify them.
func (s *RuleSet) Rules() []*Rule {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.rules
}

// Set replaces the rules in force with rules, which must be valid.
func (s *RuleSet) Set(rules []*Rule) {
	s.mu.Lock()
	s.rules = rules
	s.mu.Unlock()
}

// Load reads and validates files and, if all are valid and no rule name is
// used twice, makes their rules the rules in force. On error the previous
// rules stay in force.
func (s *RuleSet) Load(files ...string) error {
	var all []*Rule
	var errs []error
	seen := map[string]*Rule{}
	for _, f := range files {
		rules, err := LoadFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, r := range rules {
			if first, dup := seen[r.Name]; dup {
				errs = append(errs, &ValidationError{File: r.File, Line: r.Line, Rule: r.Name, Field: "name",
					Msg: fmt.Sprintf("duplicate rule name (first defined at %s:%d)", first.File, first.Line)})
				continue
			}
			seen[r.Name] = r
			all = append(all, r)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("cannot load alert rules, keeping the previous ones: %w", errors.Join(errs...))
	}
	s.Set(all)
	return nil
}
