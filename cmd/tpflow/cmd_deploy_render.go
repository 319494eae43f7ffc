//go:build !nodeploy

package main

import "github.com/tpflow/tpflow/deploy/render"

// renderChart renders the embedded chart with Helm's engine and writes the
// manifests. A build with -tags nodeploy (the container image) leaves it
// out: see deploy/render/DESIGN.md.
func renderChart(c chartRender) ([]string, error) {
	ms, err := render.Render(render.Options{ValuesFiles: c.values, Release: c.release, Namespace: c.namespace, APIVersions: c.apis, KubeVersion: c.kubeVersion})
	if err != nil {
		return nil, err
	}
	return render.WriteDir(c.out, ms)
}
