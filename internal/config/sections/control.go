package sections

import (
	"fmt"
	"path"
	"strings"

	"github.com/tpflow/tpflow/alerting"
	"github.com/tpflow/tpflow/collectors/topology"
)

// The control section's key descriptions, kept beside the validator the
// control plane runs on every configuration version.
var controlDocs = map[string]string{
	"control":                       "The control plane (tpflow control): its store and the operations export. It serves on http.listen and authenticates with http.auth, which must hold an operator or admin credential.",
	"control.store":                 "A SQLite file path (created with its directory) or a postgres:// URL for several replicas on one PostgreSQL (password in PGPASSWORD or ~/.pgpass); --store overrides.",
	"control.operations":            "Export of the operation history to the ClickHouse table operations (change markers on the dashboards).",
	"control.operations.export":     "Write every operation to ClickHouse (the clickhouse section); operations wait in the store while ClickHouse is down.",
	"control.operations.batch_size": "Most operations written in one insert (1-100000).",
	"control.operations.interval":   "How often the queue is checked when no write woke the exporter, and the first pause after a failed export (10ms-1h).",
	"control.rollout_interval":      "How often the leading replica steps the running rollouts, and the others try to lead (10ms-1m).",
}

func init() {
	for k, v := range controlDocs {
		keyDocs[k] = v
	}
}

// ValidateFile is the check the control plane runs on every file of a
// configuration version, with the loaders the roles run when they read
// the same file: tpflow.yaml (and any NAME.tpflow.yaml) is the tpflow
// configuration, loaded onto the defaults and validated section by
// section; topology.yaml is a collector topology file; a .yaml file under
// rules/ is an alert rules file. Any other name is refused, so that a
// typo cannot ship a file no role reads. Errors name the file, line and
// column of every problem.
func ValidateFile(name string, body []byte) error {
	base := path.Base(name)
	switch {
	case base == "tpflow.yaml" || strings.HasSuffix(base, ".tpflow.yaml"):
		_, err := Load(name, body, nil)
		return err
	case base == "topology.yaml":
		if _, err := topology.Parse(body); err != nil {
			return prefixed(name, err)
		}
		return nil
	case strings.HasPrefix(name, "rules/") && (path.Ext(name) == ".yaml" || path.Ext(name) == ".yml"):
		_, err := alerting.ParseRules(name, body)
		return err
	}
	return fmt.Errorf("%s: unknown file: want tpflow.yaml (or NAME.tpflow.yaml), topology.yaml, or rules/NAME.yaml", name)
}

// prefixed puts the file name in front of every line of err (the
// topology parser's lines start with LINE:COLUMN).
func prefixed(name string, err error) error {
	lines := strings.Split(strings.TrimSpace(err.Error()), "\n")
	for i, l := range lines {
		lines[i] = name + ":" + l
	}
	return fmt.Errorf("%s", strings.Join(lines, "\n"))
}
