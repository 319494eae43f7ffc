package main

import (
	"context"

	"github.com/tpflow/tpflow/internal/cli"
	"github.com/tpflow/tpflow/report"
)

func apiCommand() *cli.Command {
	return &cli.Command{
		Name:    "api",
		Summary: "serve the query API (/api/v1/tp, /api/v1/capacity, /api/v1/topology) over ClickHouse",
		Help: `Serves the HTTP JSON query API over the panes in ClickHouse, on --listen
(http.listen), with /metrics, /healthz and /readyz:

  /api/v1/tp        calls, errors, QPS and TP quantiles of any selector
                    (system, app, group, idc, method), range (from, to) and
                    step, optionally split by labels (by=method), merged
                    from the stored centroids
  /api/v1/capacity  the rows of 'tpflow report capacity' (by, from, to, target)
  /api/v1/topology  systems → apps → groups → IDCs seen in a range

A malformed parameter is answered 400 with {"error": "..."}. tpflow run
serves the same paths when ClickHouse is reachable.`,
		Example: "tpflow api --clickhouse clickhouse://127.0.0.1:9000/tpflow --listen :8080\n" +
			"curl 'http://127.0.0.1:8080/api/v1/tp?app=cart&by=method&from=now-1h&step=1m&q=tp99'",
		Common: true,
		Role: func(ctx context.Context, env *cli.Env, cfg *cli.Config, args []string) error {
			return runAPI(ctx, env, cfg)
		},
	}
}

// runAPI is the api role.
func runAPI(ctx context.Context, env *cli.Env, cfg *cli.Config) error {
	reg := cli.NewRoleRegistry()
	r, err := report.New(ctx, cfg.API, cfg.ClickHouse, cli.RoleSettings(env, reg))
	if err != nil {
		return err
	}
	defer r.Close()
	env.Logger.Info("serving the query API", "database", cfg.ClickHouse.Database)
	return cli.ServeRole(ctx, env, cfg.HTTP.Listen, reg, r, cli.ServeOptions{Name: "api", Check: "clickhouse", Pprof: cfg.HTTP.PprofListen, HTTP: cfg.HTTP})
}
