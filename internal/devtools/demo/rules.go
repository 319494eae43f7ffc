package demo

import (
	"bytes"
	_ "embed"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"text/template"
	"time"
)

//go:embed rules.yaml
var rulesYAML string

// rulesTmpl fills the per-run values of rules.yaml; [[ ]] leaves the
// alerts' own {{ }} templates alone.
var rulesTmpl = template.Must(template.New("rules.yaml").Delims("[[", "]]").Option("missingkey=error").Parse(rulesYAML))

// z99 is the standard normal quantile of 0.99: a lognormal's TP99 is its
// median × exp(z99 × sigma).
const z99 = 2.3263

// RulesParams are the values of the demo alert rules.
type RulesParams struct {
	IncidentSystem, IncidentApp, IncidentMethod string
	ErrorSystem, ErrorApp                       string
	// Window is the rules' window, For how long a condition must hold.
	Window, For time.Duration
	// TP99Normal is the incident method's TP99 outside the incident,
	// TP99Threshold the geometric mean of it and the incident's TP99.
	TP99Normal, TP99Threshold time.Duration
	// ErrorThreshold is a quarter of the way from the base error rate to
	// the burst's, so that one pane of the burst in a window of three
	// crosses it.
	ErrorThreshold string
}

// RulesParams returns the values of the demo alert rules of g for panes of
// length pane: a window of three panes, so that a fault dominates it from
// its first final pane and it clears three panes after the fault ends, and
// a for of one pane.
func (g *Generator) RulesParams(pane time.Duration) RulesParams {
	p := RulesParams{
		IncidentSystem: g.incident.System, IncidentApp: g.incident.App, IncidentMethod: g.incident.Method,
		ErrorSystem: g.errApp[0], ErrorApp: g.errApp[1],
		Window: 3 * pane, For: pane,
	}
	for _, s := range g.series {
		if s.System == g.incident.System && s.App == g.incident.App && s.Method == g.incident.Method {
			us := s.medianUs * math.Exp(z99*s.sigma)
			p.TP99Normal = time.Duration(us * float64(time.Microsecond)).Round(time.Microsecond)
			p.TP99Threshold = time.Duration(us * math.Sqrt(g.cfg.IncidentFactor) * float64(time.Microsecond)).Round(time.Microsecond)
			break
		}
	}
	p.ErrorThreshold = strconv.FormatFloat(g.cfg.BaseErrorRate+(g.cfg.ErrorBurstRate-g.cfg.BaseErrorRate)/4, 'g', 4, 64)
	return p
}

// Rules returns the demo alert rules file of g for panes of length pane
// (see RulesParams): DemoLatencyIncident on the TP99 of the incident
// method, DemoErrorBurst on the error rate of the error burst app. It is
// an ordinary rules file, for the alert role's loader.
func (g *Generator) Rules(pane time.Duration) []byte {
	var b bytes.Buffer
	if err := rulesTmpl.Execute(&b, g.RulesParams(pane)); err != nil {
		panic(fmt.Sprintf("BUG: demo rules template: %v", err))
	}
	return b.Bytes()
}

// RulesFile is the name of the file WriteRules writes in its directory.
const RulesFile = "demo-rules.yaml"

// WriteRules writes the rules of g for panes of length pane (Rules) to
// dir/RulesFile, creating dir, and returns the file's path, for the alert
// role to load like any rules file.
func (g *Generator) WriteRules(dir string, pane time.Duration) (string, error) {
	path := filepath.Join(dir, RulesFile)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("cannot write the demo alert rules: %w", err)
	}
	if err := os.WriteFile(path, g.Rules(pane), 0o644); err != nil {
		return "", fmt.Errorf("cannot write the demo alert rules: %w", err)
	}
	return path, nil
}
