// Package layout states which way imports point between the folders of
// the module (ARCHITECTURE.md, "Layers") and checks a package graph
// against it. The rules apply to the code a package builds into a
// binary; tests may reach further (an integration test of the sink may
// run the aggregate role).
package layout

import (
	"fmt"
	"slices"
	"strings"
)

// Module is the module path every rule is relative to.
const Module = "github.com/tpflow/tpflow"

// A layer is a set of folders and the folders its packages may import
// besides their own layer.
type layer struct {
	name  string
	dirs  []string // the layer's folders (a folder covers its subfolders)
	may   []string // layers it may import
	extra []string // single folders of other layers it may import
}

// layers, from the ground up. A package belongs to the layer with the
// longest folder that holds it.
var layers = []layer{
	{name: "wire", dirs: []string{"schemas"}},
	// Helpers every layer may use: configuration loading and validation,
	// metrics registration, atomic file writes, the role contract, the
	// small helpers tests share.
	{name: "ground", dirs: []string{"internal/config", "internal/promreg", "internal/atomicfile", "internal/progress", "internal/role", "internal/testkit"}, may: []string{"wire"}},
	{name: "transport", dirs: []string{"pipeline"}, may: []string{"wire", "ground"}},
	{name: "collectors", dirs: []string{"collectors"}, may: []string{"wire", "ground", "transport"}},
	{name: "aggregator", dirs: []string{"aggregator"}, may: []string{"wire", "ground", "transport"}},
	// The alert role reads final panes: the aggregator's pane and digest
	// types, not its roles.
	{name: "alerting", dirs: []string{"alerting"}, may: []string{"wire", "ground", "transport"}, extra: []string{"aggregator"}},
	{name: "report", dirs: []string{"report", "internal/dashboards"}, may: []string{"wire", "ground", "transport"}, extra: []string{"aggregator"}},
	// The control plane imports and exports the collectors' topology
	// file: their format, not their role.
	{name: "control", dirs: []string{"control"}, may: []string{"wire", "ground", "transport"}, extra: []string{"collectors/topology"}},
	// The configuration file's sections gather every role's Config; the
	// command-line frame loads them and serves a role.
	{name: "composition", dirs: []string{"internal/config/sections", "internal/cli"}, may: []string{"wire", "ground", "transport", "collectors", "aggregator", "alerting", "report", "control"}},
	{name: "devtools", dirs: []string{"internal/devtools", "internal/configtest", "internal/layout"}, may: []string{"wire", "ground", "transport", "collectors", "aggregator", "alerting", "report", "control"}},
	// The Helm chart, embedded, and its renderer, which validates the
	// configuration file the chart writes.
	{name: "deploy", dirs: []string{"deploy"}, may: []string{"wire", "ground", "transport", "collectors", "aggregator", "alerting", "report", "control", "composition"}},
	{name: "tests", dirs: []string{"e2e", "benchmarks"}, may: []string{"wire", "ground", "transport", "collectors", "aggregator", "alerting", "report", "control", "composition", "devtools", "deploy"}},
	{name: "commands", dirs: []string{"cmd"}, may: []string{"wire", "ground", "transport", "collectors", "aggregator", "alerting", "report", "control", "composition", "devtools", "deploy"}},
}

// under reports whether the module-relative path rel is dir or below it.
func under(rel, dir string) bool {
	return rel == dir || strings.HasPrefix(rel, dir+"/")
}

// layerOf returns the layer of the module-relative package path rel, or
// nil when no layer holds it.
func layerOf(rel string) *layer {
	var best *layer
	bestLen := -1
	for i := range layers {
		for _, d := range layers[i].dirs {
			if under(rel, d) && len(d) > bestLen {
				best, bestLen = &layers[i], len(d)
			}
		}
	}
	return best
}

// allowed reports whether package from may import package to (both
// module-relative).
func allowed(from, to string) bool {
	lf, lt := layerOf(from), layerOf(to)
	if lf == nil || lt == nil {
		return false
	}
	if lf == lt || slices.Contains(lf.may, lt.name) {
		return true
	}
	return slices.Contains(lf.extra, to)
}

// Check returns one line for every import in graph (package → the module
// packages it imports, full import paths) that the layers forbid, and
// for every module package that no layer holds.
func Check(graph map[string][]string) []string {
	var out []string
	pkgs := make([]string, 0, len(graph))
	for p := range graph {
		pkgs = append(pkgs, p)
	}
	slices.Sort(pkgs)
	for _, p := range pkgs {
		from, ok := strings.CutPrefix(p, Module+"/")
		if !ok {
			continue
		}
		if layerOf(from) == nil {
			out = append(out, fmt.Sprintf("%s: in no layer; add its folder to ARCHITECTURE.md and internal/layout", from))
			continue
		}
		for _, imp := range graph[p] {
			to, ok := strings.CutPrefix(imp, Module+"/")
			if !ok {
				continue
			}
			if !allowed(from, to) {
				out = append(out, fmt.Sprintf("%s (%s) imports %s (%s): not allowed; see ARCHITECTURE.md, \"Layers\"",
					from, layerOf(from).name, to, layerName(to)))
			}
		}
	}
	return out
}

func layerName(rel string) string {
	if l := layerOf(rel); l != nil {
		return l.name
	}
	return "no layer"
}
