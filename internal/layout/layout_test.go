package layout

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// TestImportsFollowTheLayers lists every package of the module with `go
// list` and fails on any import the layers forbid.
func TestImportsFollowTheLayers(t *testing.T) {
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Imports,Error", Module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	graph := map[string][]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath string
			Imports    []string
			Error      *struct{ Err string }
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Error != nil {
			t.Fatalf("%s: %s", p.ImportPath, p.Error.Err)
		}
		graph[p.ImportPath] = p.Imports
	}
	if len(graph) < 30 {
		t.Fatalf("go list found %d packages; the module has more", len(graph))
	}
	for _, v := range Check(graph) {
		t.Error(v)
	}
}

// TestCheckFindsForbiddenImports feeds Check imports that break each rule
// (transport importing a domain, a domain importing another's role, the
// wire format importing anything above it, a folder in no layer) and the
// allowed ones beside them.
func TestCheckFindsForbiddenImports(t *testing.T) {
	m := func(rel string) string { return Module + "/" + rel }
	graph := map[string][]string{
		m("pipeline/sink"):      {m("aggregator"), m("pipeline/kafka"), m("schemas/codec"), "fmt"},
		m("schemas/codec"):      {m("pipeline/kafka"), m("schemas/tpflowpb")},
		m("alerting/alert"):     {m("aggregator"), m("aggregator/aggregate")},
		m("collectors/collect"): {m("aggregator"), m("collectors/logtail"), m("internal/config")},
		m("report"):             {m("cmd/tpflow")},
		m("cmd/tpflow"):         {m("aggregator/aggregate"), m("internal/devtools/demo")},
		m("newfolder/x"):        nil,
		m("control/store"):      {m("collectors/topology"), m("collectors/collect"), m("pipeline/clickhouse")},
	}
	got := strings.Join(Check(graph), "\n")
	for _, want := range []string{
		"pipeline/sink (transport) imports aggregator (aggregator)",
		"schemas/codec (wire) imports pipeline/kafka (transport)",
		"alerting/alert (alerting) imports aggregator/aggregate (aggregator)",
		"collectors/collect (collectors) imports aggregator (aggregator)",
		"report (report) imports cmd/tpflow (commands)",
		"newfolder/x: in no layer",
		"control/store (control) imports collectors/collect (collectors)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("Check missed %q; it said:\n%s", want, got)
		}
	}
	for _, ok := range []string{"imports pipeline/kafka (transport)\n", "alerting/alert (alerting) imports aggregator (", "imports collectors/logtail", "imports internal/config", "cmd/tpflow (commands) imports", "imports collectors/topology", "control/store (control) imports pipeline"} {
		if strings.Contains(got+"\n", ok) {
			t.Errorf("Check refused an allowed import (%q):\n%s", ok, got)
		}
	}
	if n := len(Check(graph)); n != 7 {
		t.Errorf("%d violations, want 7:\n%s", n, got)
	}
}
