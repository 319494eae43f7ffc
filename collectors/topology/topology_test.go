package topology

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const example = `default: {system: shop, idc: dc1, env: prod}
rules:
  - match: {namespace: payments}
    labels: {system: pay, app: gateway, group: g1}
  - match: {pod: "cart-*", container: app}
    labels: {app: cart, group: blue}
  - match: {pod: "cart-*"}
    labels: {app: cart-sidecar}
  - match: {file: "/var/log/legacy/*/billing.log*"}
    labels: {system: pay, app: billing}
  - match: {file: "audit-*.log"}
    labels: {app: audit}
`

func TestResolve(t *testing.T) {
	top, err := Parse([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	f := func(s Source, want Labels) {
		t.Helper()
		if got := top.Resolve(s); got != want {
			t.Errorf("Resolve(%+v) = %+v, want %+v", s, got, want)
		}
	}
	f(Source{Namespace: "payments", Pod: "cart-1", Container: "app"}, Labels{System: "pay", App: "gateway", Group: "g1", IDC: "dc1", Env: "prod"})
	f(Source{Namespace: "web", Pod: "cart-1", Container: "app"}, Labels{System: "shop", App: "cart", Group: "blue", IDC: "dc1", Env: "prod"})
	f(Source{Namespace: "web", Pod: "cart-1", Container: "istio"}, Labels{System: "shop", App: "cart-sidecar", IDC: "dc1", Env: "prod"})
	f(Source{Namespace: "web", Pod: "search-1", Container: "app"}, Labels{System: "shop", IDC: "dc1", Env: "prod"})
	f(Source{}, Labels{System: "shop", IDC: "dc1", Env: "prod"})
	// File rules: with a slash against the whole path, without against the
	// base name; a source without a file never matches one.
	f(Source{File: "/var/log/legacy/eu/billing.log.1"}, Labels{System: "pay", App: "billing", IDC: "dc1", Env: "prod"})
	f(Source{File: "/var/log/legacy/eu/x/billing.log"}, Labels{System: "shop", IDC: "dc1", Env: "prod"})
	f(Source{File: "/srv/audit-7.log"}, Labels{System: "shop", App: "audit", IDC: "dc1", Env: "prod"})
	f(Source{File: "/srv/audit-7.log.1"}, Labels{System: "shop", IDC: "dc1", Env: "prod"})
	f(Source{Pod: "audit-7.log"}, Labels{System: "shop", IDC: "dc1", Env: "prod"})
	var none *Topology
	if got := none.Resolve(Source{Pod: "x"}); got != (Labels{}) {
		t.Errorf("nil topology resolved to %+v", got)
	}
}

func TestParseErrors(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		_, err := Parse([]byte(in))
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an ErrInvalid containing %q", in, err, want)
		}
	}
	f("default: {sytem: x}\n", `1:11: default: unknown key "sytem" (did you mean "system"?)`)
	f("rules:\n  - match: {pod: a}\n    labels: {app: a}\n  - match: {pod: \"[\"}\n    labels: {app: b}\n", `4:13: rules[1].match.pod: bad pattern "["`)
	f("rules:\n  - match: {}\n    labels: {app: a}\n", "2:5: rules[0].match: has no pattern")
	f("rules:\n  - match: {file: \"/x/[.log\"}\n    labels: {app: a}\n", `2:13: rules[0].match.file: bad pattern "/x/[.log"`)
	f("rules:\n  - match: {pod: a}\n", "2:5: rules[0]: no labels")
	f("rules: [\n", "1: malformed YAML")
	f("rules:\n  - match: {pod: a}\n    labels: {app: a}\n    extra: 1\n", `4:5: rules[0]: unknown key "extra"`)
	f("default: {app: [x]}\n", `1:16: default.app: expected a string, got a list`)
	f("default: {system: 'pay\\'}\n", `default.system: "pay\\": unsafe label value: holds a backslash`)
	f("rules:\n  - match: {pod: a}\n    labels: {idc: \"bj\\n-- x\"}\n", `rules[0].labels.idc: "bj\n-- x": unsafe label value: holds control character U+000A`)
	if top, err := Parse(nil); err != nil || top.Resolve(Source{}) != (Labels{}) {
		t.Errorf("empty file: %v", err)
	}
}

func TestLoad(t *testing.T) {
	p := filepath.Join(t.TempDir(), "topology.yaml")
	if err := os.WriteFile(p, []byte("rules:\n  - match: {pod: \"[\"}\n    labels: {app: b}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), p+":2:13: rules[0].match.pod: ") {
		t.Errorf("Load = %v, want an error starting with %s:2:13:", err, p)
	}
	// Unknown keys (with a suggestion) and values of the wrong type name
	// the file, line and column too.
	if err := os.WriteFile(p, []byte("default: {system: a}\nrules:\n  - match: {pod: a}\n    lables: {app: b}\n  - match: {pod: [a]}\n    labels: {app: c}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := p + `:3:5: rules[0]: no labels` + "\n" +
		p + `:4:5: rules[0]: unknown key "lables" (did you mean "labels"?)` + "\n" +
		p + `:5:18: rules[1].match.pod: expected a string, got a list`
	if _, err := Load(p); err == nil || !errors.Is(err, ErrInvalid) || err.Error() != want {
		t.Errorf("Load = %v, want\n%s", err, want)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("missing file loaded")
	}
}

// FuzzParse checks that no input panics, that errors are ErrInvalid with a
// line, and that a parsed topology resolves without panicking.
func FuzzParse(f *testing.F) {
	f.Add([]byte(example))
	f.Add([]byte("rules: [{match: {pod: '['}, labels: {app: x}}]"))
	f.Add([]byte("default: [1, 2]"))
	f.Add([]byte("\xff\xfe"))
	f.Fuzz(func(t *testing.T, b []byte) {
		top, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		top.Resolve(Source{Namespace: "ns", Pod: "pod-1", Container: "c"})
		for _, r := range top.Rules {
			if r.Match == (Match{}) || r.Labels == (Labels{}) {
				t.Fatalf("accepted an empty rule %+v", r)
			}
		}
	})
}
