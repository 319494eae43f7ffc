package dashboards

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest/chdb"
)

// TestChangeMarkersOnClickHouse runs the change-marker annotation of the TP
// and QPS dashboards against a real ClickHouse holding operations of
// several systems: it shows the global changes and those of the selected
// system and app, in time order, and no others.
func TestChangeMarkersOnClickHouse(t *testing.T) {
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	var sqls []string
	for _, f := range []string{"dashboards/service-overview.json", "dashboards/method-detail.json"} {
		var d struct {
			Annotations struct {
				List []struct {
					Name       string
					Datasource struct{ UID string }
					Target     struct{ RawSQL string }
				}
			}
		}
		if err := json.Unmarshal(files[f], &d); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, a := range d.Annotations.List {
			if a.Name == ChangeMarkers && a.Datasource.UID == ClickHouseUID && a.Target.RawSQL != "" {
				found = true
				sqls = append(sqls, a.Target.RawSQL)
			}
		}
		if !found {
			t.Errorf("%s has no %q annotation on ClickHouse", f, ChangeMarkers)
		}
	}

	conn, cfg := chdb.Shared(t)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+cfg.Database+".operations (id, ts, who, target, action, system, app, group_name, before, after, result, reason)")
	if err != nil {
		t.Fatal(err)
	}
	rows := []struct {
		id                         uint64
		min                        int
		who, target, sys, app, why string
	}{
		{1, 1, "olga", "config:global", "", "", ""},
		{2, 2, "olga", "config:app:shop/cart", "shop", "cart", "raise key cap"},
		{3, 3, "adam", "config:app:shop/pay", "shop", "pay", ""},
		{4, 4, "adam", "config:system:bank", "bank", "", ""},
		{5, 5, "olga", "config:system:shop", "shop", "", ""},
		{6, 90, "olga", "config:global", "", "", ""}, // outside the range
	}
	for _, r := range rows {
		for range 2 { // a row exported twice is one marker
			if err := b.Append(r.id, t0.Add(time.Duration(r.min)*time.Minute), r.who, r.target, "config.create", r.sys, r.app, "", "", "", "ok", r.why); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	env := Env{From: t0, To: t0.Add(time.Hour), Interval: time.Minute,
		Vars: map[string]Var{"system": {Values: []string{"shop"}, Multi: true}, "app": {Values: []string{"cart"}, Multi: true}}}
	for _, q := range sqls {
		sql, err := Expand(q, env)
		if err != nil {
			t.Fatal(err)
		}
		got := runSQL(t, conn, strings.ReplaceAll(sql, "FROM operations", "FROM "+cfg.Database+".operations"))
		if !slices.Equal(got.cols, []string{"time", "text", "tags"}) {
			t.Fatalf("columns %v, want time, text, tags", got.cols)
		}
		var texts []string
		for _, r := range got.rows {
			texts = append(texts, r[1].(string))
		}
		want := []string{"olga: config.create config:global", "olga: config.create config:app:shop/cart (raise key cap)", "olga: config.create config:system:shop"}
		if !slices.Equal(texts, want) {
			t.Errorf("markers %q\nwant %q", texts, want)
		}
	}
}
