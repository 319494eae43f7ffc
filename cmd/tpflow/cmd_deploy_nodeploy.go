//go:build nodeploy

package main

import "errors"

// errNoRenderer is what `deploy render` answers in a build without the
// Helm renderer.
var errNoRenderer = errors.New("this tpflow was built with -tags nodeploy (as the container image is), which leaves out the Helm renderer; run tpflow deploy render from a full build (make build)")

// renderChart is left out of this build: Helm and the Kubernetes client
// libraries would cost every role about 18 MiB of resident memory
// (deploy/render/DESIGN.md).
func renderChart(chartRender) ([]string, error) { return nil, errNoRenderer }
