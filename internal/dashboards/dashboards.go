// The classic dashboard JSON (schema v1) is what file provisioning loads on
// every Grafana from 9 on; the SDK marks it deprecated in favour of the v2
// schema, which needs Grafana 12 with a feature flag.
//
//lint:file-ignore SA1019 the v1 dashboard model is the one provisioning loads everywhere

package dashboards

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"

	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/schemas"
)

// Dashboard is one generated dashboard and the file it is written to.
type Dashboard struct {
	// File is the file name under deploy/grafana/dashboards.
	File string
	// Model is the dashboard as Grafana reads it.
	Model dashboard.Dashboard
}

// in returns " AND col IN (${var:singlequote})" for each variable, in order.
func in(vars ...string) string {
	s := clickhouse.SQL{Render: clickhouse.Macros}
	s.Match(clickhouse.Vars(vars...))
	return s.String()
}

// bucket is the start of the $__interval_s bucket of a DateTime column.
// ClickHouse 18.16 has no toStartOfInterval (the plugin's $__timeInterval),
// so the bucket is computed from the Unix time.
func bucket(col string) string {
	return "toDateTime(intDiv(toUInt32(" + col + "), $__interval_s) * $__interval_s)"
}

// Rollup gates: when a panel may read call_rollups. A time series may when
// its bucket is a multiple of the rollup, so that each rollup lies in one
// bucket; a table over the whole range may when the range is longer than
// an hour (shorter ranges hold at most 360 panes per key, cheap to read,
// and keep the panes' finer digests).
var (
	seriesGate = "$__interval_s % " + strconv.Itoa(clickhouse.RollupSeconds) + " = 0"
	tableGate  = "toUInt32($__toTime) - toUInt32($__fromTime) > 3600"
)

// callRows is the row source of every call panel: the columns cols of the
// call panes in the time range that match sel, read by clickhouse.CallRows
// (rollups where they exist, panes elsewhere) rendered with Grafana's
// macros. When gate is false the whole range comes from call_panes.
func callRows(cols string, sel []clickhouse.Match, gate string) string {
	s := clickhouse.SQL{Render: clickhouse.Macros}
	s.CallRows(clickhouse.CallRows{Columns: cols, Match: sel, Rollups: true, Gate: gate})
	return s.String()
}

// centroids is the row source of every latency quantile: the stored
// centroids of the selected panes (callRows), one row per centroid,
// deduplicated by FINAL before the ARRAY JOIN. i is the centroid's index in
// its pane, so that pane columns (count, errors) are summed once per pane
// with sumIf(col, i = 1). Weights are rounded to whole calls because
// quantilesExactWeighted takes integer weights.
func centroids(cols string, sel []clickhouse.Match, gate string) string {
	return callRows(cols+", centroid_means, centroid_weights", sel, gate) +
		clickhouse.CentroidJoin + ", arrayEnumerate(centroid_means) AS i"
}

// seriesPoints is the maxDataPoints of every ClickHouse time series: Grafana
// divides the range by it and rounds (rangeutil roundInterval), so a day
// (288 s) gets a 5m $__interval and every longer range a multiple of 5m
// (10m, 15m, 20m, 30m, 1h, ...), which lets the panels read call_rollups.
// Ranges up to 17.5 h get 2m or less and read call_panes.
const seriesPoints = 300

var tpLevels = must(clickhouse.QuantilesExactWeighted([]float64{0.5, 0.9, 0.99, 0.999}, "mean, w"))

func must(s string, err error) string {
	if err != nil {
		panic("BUG: " + err.Error())
	}
	return s
}

// panel is our description of one panel; build turns it into the SDK's.
type panel struct {
	kind        string // "timeseries", "table", "stat"
	title       string
	description string
	unit        string
	w, h        uint32
	targets     []cog.Builder[variants.Dataquery]
	interval    string // minimum $__interval
	link        string // a data link of a table's cells, title|url
}

func (p panel) build() cog.Builder[dashboard.Panel] {
	switch p.kind {
	case "timeseries":
		b := timeseries.NewPanelBuilder().Title(p.title).Description(p.description).Span(p.w).Height(p.h)
		if p.unit != "" {
			b.Unit(p.unit)
		}
		if p.interval != "" {
			b.Interval(p.interval)
		}
		if p.targets[0].(interface{ isPrometheus() bool }).isPrometheus() {
			b.Datasource(PrometheusRef)
		} else {
			b.Datasource(ClickHouseRef).MaxDataPoints(seriesPoints)
		}
		for _, t := range p.targets {
			b.WithTarget(t)
		}
		return b
	case "table":
		b := table.NewPanelBuilder().Title(p.title).Description(p.description).Span(p.w).Height(p.h).Datasource(ClickHouseRef)
		if p.unit != "" {
			b.Unit(p.unit)
		}
		if title, url, ok := strings.Cut(p.link, "|"); ok {
			b.DataLinks([]cog.Builder[dashboard.DashboardLink]{dashboard.NewDashboardLinkBuilder(title).Url(url)})
		}
		for _, t := range p.targets {
			b.WithTarget(t)
		}
		return b
	case "stat":
		b := stat.NewPanelBuilder().Title(p.title).Description(p.description).Span(p.w).Height(p.h).Datasource(ClickHouseRef)
		if p.unit != "" {
			b.Unit(p.unit)
		}
		for _, t := range p.targets {
			b.WithTarget(t)
		}
		return b
	}
	panic("BUG: unknown panel kind " + p.kind)
}

func (chBuilder) isPrometheus() bool { return false }

type promBuilder struct{ *prometheus.DataqueryBuilder }

func (promBuilder) isPrometheus() bool { return true }

func prom(refID, expr, legend string) promBuilder {
	return promBuilder{prometheus.NewDataqueryBuilder().RefId(refID).Datasource(PrometheusRef).Expr(expr).LegendFormat(legend).Range()}
}

// variable is a ClickHouse query variable over table's panes in the time
// range, narrowed by the variables before it (where). "All" expands to
// every option: no custom all value is set.
func variable(name, label, table, where string, multi bool) *dashboard.QueryVariableBuilder {
	col, ok := schemas.KeyColumn(name)
	if !ok {
		panic("BUG: unknown dashboard variable " + name)
	}
	q := fmt.Sprintf("SELECT DISTINCT %s FROM %s WHERE $__timeFilter(pane_start)%s ORDER BY %s", col, table, where, col)
	return dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Datasource(ClickHouseRef).
		Query(dashboard.StringOrMap{String: &q}).
		Definition(q).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc).
		Multi(multi).
		IncludeAll(multi)
}

// ChangeMarkers is the name of the annotation that marks, on the TP and
// QPS dashboards, every change the control plane recorded (the ClickHouse
// table operations): global ones, and those of the selected systems and
// apps.
const ChangeMarkers = "Changes"

// changeMarkers is the ChangeMarkers annotation over the variables.
func changeMarkers() *dashboard.AnnotationQueryBuilder {
	q := "SELECT ts AS time, concat(who, ': ', action, ' ', target, if(reason = '', '', concat(' (', reason, ')'))) AS text, action AS tags" +
		" FROM operations FINAL WHERE $__timeFilter(ts)" +
		" AND (system = '' OR system IN (${system:singlequote})) AND (app = '' OR app IN (${app:singlequote}))" +
		" ORDER BY ts, id"
	return dashboard.NewAnnotationQueryBuilder().
		Name(ChangeMarkers).
		Datasource(ClickHouseRef).
		Enable(true).
		IconColor("purple").
		Target(chTable("Changes", q))
}

func newDashboard(uid, title, description string, vars []*dashboard.QueryVariableBuilder, panels []panel, annotations ...*dashboard.AnnotationQueryBuilder) (dashboard.Dashboard, error) {
	b := dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Description(description).
		Tags([]string{"tpflow"}).
		Editable().
		Time("now-1h", "now").
		Refresh("1m").
		Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair)
	for _, v := range vars {
		b.WithVariable(v)
	}
	for _, a := range annotations {
		b.Annotation(a)
	}
	for _, p := range panels {
		b.WithPanel(p.build())
	}
	d, err := b.Build()
	if err != nil {
		return dashboard.Dashboard{}, fmt.Errorf("cannot build dashboard %s: %w", uid, err)
	}
	return d, nil
}

// callVars are the cascading system → app → group → idc variables over
// call_panes; each lists the values present under the ones before it.
func callVars() []*dashboard.QueryVariableBuilder {
	return cascade("call_panes", schemas.KeyLabelNames(4), "")
}

// cascade returns one variable per label of names over table's panes, in
// order, each narrowed by the ones before it; every one is multi-value
// but single.
func cascade(table string, names []string, single string) []*dashboard.QueryVariableBuilder {
	out := make([]*dashboard.QueryVariableBuilder, len(names))
	for i, n := range names {
		title := strings.ToUpper(n[:1]) + n[1:]
		if n == schemas.LabelIDC {
			title = "IDC"
		}
		out[i] = variable(n, title, table, in(names[:i]...), n != single)
	}
	return out
}

// All builds every dashboard, in file order.
func All() ([]Dashboard, error) {
	builders := []struct {
		file string
		fn   func() (dashboard.Dashboard, error)
	}{
		{"service-overview.json", serviceOverview},
		{"method-detail.json", methodDetail},
		{"resources.json", resources},
		{"alerts.json", alerts},
		{"pipeline-health.json", pipelineHealth},
	}
	out := make([]Dashboard, 0, len(builders))
	for _, b := range builders {
		d, err := b.fn()
		if err != nil {
			return nil, err
		}
		out = append(out, Dashboard{File: b.file, Model: d})
	}
	return out, nil
}

func serviceOverview() (dashboard.Dashboard, error) {
	sel := clickhouse.Vars(schemas.KeyLabelNames(4)...)
	return newDashboard("tpflow-service-overview", "tpflow / Service overview",
		"Traffic, errors and latency per system and app, from the aggregator's call panes. Percentiles are merged from the stored t-digest centroids of every pane in range, never averaged.",
		callVars(), []panel{
			{kind: "timeseries", title: "Calls per second by app", unit: "reqps", w: 12, h: 8, interval: "1m",
				description: "Calls in each interval divided by its length (the minimum interval is 1m, a multiple of the pane).",
				targets: []cog.Builder[variants.Dataquery]{chSeries("A",
					"SELECT "+bucket("pane_start")+" AS time, app AS series, sum(count) / $__interval_s AS qps"+
						" FROM "+callRows("pane_start, app, count", sel, seriesGate)+
						" GROUP BY time, series ORDER BY time, series")}},
			{kind: "timeseries", title: "Error rate by app", unit: "percentunit", w: 12, h: 8, interval: "1m",
				description: "Failed calls over all calls in each interval.",
				targets: []cog.Builder[variants.Dataquery]{chSeries("A",
					"SELECT "+bucket("pane_start")+" AS time, app AS series, sum(errors) / sum(count) AS error_rate"+
						" FROM "+callRows("pane_start, app, count, errors", sel, seriesGate)+
						" GROUP BY time, series ORDER BY time, series")}},
			{kind: "timeseries", title: "Latency TP50 / TP90 / TP99 / TP999", unit: "µs", w: 24, h: 9, interval: "1m",
				description: "Percentiles of every selected call in each interval, merged from the panes' centroids (quantilesExactWeighted over ARRAY JOIN).",
				targets: []cog.Builder[variants.Dataquery]{chSeries("A",
					"SELECT time, q[1] AS tp50, q[2] AS tp90, q[3] AS tp99, q[4] AS tp999 FROM ("+
						"SELECT "+bucket("pane_start")+" AS time, "+tpLevels+" AS q FROM "+
						centroids("pane_start", sel, seriesGate)+" GROUP BY time) ORDER BY time")}},
			{kind: "table", title: "Slowest methods", w: 24, h: 10,
				link:        "Method detail|/d/tpflow-method-detail?${system:queryparam}&var-app=${__data.fields.app_name}&var-method=${__data.fields.method_name}&${__url_time_range}",
				description: "The 20 methods with the highest TP99 over the whole range; calls and errors are exact, percentiles merged from centroids.",
				targets: []cog.Builder[variants.Dataquery]{chTable("A",
					"SELECT app_name, method_name, calls, calls / (toUInt32($__toTime) - toUInt32($__fromTime)) AS qps, errors_ / calls AS error_rate,"+
						" q[1] AS tp50_us, q[2] AS tp90_us, q[3] AS tp99_us, q[4] AS tp999_us, max_us_ FROM ("+
						"SELECT app AS app_name, method AS method_name, sumIf(count, i = 1) AS calls, sumIf(errors, i = 1) AS errors_,"+
						" "+tpLevels+" AS q, max(max_us) AS max_us_"+
						" FROM "+centroids("app, method, count, errors, max_us", sel, tableGate)+
						" GROUP BY app_name, method_name) ORDER BY tp99_us DESC, app_name, method_name LIMIT 20")}},
		}, changeMarkers())
}

func methodDetail() (dashboard.Dashboard, error) {
	// The method comes right after the app: one method across its groups
	// and IDCs.
	order := []string{schemas.LabelSystem, schemas.LabelApp, schemas.LabelMethod, schemas.LabelGroup, schemas.LabelIDC}
	vars := cascade("call_panes", order, schemas.LabelMethod)
	sel := clickhouse.Vars(order...)
	series := "concat(group_name, ' / ', idc)"
	return newDashboard("tpflow-method-detail", "tpflow / Method detail",
		"One method across its groups and IDCs. Percentiles are merged from stored centroids.",
		vars, []panel{
			{kind: "timeseries", title: "Calls per second by group / IDC", unit: "reqps", w: 12, h: 8, interval: "1m",
				targets: []cog.Builder[variants.Dataquery]{chSeries("A",
					"SELECT "+bucket("pane_start")+" AS time, "+series+" AS series, sum(count) / $__interval_s AS qps"+
						" FROM "+callRows("pane_start, group_name, idc, count", sel, seriesGate)+
						" GROUP BY time, series ORDER BY time, series")}},
			{kind: "timeseries", title: "TP99 by group / IDC", unit: "µs", w: 12, h: 8, interval: "1m",
				targets: []cog.Builder[variants.Dataquery]{chSeries("A",
					"SELECT "+bucket("pane_start")+" AS time, "+series+" AS series, quantileExactWeighted(0.99)(mean, w) AS tp99"+
						" FROM "+centroids("pane_start, group_name, idc", sel, seriesGate)+
						" GROUP BY time, series ORDER BY time, series")}},
			{kind: "timeseries", title: "Latency TP50 / TP90 / TP99 / TP999", unit: "µs", w: 24, h: 8, interval: "1m",
				targets: []cog.Builder[variants.Dataquery]{chSeries("A",
					"SELECT time, q[1] AS tp50, q[2] AS tp90, q[3] AS tp99, q[4] AS tp999 FROM ("+
						"SELECT "+bucket("pane_start")+" AS time, "+tpLevels+" AS q FROM "+
						centroids("pane_start", sel, seriesGate)+" GROUP BY time) ORDER BY time")}},
			{kind: "table", title: "By group and IDC", w: 24, h: 8,
				description: "Totals over the range; percentiles merged from centroids.",
				targets: []cog.Builder[variants.Dataquery]{chTable("A",
					"SELECT group_, idc_, calls, errors_, errors_ / calls AS error_rate,"+
						" q[1] AS tp50_us, q[2] AS tp90_us, q[3] AS tp99_us, q[4] AS tp999_us, max_us_ FROM ("+
						"SELECT group_name AS group_, idc AS idc_, sumIf(count, i = 1) AS calls, sumIf(errors, i = 1) AS errors_,"+
						" "+tpLevels+" AS q, max(max_us) AS max_us_"+
						" FROM "+centroids("group_name, idc, count, errors, max_us", sel, tableGate)+
						" GROUP BY group_, idc_) ORDER BY group_, idc_")}},
		}, changeMarkers())
}

// Resource metric names, as the collector reports them (collectors/metrics)
// and the aggregator keeps them in resource_panes (gauges only).
const (
	MetricCPUCores        = "container_cpu_usage_cores"
	MetricCPULimit        = "container_cpu_limit_cores"
	MetricMemWorkingSet   = "container_memory_working_set_bytes"
	MetricMemLimit        = "container_memory_limit_bytes"
	MetricCFSPeriods      = "container_cpu_cfs_periods_total"
	MetricCFSThrottled    = "container_cpu_cfs_throttled_periods_total"
	MetricCFSThrottledSec = "container_cpu_cfs_throttled_seconds_total"
)

// unlimited is the threshold above which a memory limit means "none"
// (cgroup v1 reports 2^63 rounded down to a page).
const unlimited = "1e18"

func resources() (dashboard.Dashboard, error) {
	vars := cascade("resource_panes", schemas.KeyLabelNames(4), "")
	sel := in(schemas.KeyLabelNames(4)...)
	series := "concat(group_name, ' / ', idc)"
	q := func(s string) string { return "'" + s + "'" }
	return newDashboard("tpflow-resources", "tpflow / Resources",
		"CPU (used, limit, utilisation of the limit) and memory of the containers per group and IDC, from the aggregator's resource panes; throttling from the raw cgroup counters.",
		vars, []panel{
			{kind: "timeseries", title: "CPU cores used vs. limit by group / IDC", unit: "short", w: 12, h: 8, interval: "1m",
				description: "Sum over the containers of each pane's average cores used, and of the CPU quotas (container_cpu_limit_cores) of the containers that have one (a limit of 0 means none and is left out), averaged over the panes of the interval.",
				targets: []cog.Builder[variants.Dataquery]{chSeries("A",
					"SELECT time, series, avg(used) AS cpu_cores, avg(lim) AS limit_cores FROM ("+
						"SELECT "+bucket("pane_start")+" AS time, "+series+" AS series, pane_start,"+
						" sumIf(avg, name = "+q(MetricCPUCores)+") AS used,"+
						" sumIf(avg, name = "+q(MetricCPULimit)+" AND avg > 0) AS lim"+
						" FROM resource_panes FINAL WHERE $__timeFilter(pane_start) AND name IN ("+q(MetricCPUCores)+", "+q(MetricCPULimit)+")"+sel+
						" GROUP BY time, series, pane_start) GROUP BY time, series ORDER BY time, series")}},
			{kind: "timeseries", title: "CPU utilisation of the limit by group / IDC", unit: "percentunit", w: 12, h: 8, interval: "1m",
				description: "Cores used over cores allowed, for the containers that have a CPU quota: Σ used / Σ limit over their panes in the interval (containers without a limit, or without a usage reading in a pane, are left out of that pane). Above 100 % the quota is exceeded on average, which the throttling table shows.",
				targets: []cog.Builder[variants.Dataquery]{chSeries("A",
					"SELECT time, series, sum(used) / sum(lim) AS cpu_utilisation FROM ("+
						"SELECT "+bucket("pane_start")+" AS time, "+series+" AS series, pane_start, host, container,"+
						" sumIf(avg, name = "+q(MetricCPUCores)+") AS used, countIf(name = "+q(MetricCPUCores)+") AS readings,"+
						" sumIf(avg, name = "+q(MetricCPULimit)+") AS lim"+
						" FROM resource_panes FINAL WHERE $__timeFilter(pane_start) AND name IN ("+q(MetricCPUCores)+", "+q(MetricCPULimit)+")"+sel+
						" GROUP BY time, series, pane_start, host, container) WHERE lim > 0 AND readings > 0 GROUP BY time, series ORDER BY time, series")}},
			{kind: "timeseries", title: "Memory working set vs. limit by group / IDC", unit: "bytes", w: 12, h: 8, interval: "1m",
				description: "Sum over the containers of each pane's average working set and of their limits (containers without a limit are left out of the limit), averaged over the panes of the interval.",
				targets: []cog.Builder[variants.Dataquery]{chSeries("A",
					"SELECT time, series, avg(used) AS used_bytes, avg(lim) AS limit_bytes FROM ("+
						"SELECT "+bucket("pane_start")+" AS time, "+series+" AS series, pane_start,"+
						" sumIf(avg, name = "+q(MetricMemWorkingSet)+") AS used,"+
						" sumIf(avg, name = "+q(MetricMemLimit)+" AND avg < "+unlimited+") AS lim"+
						" FROM resource_panes FINAL WHERE $__timeFilter(pane_start) AND name IN ("+q(MetricMemWorkingSet)+", "+q(MetricMemLimit)+")"+sel+
						" GROUP BY time, series, pane_start) GROUP BY time, series ORDER BY time, series")}},
			{kind: "table", title: "Top containers by CPU", w: 24, h: 9,
				description: "The 20 containers with the highest average CPU over the range: averages are Σ(avg·count)/Σcount over the panes, maxima the max of the pane maxima. A limit of 0 means none.",
				targets: []cog.Builder[variants.Dataquery]{chTable("A",
					"SELECT host AS host_, container AS container_, any(app) AS app_name, any(group_name) AS group_, any(idc) AS idc_,"+
						" sumIf(avg * count, name = "+q(MetricCPUCores)+") / sumIf(count, name = "+q(MetricCPUCores)+") AS cpu_avg_cores,"+
						" maxIf(max, name = "+q(MetricCPUCores)+") AS cpu_max_cores,"+
						" sumIf(avg * count, name = "+q(MetricMemWorkingSet)+") / sumIf(count, name = "+q(MetricMemWorkingSet)+") AS mem_avg_bytes,"+
						" maxIf(max, name = "+q(MetricMemWorkingSet)+") AS mem_max_bytes,"+
						" maxIf(max, name = "+q(MetricMemLimit)+" AND max < "+unlimited+") AS mem_limit_bytes"+
						" FROM resource_panes FINAL WHERE $__timeFilter(pane_start) AND name IN ("+q(MetricCPUCores)+", "+q(MetricMemWorkingSet)+", "+q(MetricMemLimit)+")"+sel+
						" GROUP BY host_, container_ ORDER BY cpu_avg_cores DESC, host_, container_ LIMIT 20")}},
			{kind: "table", title: "CPU throttling", w: 24, h: 9,
				description: "Containers throttled by their CPU quota in the range: the increase of the CFS counters (max − min of the raw samples; a counter reset in the range understates it), throttled periods over all periods.",
				targets: []cog.Builder[variants.Dataquery]{chTable("A",
					"SELECT host AS host_, container AS container_, any(app) AS app_name, any(group_name) AS group_, any(idc) AS idc_,"+
						" maxIf(value, name = "+q(MetricCFSThrottled)+") - minIf(value, name = "+q(MetricCFSThrottled)+") AS throttled_periods,"+
						" maxIf(value, name = "+q(MetricCFSPeriods)+") - minIf(value, name = "+q(MetricCFSPeriods)+") AS periods,"+
						" throttled_periods / periods AS throttled_ratio,"+
						" maxIf(value, name = "+q(MetricCFSThrottledSec)+") - minIf(value, name = "+q(MetricCFSThrottledSec)+") AS throttled_seconds"+
						" FROM metric_samples WHERE $__timeFilter(ts) AND name IN ("+q(MetricCFSPeriods)+", "+q(MetricCFSThrottled)+", "+q(MetricCFSThrottledSec)+")"+sel+
						" GROUP BY host_, container_ HAVING throttled_periods > 0 ORDER BY throttled_ratio DESC, host_, container_ LIMIT 20")}},
		})
}

func alerts() (dashboard.Dashboard, error) {
	// rank orders the changes of one alert: by time, then pending < firing
	// < resolved for changes in the same second.
	rank := "toUInt64(ts) * 4 + multiIf(state = 'pending', 1, state = 'firing', 2, 3)"
	return newDashboard("tpflow-alerts", "tpflow / Alerts",
		"Alerts firing at the end of the range and the history of state changes, from the alerts table.",
		nil, []panel{
			{kind: "table", title: "Firing now", w: 24, h: 8,
				description: "Alerts whose last change at or before the end of the range is firing.",
				targets: []cog.Builder[variants.Dataquery]{chTable("A",
					"SELECT rule_, fingerprint_, firing_since, value_, system_, app_, group_, idc_ FROM ("+
						"SELECT rule AS rule_, fingerprint AS fingerprint_, argMax(state, "+rank+") AS last_state,"+
						" argMax(fired_at, "+rank+") AS firing_since, argMax(value, "+rank+") AS value_,"+
						" argMax(system, "+rank+") AS system_, argMax(app, "+rank+") AS app_,"+
						" argMax(group_name, "+rank+") AS group_, argMax(idc, "+rank+") AS idc_"+
						" FROM alerts WHERE ts <= $__toTime GROUP BY rule_, fingerprint_)"+
						" WHERE last_state = 'firing' ORDER BY firing_since DESC, rule_, fingerprint_")}},
			{kind: "timeseries", title: "State changes", unit: "short", w: 24, h: 7, interval: "1m",
				targets: []cog.Builder[variants.Dataquery]{chSeries("A",
					"SELECT "+bucket("ts")+" AS time, state AS series, count() AS changes"+
						" FROM alerts FINAL WHERE $__timeFilter(ts) GROUP BY time, series ORDER BY time, series")}},
			{kind: "table", title: "History", w: 24, h: 10,
				description: "Every state change in the range, newest first (at most 1000).",
				targets: []cog.Builder[variants.Dataquery]{chTable("A",
					"SELECT ts AS time, rule AS rule_, state AS state_, value AS value_, system AS system_, app AS app_, group_name AS group_, idc AS idc_,"+
						" arrayStringConcat(arrayMap((n, v) -> concat(n, '=', v), label_names, label_values), ', ') AS labels"+
						" FROM alerts FINAL WHERE $__timeFilter(ts) ORDER BY time DESC, rule_, state_ LIMIT 1000")}},
		})
}

func pipelineHealth() (dashboard.Dashboard, error) {
	rate := func(m string) string { return "rate(" + m + "[$__rate_interval])" }
	return newDashboard("tpflow-pipeline-health", "tpflow / Pipeline health",
		"The pipeline's own health: ingest rates, watermark lag, dead letters and late events from the roles' Prometheus metrics; what reached ClickHouse from ClickHouse.",
		nil, []panel{
			{kind: "timeseries", title: "Ingest rate", unit: "ops", w: 12, h: 8,
				description: "Kafka messages consumed per topic, calls aggregated, rows the sink committed per topic.",
				targets: []cog.Builder[variants.Dataquery]{
					prom("A", "sum by (topic) ("+rate("tpflow_kafka_consumed_messages_total")+")", "consumed {{topic}}"),
					prom("B", "sum("+rate("tpflow_aggregate_events_total")+")", "calls aggregated"),
					prom("C", "sum by (topic) ("+rate("tpflow_sink_rows_total")+")", "rows stored {{topic}}"),
				}},
			{kind: "timeseries", title: "Watermark lag", unit: "s", w: 12, h: 8,
				description: "Wall clock minus the watermark of the call and resource engines: how far behind real time final panes are.",
				targets: []cog.Builder[variants.Dataquery]{
					prom("A", "max(tpflow_aggregate_watermark_lag_seconds)", "calls"),
					prom("B", "max(tpflow_aggregate_resource_watermark_lag_seconds)", "resources"),
				}},
			{kind: "timeseries", title: "Dead-letter queue", unit: "ops", w: 12, h: 8,
				description: "Messages sent to the dead-letter topic per source topic and reason.",
				targets: []cog.Builder[variants.Dataquery]{
					prom("A", "sum by (topic, reason) ("+rate("tpflow_dlq_messages_total")+")", "{{topic}} {{reason}}"),
				}},
			{kind: "timeseries", title: "Late events", unit: "ops", w: 12, h: 8,
				description: "Events after their pane was final: corrected within the grace; after it calls are dropped only without a late path, resource samples are rejected as too_old.",
				targets: []cog.Builder[variants.Dataquery]{
					prom("A", "sum("+rate("tpflow_aggregate_late_events_total")+")", "calls corrected"),
					prom("B", "sum("+rate("tpflow_aggregate_late_dropped_events_total")+")", "calls dropped"),
					prom("C", "sum("+rate("tpflow_aggregate_resource_late_samples_total")+")", "samples corrected"),
					prom("D", "sum("+rate(`tpflow_aggregate_resource_rejected_samples_total{reason="too_old"}`)+")", "samples past the grace"),
				}},
			{kind: "timeseries", title: "Collector ingest", unit: "ops", w: 12, h: 8,
				description: "What the node collectors read and Kafka acknowledged, over all nodes.",
				targets: []cog.Builder[variants.Dataquery]{
					prom("A", "sum("+rate("tpflow_collect_lines_total")+")", "log lines read"),
					prom("B", "sum("+rate("tpflow_collect_acked_events_total")+")", "events acknowledged"),
					prom("C", "sum("+rate("tpflow_collect_metric_samples_total")+")", "metric samples"),
				}},
			{kind: "timeseries", title: "Collector backlog and errors", unit: "short", w: 12, h: 8,
				description: "Batches waiting for Kafka per node, failed produce attempts and unparsed lines per second by reason.",
				targets: []cog.Builder[variants.Dataquery]{
					prom("A", "sum by (instance) (tpflow_collect_queued_batches)", "queued batches {{instance}}"),
					prom("B", "sum("+rate("tpflow_collect_produce_errors_total")+")", "produce errors/s"),
					prom("C", "sum by (reason) ("+rate("tpflow_collect_unparsed_lines_total")+")", "unparsed/s {{reason}}"),
				}},
			{kind: "timeseries", title: "Process CPU and memory (collector budget)", unit: "short", w: 12, h: 8,
				description: "CPU cores and resident memory (GiB) of each tpflow process, by scrape job: the node collector must stay within its small reserved budget.",
				targets: []cog.Builder[variants.Dataquery]{
					prom("A", "sum by (job, instance) ("+rate("process_cpu_seconds_total")+")", "cpu {{job}} {{instance}}"),
					prom("B", "sum by (job, instance) (process_resident_memory_bytes) / 1073741824", "memory GiB {{job}} {{instance}}"),
				}},
			{kind: "timeseries", title: "Calls stored per second", unit: "reqps", w: 12, h: 8, interval: "1m",
				description: "Calls in ClickHouse by event time (call panes, deduplicated): what dashboards and reports see.",
				targets: []cog.Builder[variants.Dataquery]{chSeries("A",
					"SELECT "+bucket("pane_start")+" AS time, sum(count) / $__interval_s AS calls_per_second"+
						" FROM "+callRows("pane_start, count", nil, seriesGate)+" GROUP BY time ORDER BY time")}},
			{kind: "stat", title: "Newest pane age", unit: "s", w: 24, h: 5,
				description: "Seconds from the newest call and resource pane start in the range to the end of the range: the end-to-end delay, pane length included (huge when the range holds no pane).",
				targets: []cog.Builder[variants.Dataquery]{chTable("A",
					"SELECT"+
						" (SELECT toInt64(toUInt32($__toTime)) - toInt64(toUInt32(max(pane_start))) FROM call_panes WHERE $__timeFilter(pane_start)) AS call_pane_age_s,"+
						" (SELECT toInt64(toUInt32($__toTime)) - toInt64(toUInt32(max(pane_start))) FROM resource_panes WHERE $__timeFilter(pane_start)) AS resource_pane_age_s")}},
		})
}
