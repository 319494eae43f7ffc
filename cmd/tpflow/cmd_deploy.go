package main

import (
	"context"
	"flag"
	"fmt"
	"github.com/tpflow/tpflow/internal/cli"
	"strings"
)

// chartRender is what `deploy render` was asked for.
type chartRender struct {
	values, apis                         []string
	out, release, namespace, kubeVersion string
}

// listFlag is a flag that may be given more than once, each value also a
// comma-separated list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

func deployCommand() *cli.Command {
	var (
		values, apis            listFlag
		out, release, ns, kubeV string
	)
	c := &cli.Command{
		Name:    "deploy",
		Summary: "render the Helm chart to Kubernetes manifests",
		Args:    "render",
		Help: `Subcommands:
  render  render the tpflow Helm chart (built into this binary, the same as
          deploy/helm/tpflow) with the values files to plain manifests in
          --out, one file per template, as 'helm template' would; a
          template's file that an earlier render left there and this one
          does not write is removed, other files are left alone

The values are checked against the chart's schema: an unknown or misspelt
key is an error naming it. The collect agent's requests are checked
against nodeBudget: values whose requests exceed a node type's share of
its allocatable CPU or memory are refused with the arithmetic (exit 1).
The aggregators' autoscaler is rendered only when --api-versions names
external.metrics.k8s.io/v1beta1 (a metrics adapter serves it).`,
		Example: "tpflow deploy render --values deploy/helm/values-small.yaml --out manifests/\n" +
			"tpflow deploy render --values deploy/helm/values-large.yaml --values site.yaml --out manifests/ \\\n" +
			"  --api-versions external.metrics.k8s.io/v1beta1,monitoring.coreos.com/v1 --namespace tpflow",
		Flags: func(fs *flag.FlagSet) {
			fs.Var(&values, "values", "values `FILE` merged over the chart's defaults (repeatable, later files win)")
			fs.StringVar(&out, "out", "", "`DIR` the manifests are written to (created if missing)")
			fs.StringVar(&release, "release", "tpflow", "release `NAME`: object names start with it")
			fs.StringVar(&ns, "namespace", "default", "`NAMESPACE` of the release")
			fs.Var(&apis, "api-versions", "`GROUP/VERSION`s the cluster serves besides the built-in ones (repeatable or comma-separated)")
			fs.StringVar(&kubeV, "kube-version", "", "Kubernetes `VERSION` of the cluster (default: Helm's)")
		},
	}
	c.Exec = func(_ context.Context, env *cli.Env, _ *flag.FlagSet, args []string) error {
		switch {
		case len(args) == 0:
			return cli.UsageError("missing subcommand: render")
		case args[0] != "render":
			return cli.UsageError("unknown subcommand %q (want render)", args[0])
		case len(args) > 1:
			return cli.UsageError("render takes no arguments, got %q", args[1])
		case len(values) == 0:
			return cli.UsageError("render needs --values FILE")
		case out == "":
			return cli.UsageError("render needs --out DIR")
		}
		paths, err := renderChart(chartRender{values: values, apis: apis, out: out, release: release, namespace: ns, kubeVersion: kubeV})
		if err != nil {
			return err
		}
		for _, p := range paths {
			fmt.Fprintln(env.Stdout, p)
		}
		return nil
	}
	return c
}
