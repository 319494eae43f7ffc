package report

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/schemas"
)

// TopologyQuery asks which systems, apps, groups and IDCs have call or
// resource panes starting in [From, To).
type TopologyQuery struct {
	Database string
	// Selector restricts the answer; its Method is ignored.
	Selector clickhouse.Selector
	From, To time.Time
}

// Topo is the answer to a TopologyQuery: systems → apps → groups → IDCs,
// each level sorted by name.
type Topo struct {
	Systems []TopoSystem `json:"systems"`
}

// TopoSystem is one system and its apps.
type TopoSystem struct {
	Name string    `json:"name"`
	Apps []TopoApp `json:"apps"`
}

// TopoApp is one app and its groups.
type TopoApp struct {
	Name   string      `json:"name"`
	Groups []TopoGroup `json:"groups"`
}

// TopoGroup is one group and the IDCs it was seen in.
type TopoGroup struct {
	Name string   `json:"name"`
	IDCs []string `json:"idcs"`
}

// Topology runs q.
func Topology(ctx context.Context, conn driver.Conn, q TopologyQuery) (Topo, error) {
	type key struct{ s, a, g, i string }
	seen := map[key]bool{}
	for _, table := range []string{"call_panes", "resource_panes"} {
		s := clickhouse.SQL{Database: q.Database}
		fmt.Fprintf(&s, "SELECT DISTINCT %s FROM %s WHERE ", schemas.KeyColumns(len(Levels)), s.Table(table))
		s.PaneRange(q.From, q.To)
		s.Match(resourceMatches(q.Selector))
		rows, err := conn.Query(ctx, s.String(), s.Args...)
		if err != nil {
			return Topo{}, fmt.Errorf("cannot query topology from %s: %w", table, err)
		}
		for rows.Next() {
			var k key
			if err := rows.Scan(&k.s, &k.a, &k.g, &k.i); err != nil {
				rows.Close()
				return Topo{}, fmt.Errorf("cannot scan topology: %w", err)
			}
			seen[k] = true
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return Topo{}, fmt.Errorf("cannot query topology from %s: %w", table, err)
		}
	}
	keys := make([]key, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y key) int {
		return strings.Compare(x.s+"\x00"+x.a+"\x00"+x.g+"\x00"+x.i, y.s+"\x00"+y.a+"\x00"+y.g+"\x00"+y.i)
	})
	t := Topo{Systems: []TopoSystem{}}
	for _, k := range keys {
		if n := len(t.Systems); n == 0 || t.Systems[n-1].Name != k.s {
			t.Systems = append(t.Systems, TopoSystem{Name: k.s, Apps: []TopoApp{}})
		}
		s := &t.Systems[len(t.Systems)-1]
		if n := len(s.Apps); n == 0 || s.Apps[n-1].Name != k.a {
			s.Apps = append(s.Apps, TopoApp{Name: k.a, Groups: []TopoGroup{}})
		}
		a := &s.Apps[len(s.Apps)-1]
		if n := len(a.Groups); n == 0 || a.Groups[n-1].Name != k.g {
			a.Groups = append(a.Groups, TopoGroup{Name: k.g, IDCs: []string{}})
		}
		g := &a.Groups[len(a.Groups)-1]
		g.IDCs = append(g.IDCs, k.i)
	}
	return t, nil
}

// IDCsUnder returns the sorted IDCs seen under the labels (system, then
// app, group, idc; a shorter list matches more).
func (t Topo) IDCsUnder(labels []string) []string {
	set := map[string]bool{}
	for _, s := range t.Systems {
		if len(labels) > 0 && s.Name != labels[0] {
			continue
		}
		for _, a := range s.Apps {
			if len(labels) > 1 && a.Name != labels[1] {
				continue
			}
			for _, g := range a.Groups {
				if len(labels) > 2 && g.Name != labels[2] {
					continue
				}
				for _, i := range g.IDCs {
					if len(labels) > 3 && i != labels[3] {
						continue
					}
					set[i] = true
				}
			}
		}
	}
	out := make([]string, 0, len(set))
	for i := range set {
		out = append(out, i)
	}
	slices.Sort(out)
	return out
}
