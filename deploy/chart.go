// Package deploy holds the Helm chart of tpflow (deploy/helm/tpflow),
// embedded so that `tpflow deploy render` renders the very chart that
// `helm install` installs, from any directory. The chart's copy of the
// Grafana provisioning (files/grafana) is deploy/grafana, refreshed by go
// generate.
package deploy

import (
	"embed"
	"io/fs"
)

//go:generate sh -c "rm -rf helm/tpflow/files/grafana && mkdir -p helm/tpflow/files && cp -r grafana helm/tpflow/files/grafana"

//go:embed all:helm/tpflow
var chartFS embed.FS

// Chart returns the chart's files, rooted at the chart's directory
// (Chart.yaml, values.yaml, templates/...).
func Chart() fs.FS {
	sub, err := fs.Sub(chartFS, "helm/tpflow")
	if err != nil {
		panic("BUG: deploy: no embedded chart: " + err.Error())
	}
	return sub
}
