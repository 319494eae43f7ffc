package main

import (
	"context"
	"log/slog"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/httpserver"
	"github.com/tpflow/tpflow/report"
)

func apiCommand() *command {
	return &command{
		name:    "api",
		summary: "serve the query API (/api/v1/tp, /api/v1/capacity, /api/v1/topology) over ClickHouse",
		help: `Serves the HTTP JSON query API over the panes in ClickHouse, on --listen
(http.listen), with /metrics, /healthz and /readyz:

  /api/v1/tp        calls, errors, QPS and TP quantiles of any selector
                    (system, app, group, idc, method), range (from, to) and
                    step, optionally split by labels (by=method), merged
                    from the stored centroids
  /api/v1/capacity  the rows of 'tpflow report capacity' (by, from, to, target)
  /api/v1/topology  systems → apps → groups → IDCs seen in a range

A malformed parameter is answered 400 with {"error": "..."}; a failed
query 502 with a reason and a request id (the server's error is logged
with the id); a path serving api.max_concurrent requests answers 503 with
Retry-After. Every query carries api.timeout and api.max_memory_usage as
ClickHouse limits. tpflow run serves the same paths when ClickHouse is
reachable.`,
		example: "tpflow api --clickhouse clickhouse://127.0.0.1:9000/tpflow --listen :8080\n" +
			"curl 'http://127.0.0.1:8080/api/v1/tp?app=cart&by=method&from=now-1h&step=1m&q=tp99'",
		common: true,
		role: func(ctx context.Context, env *Env, cfg *Config, args []string) error {
			return runAPI(ctx, env, cfg)
		},
	}
}

// runAPI is the api role.
func runAPI(ctx context.Context, env *Env, cfg *Config) error {
	conn, err := clickhouse.Open(ctx, cfg.ClickHouse)
	if err != nil {
		return err
	}
	defer conn.Close()
	env.Logger.Info("serving the query API", "database", cfg.ClickHouse.Database)
	return serveRole(ctx, env, cfg.HTTP.Listen, newRoleRegistry(), "api", untilDone, roleHTTP{
		checks: map[string]httpserver.Check{"clickhouse": func(ctx context.Context) error { return conn.Ping(ctx) }},
		routes: queryAPIRoutes(conn, cfg, env.Logger),
		pprof:  cfg.HTTP.PprofListen,
	})
}

// queryAPIRoutes are the routes of the report package's query API over
// conn; tpflow run and tpflow api both serve them.
func queryAPIRoutes(conn driver.Conn, cfg *Config, log *slog.Logger) []httpserver.Route {
	o := cfg.API.Options()
	o.Logger = log.With("part", "api")
	api := report.NewAPI(conn, cfg.ClickHouse.Database, o).Handler()
	routes := make([]httpserver.Route, len(report.Paths))
	for i, p := range report.Paths {
		routes[i] = httpserver.Route{Pattern: p, Handler: api}
	}
	return routes
}

// openQueryAPI connects to ClickHouse and returns the query API's routes
// for tpflow run. When ClickHouse does not answer, it logs a warning and
// returns none. The returned func closes the connection.
func openQueryAPI(ctx context.Context, cfg *Config, log *slog.Logger) ([]httpserver.Route, func()) {
	conn, err := clickhouse.Open(ctx, cfg.ClickHouse)
	if err != nil {
		log.Warn("query API not served: cannot open ClickHouse", "err", err)
		return nil, func() {}
	}
	return queryAPIRoutes(conn, cfg, log), func() { _ = conn.Close() }
}
