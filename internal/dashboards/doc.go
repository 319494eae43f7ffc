// Package dashboards builds tpflow's Grafana provisioning as code: the
// ClickHouse and Prometheus data sources, the dashboard provider and five
// dashboards (service overview, method detail, resources, alerts, pipeline
// health). `go generate` (and so `make generate`) writes them under
// deploy/grafana; a test fails when the committed files differ from what
// this package builds.
//
// Dashboards are built with github.com/grafana/grafana-foundation-sdk/go.
// The SDK has no query type for the grafana-clickhouse-datasource plugin, so
// CHQuery is ours: the plugin's raw-SQL query model (rawSql, format,
// queryType, editorType).
//
// Every ClickHouse panel's SQL uses only the macros that Expand implements,
// and the tests run each expanded statement against a real ClickHouse over
// a known dataset; see DESIGN.md for the SQL rules (centroid merges, FINAL).
package dashboards

//go:generate go run ./gen -out ../../deploy/grafana
