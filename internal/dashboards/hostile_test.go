package dashboards

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest/chdb"
	"github.com/tpflow/tpflow/schemas"
)

// literals splits ClickHouse SQL into its skeleton, with every single-quoted
// string literal replaced by ”, and the decoded literals. Inside a
// literal ClickHouse reads \x as an escape and ” as a quote.
func literals(sql string) (skeleton string, lits []string) {
	var sk, lit strings.Builder
	in := false
	for i := 0; i < len(sql); i++ {
		c := sql[i]
		switch {
		case !in && c == '\'':
			in = true
			lit.Reset()
		case !in:
			sk.WriteByte(c)
		case c == '\\' && i+1 < len(sql):
			i++
			switch sql[i] {
			case 'n':
				lit.WriteByte('\n')
			case 't':
				lit.WriteByte('\t')
			default:
				lit.WriteByte(sql[i])
			}
		case c == '\'' && i+1 < len(sql) && sql[i+1] == '\'':
			i++
			lit.WriteByte('\'')
		case c == '\'':
			in = false
			sk.WriteString("''")
			lits = append(lits, lit.String())
		default:
			lit.WriteByte(c)
		}
	}
	if in {
		sk.WriteString("'<unterminated>")
	}
	return sk.String(), lits
}

// hostileRender expands every ClickHouse query of the dashboards (variable
// queries and panel targets) with every variable set to values, and with
// every variable set to "v", and returns the pairs.
func hostileRender(t *testing.T, values []string) (rendered, benign []string) {
	t.Helper()
	from := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	for _, dash := range generated(t) {
		env := Env{From: from, To: from.Add(time.Hour), Interval: time.Minute, Vars: map[string]Var{}}
		plain := Env{From: env.From, To: env.To, Interval: env.Interval, Vars: map[string]Var{}}
		var sqls []string
		for _, v := range dash.Templating.List {
			vals := values
			if !v.Multi {
				vals = values[:1]
			}
			env.Vars[v.Name] = Var{Values: vals, Multi: v.Multi}
			plain.Vars[v.Name] = Var{Values: slices.Repeat([]string{"v"}, len(vals)), Multi: v.Multi}
			if v.Datasource.UID == ClickHouseUID {
				sqls = append(sqls, v.Query)
			}
		}
		for _, p := range dash.Panels {
			if p.Datasource.UID != ClickHouseUID {
				continue
			}
			for _, q := range p.Targets {
				sqls = append(sqls, q.RawSQL)
			}
		}
		for _, sql := range sqls {
			got, err := Expand(sql, env)
			if err != nil {
				t.Fatalf("%s: %v", dash.UID, err)
			}
			want, err := Expand(sql, plain)
			if err != nil {
				t.Fatalf("%s: %v", dash.UID, err)
			}
			rendered, benign = append(rendered, got), append(benign, want)
		}
	}
	return rendered, benign
}

// TestPanelSQLKeepsHostileLabelValuesInLiterals expands every ClickHouse
// query of the dashboards with label values an attacker would choose and
// checks, on the SQL and on the server, that each value stays inside its
// string literal: the SQL outside the literals is the same as with a
// plain value, the literals decode to the values, and the server runs
// the query. The values that would break out (a backslash, a newline)
// are those schemas.CheckKeyLabelValue refuses where labels enter, and
// the test shows that they would.
func TestPanelSQLKeepsHostileLabelValuesInLiterals(t *testing.T) {
	conn, _ := chdb.Shared(t)
	accepted := []string{`'`, `it's`, `--`, `a' --`, `x' UNION SELECT 1 --`, `') OR 1=1 --`, `UNION`, `"`, "`", `${app}`, `$__timeFilter(x)`}
	sets := [][]string{accepted}
	for _, v := range accepted {
		sets = append(sets, []string{v})
	}
	queries := 0
	for _, values := range sets {
		for _, v := range values {
			if err := schemas.CheckKeyLabelValue(v); err != nil {
				t.Fatalf("%q: %v", v, err)
			}
		}
		rendered, benign := hostileRender(t, values)
		for i, sql := range rendered {
			sk, lits := literals(sql)
			want, _ := literals(benign[i])
			if sk != want {
				t.Errorf("values %q leave their literals:\n%s\nskeleton %s\nwant     %s", values, sql, sk, want)
				continue
			}
			for _, v := range values {
				if !slices.Contains(lits, v) && strings.Contains(benign[i], "'v'") {
					t.Errorf("no literal of %s decodes to %q: %q", sql, v, lits)
				}
			}
			rows, err := conn.Query(context.Background(), sql)
			if err != nil {
				t.Errorf("values %q: the server refuses the query: %v\n%s", values, err, sql)
				continue
			}
			rows.Close()
			queries++
		}
	}
	t.Logf("%d rendered queries checked on the server", queries)

	for _, v := range []string{`\'`, `\`, "a\n--", `x\' UNION SELECT 1 --`} {
		if schemas.CheckKeyLabelValue(v) == nil {
			t.Errorf("CheckKeyLabelValue(%q) accepts a value that Grafana's singlequote cannot quote", v)
		}
	}
	// Why: with a backslash, ${var:singlequote} ends the literal early.
	rendered, benign := hostileRender(t, []string{`x\' UNION SELECT 1 --`})
	broke := 0
	for i, sql := range rendered {
		sk, _ := literals(sql)
		if want, _ := literals(benign[i]); sk != want {
			broke++
		}
	}
	if broke == 0 {
		t.Error(`no query breaks out with x\' UNION SELECT 1 --: the dashboards no longer use singlequote, or literals() is wrong`)
	}
}
