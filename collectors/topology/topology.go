// Package topology labels a node's containers with the system, app, group,
// IDC and environment they belong to, from a static YAML file of rules
// matched against namespace, pod and container names and the log file.
//
// The file:
//
//	default: {system: shop, idc: dc1, env: prod}
//	rules:
//	  - match: {namespace: payments}
//	    labels: {system: pay, app: gateway, group: g1}
//	  - match: {pod: "cart-*", container: app}
//	    labels: {app: cart, group: blue}
//	  - match: {file: "/var/log/legacy/billing/*.log*"}
//	    labels: {system: pay, app: billing}
//
// Rules are tried in order and the first whose every pattern matches wins;
// its labels are laid over the default. A pattern is a path.Match glob; an
// absent pattern matches anything, including an empty name. A file pattern
// with a slash is matched against the file's whole path, one without
// against its base name ("billing.log*"), so files outside Kubernetes and
// Docker can be labelled too.
package topology

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/tpflow/tpflow/internal/config"
	"github.com/tpflow/tpflow/schemas"
)

// Labels are the labels a rule assigns.
type Labels struct {
	System string `yaml:"system"`
	App    string `yaml:"app"`
	Group  string `yaml:"group"`
	IDC    string `yaml:"idc"`
	Env    string `yaml:"env"`
}

// Validate reports a key label value that schemas.CheckKeyLabelValue
// rejects: one with a control character or a backslash.
func (l Labels) Validate() error {
	var errs []error
	for _, f := range []struct{ key, v string }{
		{schemas.LabelSystem, l.System}, {schemas.LabelApp, l.App}, {schemas.LabelGroup, l.Group}, {schemas.LabelIDC, l.IDC},
	} {
		if err := schemas.CheckKeyLabelValue(f.v); err != nil {
			errs = append(errs, schemas.Fieldf(f.key, "%q: %v", f.v, err))
		}
	}
	return errors.Join(errs...)
}

// over returns l with every non-empty field of o laid over it.
func (l Labels) over(o Labels) Labels {
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&l.System, o.System)
	set(&l.App, o.App)
	set(&l.Group, o.Group)
	set(&l.IDC, o.IDC)
	set(&l.Env, o.Env)
	return l
}

// Match holds the patterns of a rule.
type Match struct {
	Namespace string `yaml:"namespace"`
	Pod       string `yaml:"pod"`
	Container string `yaml:"container"`
	File      string `yaml:"file"`
}

// Validate reports a pattern path.Match cannot use.
func (m Match) Validate() error {
	var errs []error
	for _, p := range []struct{ key, pat string }{{"namespace", m.Namespace}, {"pod", m.Pod}, {"container", m.Container}, {"file", m.File}} {
		if _, err := path.Match(p.pat, ""); err != nil {
			errs = append(errs, schemas.Fieldf(p.key, "bad pattern %q: %v", p.pat, err))
		}
	}
	return errors.Join(errs...)
}

// Rule assigns Labels to the containers its Match matches.
type Rule struct {
	Match  Match  `yaml:"match"`
	Labels Labels `yaml:"labels"`
}

// Validate reports a rule without patterns or without labels.
func (r Rule) Validate() error {
	var errs []error
	if r.Match == (Match{}) {
		errs = append(errs, schemas.Fieldf("match", "has no pattern (use default for labels of everything)"))
	}
	if r.Labels == (Labels{}) {
		errs = append(errs, errors.New("no labels"))
	}
	return errors.Join(errs...)
}

// Topology is a parsed topology file. It is immutable and safe for
// concurrent use.
type Topology struct {
	Default Labels `yaml:"default"`
	Rules   []Rule `yaml:"rules"`
}

// Source names a container (or, all empty, the node itself) and, for a
// log file, the file's path.
type Source struct {
	Namespace, Pod, Container string
	File                      string
}

// Resolve returns the labels of s: the first matching rule's labels over
// the default, or the default alone.
func (t *Topology) Resolve(s Source) Labels {
	if t == nil {
		return Labels{}
	}
	for _, r := range t.Rules {
		if r.Match.matches(s) {
			return t.Default.over(r.Labels)
		}
	}
	return t.Default
}

func (m Match) matches(s Source) bool {
	one := func(pat, name string) bool {
		if pat == "" {
			return true
		}
		ok, err := path.Match(pat, name)
		return err == nil && ok
	}
	file := s.File
	if !strings.Contains(m.File, "/") {
		file = path.Base(file)
	}
	return one(m.Namespace, s.Namespace) && one(m.Pod, s.Pod) && one(m.Container, s.Container) &&
		(m.File == "" || s.File != "" && one(m.File, file))
}

// Load reads and parses the topology file at p. Errors name the file,
// line and column.
func Load(p string) (*Topology, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("cannot read topology: %w", err)
	}
	return parse(p, b)
}

// ErrInvalid is wrapped by every error of Parse and of Load for a file
// that was read.
var ErrInvalid = errors.New("invalid topology")

// invalidError is a *config.Error that is also ErrInvalid.
type invalidError struct{ err error }

func (e invalidError) Error() string   { return e.err.Error() }
func (e invalidError) Unwrap() []error { return []error{ErrInvalid, e.err} }

// Parse parses a topology file strictly: unknown keys, bad patterns and a
// rule without patterns or labels are errors, each prefixed with its line
// and column ("12:5: rules[3]: no labels").
func Parse(b []byte) (*Topology, error) { return parse("", b) }

func parse(name string, b []byte) (*Topology, error) {
	var t Topology
	if err := config.Load(name, b, &t); err != nil {
		return nil, invalidError{err}
	}
	return &t, nil
}
