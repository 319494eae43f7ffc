// Package report answers questions about stored panes: the HTTP query API
// (/api/v1/tp, /api/v1/capacity, /api/v1/topology) and capacity reports
// rendered as HTML, Markdown or CSV.
//
// Every latency quantile is merged from the stored t-digest centroids
// (quantilesExactWeighted over the panes' means and weights), never
// averaged from per-pane percentiles. Label values reach ClickHouse as
// bound query arguments, never spliced into SQL. See DESIGN.md for the
// capacity formulas.
package report
