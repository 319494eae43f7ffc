package control

import (
	"errors"
	"strings"
	"testing"
)

func TestParseScope(t *testing.T) {
	good := map[string]string{
		"global":                    "global",
		"system:shop":               "system:shop",
		"app:shop/cart":             "app:shop/cart",
		"group:shop/cart/blue":      "group:shop/cart/blue",
		"node:node=n1,idc=dc1":      "node:idc=dc1,node=n1",
		"node:cluster=k1,env=prod":  "node:cluster=k1,env=prod",
		"node:idc=dc1":              "node:idc=dc1",
		"group:s.1/a_b/blue-green2": "group:s.1/a_b/blue-green2",
	}
	for in, want := range good {
		sc, err := ParseScope(in)
		if err != nil || sc.String() != want {
			t.Errorf("ParseScope(%q) = %v, %v; want %s", in, sc, err, want)
		}
	}
	for _, in := range []string{"", "global:x", "system:", "system:a/b", "app:shop", "group:a/b", "group:a/b/c/d",
		"node:", "node:rack=1", "node:node=a,node=b", "node:node", "node:node=a b", "team:x", "system:\xff", "app:shop/-x"} {
		if _, err := ParseScope(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("ParseScope(%q) = %v, want ErrInvalid", in, err)
		}
	}
}

func TestAgentScopes(t *testing.T) {
	nodes := []Scope{{ScopeNode, "idc=dc1"}, {ScopeNode, "idc=dc1,node=n1"}, {ScopeNode, "idc=dc2"}, {ScopeNode, "env=prod"}}
	got, err := Agent{System: "shop", App: "cart", Group: "blue", IDC: "dc1", Node: "n1", Env: "prod"}.Scopes(nodes)
	if err != nil {
		t.Fatal(err)
	}
	var s []string
	for _, sc := range got {
		s = append(s, sc.String())
	}
	want := "global system:shop app:shop/cart group:shop/cart/blue node:env=prod node:idc=dc1 node:idc=dc1,node=n1"
	if strings.Join(s, " ") != want {
		t.Errorf("Scopes = %s\nwant %s", strings.Join(s, " "), want)
	}
	if got, _ := (Agent{}).Scopes(nodes); len(got) != 1 {
		t.Errorf("an agent of nothing has scopes %v, want global", got)
	}
	if _, err := (Agent{Group: "g"}).Scopes(nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("group without system: %v", err)
	}
}

func TestMergeYAML(t *testing.T) {
	v := func(body string) Version {
		return Version{Files: []File{{Name: "tpflow.yaml", ContentType: ContentYAML, Body: body}}}
	}
	e, err := Merge([]Version{
		v("aggregator:\n  pane: 10s\n  windows: [1m, 5m]\nlog:\n  level: info\n"),
		v("aggregator:\n  windows: [10m]\nlog:\n  format: json\n"),
		{Files: []File{{Name: "notes.txt", ContentType: ContentText, Body: "a"}}},
		{Files: []File{{Name: "notes.txt", ContentType: ContentText, Body: "b"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "aggregator:\n    pane: 10s\n    windows: [10m]\nlog:\n    level: info\n    format: json\n"
	if len(e.Files) != 2 || e.Files[1].Body != want || e.Files[0].Body != "b" || e.SHA256 != Hash(e.Files) {
		t.Errorf("Merge = %+v\nwant tpflow.yaml:\n%s", e, want)
	}
	// An empty document keeps the wider one; a scalar replaces a mapping.
	if e, _ := Merge([]Version{v("a: 1\n"), v("")}); e.Files[0].Body != "a: 1\n" {
		t.Errorf("empty over = %q", e.Files[0].Body)
	}
	if e, _ := Merge([]Version{v("a: {b: 1}\n"), v("a: 2\n")}); e.Files[0].Body != "a: 2\n" {
		t.Errorf("scalar over mapping = %q", e.Files[0].Body)
	}
	if _, err := Merge([]Version{v("a: 1\n"), v("a: [\n")}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad YAML merge = %v", err)
	}
}

func TestHashSeparatesFields(t *testing.T) {
	seen := map[string][]File{}
	for _, fs := range [][]File{
		{{Name: "a", ContentType: ContentText, Body: "bc"}},
		{{Name: "ab", ContentType: ContentText, Body: "c"}},
		{{Name: "a", ContentType: ContentYAML, Body: "bc"}},
		{{Name: "a", ContentType: ContentText, Body: "b"}, {Name: "c", ContentType: ContentText}},
		{{Name: "a", ContentType: ContentText, Body: "b"}},
		{},
	} {
		h := Hash(fs)
		if prev, dup := seen[h]; dup {
			t.Errorf("%v and %v share hash %s", prev, fs, h)
		}
		seen[h] = fs
	}
}

func TestDiff(t *testing.T) {
	a := Version{Scope: Scope{Kind: ScopeGlobal}, Version: 1, Files: []File{{Name: "a", Body: "x\ny\n"}, {Name: "gone", Body: "1"}, {Name: "same", Body: "s"}}}
	b := Version{Scope: Scope{Kind: ScopeGlobal}, Version: 2, Files: []File{{Name: "a", Body: "x\nz\n"}, {Name: "new", Body: "2\n"}, {Name: "same", Body: "s"}}}
	d := Diff(a, b)
	got := ""
	for _, f := range d {
		got += f.Name + ":" + f.Change + " "
	}
	if got != "a:modified gone:removed new:added same:unchanged " {
		t.Errorf("Diff = %s", got)
	}
	if !strings.Contains(d[0].Unified, "--- global@1/a\n+++ global@2/a\n") || !strings.Contains(d[0].Unified, "-y\n+z\n") || d[3].Unified != "" {
		t.Errorf("unified diff of a:\n%s", d[0].Unified)
	}
}
