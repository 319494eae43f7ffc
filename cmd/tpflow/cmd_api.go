package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/httpapi"
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

A malformed parameter is answered 400 with {"error": "..."}. tpflow run
serves the same paths when ClickHouse is reachable.`,
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
	l, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("cannot listen for HTTP (choose another address with --listen): %w", err)
	}
	defer l.Close()
	conn, err := clickhouse.Open(ctx, cfg.ClickHouse)
	if err != nil {
		return err
	}
	defer conn.Close()
	env.Logger.Info("serving the query API", "addr", l.Addr().String(), "database", cfg.ClickHouse.Database)
	base := httpapi.Handler(httpapi.Options{
		Gatherer: newRoleRegistry(),
		Checks:   map[string]httpapi.Check{"clickhouse": func(ctx context.Context) error { return conn.Ping(ctx) }},
	})
	err = httpapi.Serve(ctx, l, mountQueryAPI(base, conn, cfg, env.Logger))
	if err == nil || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// mountQueryAPI serves the report package's query API over conn next to
// base's paths; tpflow run and tpflow api both use it.
func mountQueryAPI(base http.Handler, conn driver.Conn, cfg *Config, log *slog.Logger) http.Handler {
	api := report.NewAPI(conn, cfg.ClickHouse.Database, report.APIOptions{Logger: log.With("part", "api")})
	return report.Mount(base, api.Handler())
}

// openQueryAPI connects to ClickHouse and mounts the query API next to
// base's paths for tpflow run. When ClickHouse does not answer, it logs a
// warning and returns base. The returned func closes the connection.
func openQueryAPI(ctx context.Context, base http.Handler, cfg *Config, log *slog.Logger) (http.Handler, func()) {
	conn, err := clickhouse.Open(ctx, cfg.ClickHouse)
	if err != nil {
		log.Warn("query API not served: cannot open ClickHouse", "err", err)
		return base, func() {}
	}
	return mountQueryAPI(base, conn, cfg, log), func() { _ = conn.Close() }
}
