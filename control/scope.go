package control

import (
	"errors"
	"slices"
	"strings"
)

// ScopeKind is the level a configuration version applies to.
type ScopeKind string

// The scope kinds, from the widest to the narrowest. An agent's effective
// configuration merges them in this order, the narrowest winning.
const (
	ScopeGlobal ScopeKind = "global"
	ScopeSystem ScopeKind = "system"
	ScopeApp    ScopeKind = "app"
	ScopeGroup  ScopeKind = "group"
	ScopeNode   ScopeKind = "node"
)

// Scope is where a configuration applies: global (no name), a system
// ("shop"), an app ("shop/cart"), a group ("shop/cart/blue") or a node
// selector ("idc=dc1,node=n1").
type Scope struct {
	Kind ScopeKind `json:"kind"`
	Name string    `json:"name"`
}

// String is KIND or KIND:NAME, the form ParseScope reads and the target of
// the scope's operations ("config:" + String).
func (s Scope) String() string {
	if s.Kind == ScopeGlobal {
		return string(s.Kind)
	}
	return string(s.Kind) + ":" + s.Name
}

// ParseScope reads the form of Scope.String and validates it.
func ParseScope(s string) (Scope, error) {
	kind, name, _ := strings.Cut(s, ":")
	sc := Scope{Kind: ScopeKind(kind), Name: name}
	return sc.Canonical()
}

// SelectorKeys are the agent attributes a node selector may test.
var SelectorKeys = []string{"cluster", "env", "idc", "node"}

// Canonical validates s and returns it with a node selector's terms sorted
// by key, so that one selector has one scope.
func (s Scope) Canonical() (Scope, error) {
	bad := func(want string) (Scope, error) {
		return Scope{}, Invalidf("scope %q: %s", s.String(), want)
	}
	parts := strings.Split(s.Name, "/")
	switch s.Kind {
	case ScopeGlobal:
		if s.Name != "" {
			return bad("global takes no name")
		}
	case ScopeSystem, ScopeApp, ScopeGroup:
		want := map[ScopeKind]int{ScopeSystem: 1, ScopeApp: 2, ScopeGroup: 3}[s.Kind]
		if len(parts) != want {
			return bad("want " + []string{"", "system:SYSTEM", "app:SYSTEM/APP", "group:SYSTEM/APP/GROUP"}[want])
		}
		for _, p := range parts {
			if err := CheckName(string(s.Kind)+" part", p); err != nil {
				return Scope{}, err
			}
		}
	case ScopeNode:
		sel, err := ParseSelector(s.Name)
		if err != nil {
			return Scope{}, err
		}
		s.Name = sel.String()
	default:
		return bad("kind must be global, system, app, group or node")
	}
	return s, nil
}

// Selector is a node selector: every term must equal the agent's attribute.
type Selector map[string]string

// ParseSelector reads "key=value[,key=value...]" with keys among
// SelectorKeys, each at most once.
func ParseSelector(s string) (Selector, error) {
	if s == "" {
		return nil, Invalidf("node selector is empty; want KEY=VALUE[,KEY=VALUE] with keys %s", strings.Join(SelectorKeys, ", "))
	}
	sel := Selector{}
	for _, term := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(term, "=")
		if !ok || !slices.Contains(SelectorKeys, k) {
			return nil, Invalidf("node selector term %q: want KEY=VALUE with KEY one of %s", term, strings.Join(SelectorKeys, ", "))
		}
		if _, dup := sel[k]; dup {
			return nil, Invalidf("node selector %q names %s twice", s, k)
		}
		if err := CheckName("node selector value", v); err != nil {
			return nil, err
		}
		sel[k] = v
	}
	return sel, nil
}

// String is the canonical form: terms sorted by key.
func (s Selector) String() string {
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	terms := make([]string, len(keys))
	for i, k := range keys {
		terms[i] = k + "=" + s[k]
	}
	return strings.Join(terms, ",")
}

// Agent is what decides which scopes apply to an agent.
type Agent struct {
	System, App, Group string
	Cluster, Env, IDC  string
	Node               string
}

func (a Agent) attr(k string) string {
	switch k {
	case "cluster":
		return a.Cluster
	case "env":
		return a.Env
	case "idc":
		return a.IDC
	case "node":
		return a.Node
	}
	return ""
}

// Matches reports whether every term of s equals the agent's attribute.
func (s Selector) Matches(a Agent) bool {
	for k, v := range s {
		if a.attr(k) != v {
			return false
		}
	}
	return true
}

// Scopes returns the scopes that apply to a, widest first: global, its
// system, app and group (as far as a names them), then every node
// selector of selectors that matches a, in canonical order.
func (a Agent) Scopes(selectors []Scope) ([]Scope, error) {
	out := []Scope{{Kind: ScopeGlobal}}
	if a.System != "" {
		out = append(out, Scope{Kind: ScopeSystem, Name: a.System})
		if a.App != "" {
			out = append(out, Scope{Kind: ScopeApp, Name: a.System + "/" + a.App})
			if a.Group != "" {
				out = append(out, Scope{Kind: ScopeGroup, Name: a.System + "/" + a.App + "/" + a.Group})
			}
		}
	} else if a.App != "" || a.Group != "" {
		return nil, errors.Join(Invalidf("an app or group needs its system"))
	}
	var nodes []string
	for _, sc := range selectors {
		if sc.Kind != ScopeNode {
			continue
		}
		sel, err := ParseSelector(sc.Name)
		if err != nil {
			return nil, err
		}
		if sel.Matches(a) {
			nodes = append(nodes, sel.String())
		}
	}
	slices.Sort(nodes)
	for _, n := range slices.Compact(nodes) {
		out = append(out, Scope{Kind: ScopeNode, Name: n})
	}
	return out, nil
}
