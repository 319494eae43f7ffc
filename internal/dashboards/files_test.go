package dashboards

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

const deployDir = "../../deploy/grafana"

// storedPercentile matches the per-pane percentile columns of call_panes,
// which no panel may aggregate: percentiles do not average.
var storedPercentile = regexp.MustCompile(`\bp(50|90|99|999)_us\b`)

// TestCommittedFilesAreFresh fails when deploy/grafana differs from what
// the generator builds: run `make generate` (or go generate
// ./internal/dashboards) and commit the result.
func TestCommittedFilesAreFresh(t *testing.T) {
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(deployDir, filepath.FromSlash(name)))
		if err != nil {
			t.Errorf("%s: %v; run make generate", name, err)
			continue
		}
		if string(got) != string(want) {
			t.Errorf("%s is stale: it differs from the generator's output; run make generate and commit it", name)
		}
	}
	committed, err := filepath.Glob(filepath.Join(deployDir, "dashboards", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range committed {
		if _, ok := files["dashboards/"+filepath.Base(f)]; !ok {
			t.Errorf("%s is not generated any more; run make generate", f)
		}
	}
	if len(committed) == 0 {
		t.Error("no committed dashboards")
	}
}

// jsonPanel is the part of a generated panel the tests read, decoded from
// the JSON Grafana loads.
type jsonPanel struct {
	Type          string   `json:"type"`
	Title         string   `json:"title"`
	MaxDataPoints *float64 `json:"maxDataPoints"`
	Interval      string   `json:"interval"`
	Datasource    struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		RefID      string `json:"refId"`
		RawSQL     string `json:"rawSql"`
		Expr       string `json:"expr"`
		Format     *int   `json:"format"`
		Datasource struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
}

type jsonDashboard struct {
	UID        string      `json:"uid"`
	Title      string      `json:"title"`
	Panels     []jsonPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Query      string `json:"query"`
			Multi      bool   `json:"multi"`
			IncludeAll bool   `json:"includeAll"`
			AllValue   string `json:"allValue"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

// generated decodes every generated dashboard from its JSON.
func generated(t testing.TB) []jsonDashboard {
	t.Helper()
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	var out []jsonDashboard
	for name, data := range files {
		if !strings.HasPrefix(name, "dashboards/") {
			continue
		}
		var d jsonDashboard
		if err := json.Unmarshal(data, &d); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, d)
	}
	if len(out) != 5 {
		t.Fatalf("%d dashboards generated, want 5", len(out))
	}
	return out
}

func TestDashboardsAreWellFormed(t *testing.T) {
	uids := map[string]bool{}
	for _, d := range generated(t) {
		if d.UID == "" || uids[d.UID] {
			t.Errorf("dashboard %q: empty or duplicate uid %q", d.Title, d.UID)
		}
		uids[d.UID] = true
		titles := map[string]bool{}
		for _, p := range d.Panels {
			if titles[p.Title] {
				t.Errorf("%s: duplicate panel title %q", d.UID, p.Title)
			}
			titles[p.Title] = true
			if len(p.Targets) == 0 {
				t.Errorf("%s/%s: no queries", d.UID, p.Title)
			}
			for _, q := range p.Targets {
				if q.Datasource != p.Datasource {
					t.Errorf("%s/%s/%s: query data source %v differs from the panel's %v", d.UID, p.Title, q.RefID, q.Datasource, p.Datasource)
				}
				switch p.Datasource.UID {
				case ClickHouseUID:
					if q.RawSQL == "" || q.Format == nil {
						t.Errorf("%s/%s/%s: ClickHouse query without rawSql or format", d.UID, p.Title, q.RefID)
					}
					if storedPercentile.MatchString(q.RawSQL) {
						t.Errorf("%s/%s: reads stored per-pane percentiles; merge centroids instead", d.UID, p.Title)
					}
				case PrometheusUID:
					if q.Expr == "" {
						t.Errorf("%s/%s/%s: Prometheus query without expr", d.UID, p.Title, q.RefID)
					}
				default:
					t.Errorf("%s/%s: unknown data source %q", d.UID, p.Title, p.Datasource.UID)
				}
			}
		}
		for _, v := range d.Templating.List {
			if v.Datasource.UID != ClickHouseUID || v.Query == "" {
				t.Errorf("%s: variable %s is not a ClickHouse query", d.UID, v.Name)
			}
			if v.AllValue != "" {
				t.Errorf("%s: variable %s has a custom all value, which Expand does not model", d.UID, v.Name)
			}
			if v.IncludeAll != v.Multi {
				t.Errorf("%s: variable %s: includeAll %v, multi %v", d.UID, v.Name, v.IncludeAll, v.Multi)
			}
		}
	}
	// The provisioned data sources are the ones the panels name.
	files, _ := Files()
	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			Name, Type, UID string
			JSONData        map[string]any `yaml:"jsonData"`
		} `yaml:"datasources"`
	}
	if err := yaml.Unmarshal(files["provisioning/datasources/tpflow.yaml"], &ds); err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	for _, d := range ds.Datasources {
		types[d.UID] = d.Type
	}
	if ds.APIVersion != 1 || len(ds.Datasources) != 2 || types[ClickHouseUID] != ClickHouseType || types[PrometheusUID] != PrometheusType {
		t.Errorf("datasources provisioning: %+v", ds)
	}
	for _, d := range ds.Datasources {
		if d.Type == ClickHouseType && (d.JSONData["protocol"] != "native" || d.JSONData["defaultDatabase"] == nil) {
			t.Errorf("ClickHouse data source: jsonData %v lacks the native protocol or the default database", d.JSONData)
		}
		// Grafana reads as the least-privilege user of tpflow migrate.
		if d.Type == ClickHouseType && d.JSONData["username"] != "${CLICKHOUSE_READONLY_USER}" {
			t.Errorf("ClickHouse data source: username %v, want the read-only user ${CLICKHOUSE_READONLY_USER}", d.JSONData["username"])
		}
	}
	var prov struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Type    string
			Options struct{ Path string }
		} `yaml:"providers"`
	}
	if err := yaml.Unmarshal(files["provisioning/dashboards/tpflow.yaml"], &prov); err != nil {
		t.Fatal(err)
	}
	if prov.APIVersion != 1 || len(prov.Providers) != 1 || prov.Providers[0].Type != "file" || prov.Providers[0].Options.Path == "" {
		t.Errorf("dashboards provisioning: %+v", prov)
	}
}

func TestExpand(t *testing.T) {
	env := Env{
		From:     time.Unix(1700000000, 900e6),
		To:       time.Unix(1700003600, 0),
		Interval: 60 * time.Second,
		Vars: map[string]Var{
			"system": {Values: []string{"shop", "pay"}, Multi: true},
			"one":    {Values: []string{"cart"}, Multi: true},
			"method": {Values: []string{"Get"}},
			"odd":    {Values: []string{"it's"}, Multi: true},
			"none":   {Multi: true},
		},
	}
	f := func(in, want string) {
		t.Helper()
		got, err := Expand(in, env)
		if err != nil {
			t.Fatalf("Expand(%q): %v", in, err)
		}
		if got != want {
			t.Errorf("Expand(%q)\n got %q\nwant %q", in, got, want)
		}
	}
	f("WHERE $__timeFilter(pane_start)", "WHERE pane_start >= toDateTime(1700000000) AND pane_start <= toDateTime(1700003600)")
	f("$__fromTime, $__toTime", "toDateTime(1700000000), toDateTime(1700003600)")
	f("intDiv(x, $__interval_s) * $__interval_s", "intDiv(x, 60) * 60")
	f("$__timeInterval(ts)", "toStartOfInterval(toDateTime(ts), INTERVAL 60 second)")
	f("system IN (${system:singlequote})", "system IN ('shop','pay')")
	f("system IN (${system})", "system IN ('shop','pay')")
	f("app IN ($one)", "app IN ('cart')")
	f("method = '${method}'", "method = 'Get'")
	f("x IN (${odd:singlequote})", `x IN ('it\'s')`)
	f("x IN (${none:singlequote})", "x IN ('')")
	f("no macros", "no macros")

	bad := func(in, why string) {
		t.Helper()
		if got, err := Expand(in, env); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("Expand(%q) = %q, %v; want an error containing %q", in, got, err, why)
		}
	}
	bad("$__rate_interval", "not supported")
	bad("$__timeFilter()", "wrong arguments")
	bad("$__timeFilter", "wrong arguments")
	bad("$__fromTime(x)", "wrong arguments")
	bad("${nope}", "no value")
	bad("${system:csv}", "not supported")
	env.Vars["method"] = Var{Values: []string{"a", "b"}}
	bad("$method", "has 2 values")

	env.Interval = 0
	f("$__interval_s", "1")
}
