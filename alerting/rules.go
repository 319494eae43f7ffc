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

	"gopkg.in/yaml.v3"

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
	File  string
	Line  int
	Rule  string // empty for file-level problems
	Field string
	Msg   string
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
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

// ParseRules validates the rules file data; file names it in errors. A file
// is a mapping with one key, rules, holding a list of rules. Every problem
// found is reported, each with its file, line and field.
func ParseRules(file string, data []byte) ([]*Rule, error) {
	p := &parser{file: file}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &invalidRules{[]error{&ValidationError{File: file, Line: yamlErrLine(err), Msg: err.Error()}}}
	}
	var rules []*Rule
	if len(doc.Content) > 0 {
		rules = p.top(doc.Content[0])
	}
	if len(p.errs) > 0 {
		return nil, &invalidRules{p.errs}
	}
	return rules, nil
}

var yamlLineRe = regexp.MustCompile(`line (\d+)`)

func yamlErrLine(err error) int {
	if m := yamlLineRe.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

type parser struct {
	file string
	errs []error
	rule string
}

func (p *parser) errorf(n *yaml.Node, field, format string, args ...any) {
	p.errs = append(p.errs, &ValidationError{File: p.file, Line: n.Line, Rule: p.rule, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (p *parser) top(root *yaml.Node) []*Rule {
	if root.Kind != yaml.MappingNode {
		p.errorf(root, "", "a rules file must be a mapping with the key \"rules\"")
		return nil
	}
	var rules []*Rule
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Value != "rules" {
			p.errorf(k, k.Value, "unknown key (known: rules)")
			continue
		}
		if v.Kind != yaml.SequenceNode {
			p.errorf(v, "rules", "must be a list of rules")
			continue
		}
		for _, rn := range v.Content {
			r := p.rule1(rn)
			if r == nil {
				continue
			}
			if line, dup := seen[r.Name]; dup {
				p.rule = r.Name
				p.errorf(rn, "name", "duplicate rule name (first defined on line %d)", line)
				p.rule = ""
				continue
			}
			seen[r.Name] = r.Line
			rules = append(rules, r)
		}
	}
	return rules
}

// rule1 validates one rule node; it returns nil when the rule is invalid.
func (p *parser) rule1(n *yaml.Node) *Rule {
	p.rule = ""
	defer func() { p.rule = "" }()
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "", "a rule must be a mapping")
		return nil
	}
	before := len(p.errs)
	r := &Rule{File: p.file, Line: n.Line, Op: "", By: LabelNames}
	fields := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if _, dup := fields[k.Value]; dup {
			p.errorf(k, k.Value, "key given twice")
		}
		fields[k.Value] = n.Content[i+1]
		if k.Value == "name" {
			r.Name = n.Content[i+1].Value
			p.rule = r.Name
		}
	}
	// The measure decides which labels and fields the rule may use.
	if mn, ok := fields["measure"]; ok {
		p.measure(mn, r)
	}
	r.By = r.Measure.defaultBy()
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "name":
			if v.Kind != yaml.ScalarNode || v.Value == "" {
				p.errorf(v, "name", "must be a non-empty string")
			}
		case "selector":
			r.Matchers = p.selector(v, r.Measure.labelNames())
		case "measure":
			// Read above.
		case "pattern":
			if r.Measure != LogPatternRate {
				p.errorf(k, "pattern", "only a log_pattern_rate rule has a pattern")
			} else if re, err := regexp.Compile(v.Value); v.Kind != yaml.ScalarNode || err != nil || v.Value == "" {
				p.errorf(v, "pattern", "bad regular expression %q: %v", v.Value, err)
			} else {
				r.Pattern = re
			}
		case "compare_to":
			if r.Measure.isLog() || r.Measure.isResource() {
				p.errorf(k, "compare_to", "only call measures can be compared with an earlier window")
			} else if r.CompareTo = p.duration(v, "compare_to"); v.Kind == yaml.ScalarNode && r.CompareTo <= 0 {
				p.errorf(v, "compare_to", "must be positive, e.g. 24h or 168h")
			}
		case "classes":
			if r.Measure != KernelErrorRate {
				p.errorf(k, "classes", "only a kernel_error_rate rule has classes")
			} else {
				r.Classes = p.classes(v)
			}
		case "window":
			r.Window = p.duration(v, "window")
			if v.Kind == yaml.ScalarNode && r.Window <= 0 {
				p.errorf(v, "window", "must be positive")
			}
		case "op":
			if !slices.Contains(ops, Op(v.Value)) || v.Kind != yaml.ScalarNode {
				p.errorf(v, "op", "unknown comparison %q (known: > >= < <= == !=)", v.Value)
			} else {
				r.Op = Op(v.Value)
			}
		case "threshold":
			// Checked below, once the measure is known.
		case "for":
			r.For = p.duration(v, "for")
		case "keep_firing_for":
			r.KeepFiringFor = p.duration(v, "keep_firing_for")
		case "by":
			r.By = p.by(v, r.Measure.labelNames())
		case "labels":
			r.Labels, r.labelTmpl = p.templates(v, "labels")
		case "annotations":
			r.Annotations, r.annTmpl = p.templates(v, "annotations")
		default:
			p.errorf(k, k.Value, "unknown key (known: name, selector, measure, pattern, classes, compare_to, window, op, threshold, for, keep_firing_for, by, labels, annotations)")
		}
	}
	if _, ok := fields["name"]; !ok {
		p.errorf(n, "name", "required")
	}
	if _, ok := fields["measure"]; !ok {
		p.errorf(n, "measure", "required")
	}
	if _, ok := fields["window"]; !ok {
		if f, ok := fields["for"]; ok {
			p.errorf(f, "for", "needs a window: set \"window\" to the length of the window the measure is computed over")
		} else {
			p.errorf(n, "window", "required")
		}
	}
	if _, ok := fields["op"]; !ok {
		p.errorf(n, "op", "required")
	}
	if _, ok := fields["pattern"]; !ok && r.Measure == LogPatternRate {
		p.errorf(n, "pattern", "required for log_pattern_rate: a regular expression over the log message")
	}
	if r.Measure == KernelErrorRate && r.Classes == nil {
		r.Classes = KernelClasses
	}
	if v, ok := fields["threshold"]; !ok {
		p.errorf(n, "threshold", "required")
	} else if r.CompareTo > 0 {
		r.Threshold = p.threshold(v, QPS) // a ratio
	} else {
		r.Threshold = p.threshold(v, r.Measure)
	}
	if len(p.errs) > before {
		return nil
	}
	return r
}

func (p *parser) selector(n *yaml.Node, labels []string) []*Matcher {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "selector", "must be a mapping of label to matcher, e.g. app: \"=~pay.*\"")
		return nil
	}
	var ms []*Matcher
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		field := "selector." + k.Value
		if !slices.Contains(labels, k.Value) {
			p.errorf(k, field, "unknown label (known: %s)", strings.Join(labels, ", "))
			continue
		}
		if v.Kind != yaml.ScalarNode {
			p.errorf(v, field, "must be a string")
			continue
		}
		m, err := parseMatcher(k.Value, v.Value)
		if err != nil {
			p.errorf(v, field, "%v", err)
			continue
		}
		ms = append(ms, m)
	}
	return ms
}

func (p *parser) measure(n *yaml.Node, r *Rule) {
	m := Measure(n.Value)
	switch {
	case n.Kind != yaml.ScalarNode:
		p.errorf(n, "measure", "must be a string")
	case slices.Contains(supportedMeasures, m):
		r.Measure = m
	case slices.Contains(unsupportedMeasures, n.Value):
		p.errorf(n, "measure", "measure %q is not supported yet (resource measures are planned)", n.Value)
	default:
		names := make([]string, len(supportedMeasures))
		for i, m := range supportedMeasures {
			names[i] = string(m)
		}
		p.errorf(n, "measure", "unknown measure %q (known: %s)", n.Value, strings.Join(names, ", "))
	}
}

func (p *parser) duration(n *yaml.Node, field string) time.Duration {
	if n.Kind != yaml.ScalarNode {
		p.errorf(n, field, "must be a duration such as 30s or 5m")
		return 0
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil || d < 0 {
		p.errorf(n, field, "bad duration %q: want a non-negative duration such as 30s or 5m", n.Value)
		return 0
	}
	return d
}

// threshold accepts a number for every measure and, for latency measures, a
// duration; latency thresholds are in milliseconds.
func (p *parser) threshold(n *yaml.Node, m Measure) float64 {
	if n.Kind != yaml.ScalarNode {
		p.errorf(n, "threshold", "must be a number")
		return 0
	}
	if f, err := strconv.ParseFloat(n.Value, 64); err == nil && !math.IsNaN(f) {
		return f
	}
	if m.isLatency() {
		if d, err := time.ParseDuration(n.Value); err == nil {
			return float64(d) / float64(time.Millisecond)
		}
		p.errorf(n, "threshold", "bad threshold %q: want milliseconds or a duration such as 250ms", n.Value)
		return 0
	}
	p.errorf(n, "threshold", "bad threshold %q: want a number", n.Value)
	return 0
}

func (p *parser) by(n *yaml.Node, labels []string) []string {
	var names []string
	switch n.Kind {
	case yaml.ScalarNode:
		names = []string{n.Value}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			names = append(names, c.Value)
		}
	default:
		p.errorf(n, "by", "must be a label or a list of labels")
		return nil
	}
	var out []string
	for _, l := range labels {
		if slices.Contains(names, l) {
			out = append(out, l)
		}
	}
	for _, name := range names {
		if !slices.Contains(labels, name) {
			p.errorf(n, "by", "unknown label %q (known: %s)", name, strings.Join(labels, ", "))
		}
	}
	if len(names) == 0 {
		p.errorf(n, "by", "must name at least one label")
	}
	return out
}

func (p *parser) classes(n *yaml.Node) []string {
	var names []string
	switch n.Kind {
	case yaml.ScalarNode:
		names = []string{n.Value}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			names = append(names, c.Value)
		}
	default:
		p.errorf(n, "classes", "must be a class or a list of classes")
		return nil
	}
	if len(names) == 0 {
		p.errorf(n, "classes", "must name at least one class (known: %s)", strings.Join(KernelClasses, ", "))
	}
	var out []string
	for _, c := range KernelClasses {
		if slices.Contains(names, c) {
			out = append(out, c)
		}
	}
	for _, name := range names {
		if !slices.Contains(KernelClasses, name) {
			p.errorf(n, "classes", "unknown kernel error class %q (known: %s)", name, strings.Join(KernelClasses, ", "))
		}
	}
	return out
}

// tmplPrefix gives templates Prometheus' $labels and $value.
const tmplPrefix = "{{$labels := .Labels}}{{$value := .Value}}"

func (p *parser) templates(n *yaml.Node, field string) (map[string]string, map[string]*template.Template) {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, field, "must be a mapping of name to template")
		return nil, nil
	}
	raw := map[string]string{}
	tmpls := map[string]*template.Template{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f := field + "." + k.Value
		if v.Kind != yaml.ScalarNode {
			p.errorf(v, f, "must be a string")
			continue
		}
		if field == "labels" && k.Value == "alertname" {
			p.errorf(k, f, "alertname is the rule's name and cannot be set")
			continue
		}
		t, err := template.New(f).Option("missingkey=zero").Parse(tmplPrefix + v.Value)
		if err != nil {
			p.errorf(v, f, "bad template: %v", err)
			continue
		}
		raw[k.Value] = v.Value
		tmpls[k.Value] = t
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
