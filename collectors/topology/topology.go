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
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"gopkg.in/yaml.v3"
)

// Labels are the labels a rule assigns.
type Labels struct {
	System string `yaml:"system"`
	App    string `yaml:"app"`
	Group  string `yaml:"group"`
	IDC    string `yaml:"idc"`
	Env    string `yaml:"env"`
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

// Rule assigns Labels to the containers its Match matches.
type Rule struct {
	Match  Match  `yaml:"match"`
	Labels Labels `yaml:"labels"`
	line   int
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

// Load reads and parses the topology file at p. Errors name the file and
// line.
func Load(p string) (*Topology, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("cannot read topology: %w", err)
	}
	t, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s:%w", p, err)
	}
	return t, nil
}

// ErrInvalid is wrapped by every error of Parse.
var ErrInvalid = errors.New("invalid topology")

// Parse parses a topology file strictly: unknown keys, bad patterns and a
// rule without patterns or labels are errors, each prefixed with its line
// ("12: ...").
func Parse(b []byte) (*Topology, error) {
	var t Topology
	var root yaml.Node
	if len(bytes.TrimSpace(b)) == 0 {
		return &t, nil
	}
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("1: %w: %v", ErrInvalid, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&t); err != nil {
		line := 1
		var te *yaml.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			// "line N: ..." is how yaml.v3 words its errors.
			var n int
			if _, serr := fmt.Sscanf(te.Errors[0], "line %d:", &n); serr == nil {
				line = n
			}
		}
		return nil, fmt.Errorf("%d: %w: %v", line, ErrInvalid, err)
	}
	lines := ruleLines(&root)
	var errs []error
	for i := range t.Rules {
		r := &t.Rules[i]
		if i < len(lines) {
			r.line = lines[i]
		}
		for _, pat := range []string{r.Match.Namespace, r.Match.Pod, r.Match.Container, r.Match.File} {
			if _, err := path.Match(pat, ""); err != nil {
				errs = append(errs, fmt.Errorf("%d: %w: rules[%d]: bad pattern %q: %v", r.line, ErrInvalid, i, pat, err))
			}
		}
		if r.Match == (Match{}) {
			errs = append(errs, fmt.Errorf("%d: %w: rules[%d]: match has no pattern (use default for labels of everything)", r.line, ErrInvalid, i))
		}
		if r.Labels == (Labels{}) {
			errs = append(errs, fmt.Errorf("%d: %w: rules[%d]: no labels", r.line, ErrInvalid, i))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &t, nil
}

// ruleLines returns the line of each item of the rules sequence.
func ruleLines(root *yaml.Node) []int {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 {
		return nil
	}
	m := root.Content[0]
	if m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "rules" && m.Content[i+1].Kind == yaml.SequenceNode {
			var out []int
			for _, it := range m.Content[i+1].Content {
				out = append(out, it.Line)
			}
			return out
		}
	}
	return nil
}
