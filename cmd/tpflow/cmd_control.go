package main

import (
	"context"
	"flag"
	"fmt"
	"github.com/tpflow/tpflow/internal/cli"

	"github.com/tpflow/tpflow/control/plane"
	"github.com/tpflow/tpflow/internal/config/sections"
)

func controlCommand() *cli.Command {
	var storeDSN string
	return &cli.Command{
		Name:    "control",
		Summary: "control plane: topology, versioned configuration, operation history",
		Help: `Serves the control plane's HTTP JSON API under /api/v1/ on http.listen
(--listen), like every role, with /metrics, /healthz and /readyz: the
topology (systems, apps, groups with env and IDC, instances; import and
export of the collectors' topology file), configuration versions per
scope (global, system, app, group, node selector: create, list, get,
diff, rollback, and the effective configuration of an agent), rollouts in
waves (soak time, failure budget, pause, resume, abort) and the operation
history.

State is kept in control.store (--store): a SQLite file, by default
` + plane.DefaultStore + `, or a postgres:// URL. Every file of a new
configuration version is validated as the roles load it (tpflow.yaml,
topology.yaml, rules/*.yaml) and refused with every problem as
FILE:LINE:COLUMN.

Requests authenticate with http.auth (bearer tokens, basic auth, client
certificates) over http.tls, as on every role: viewers read, operators
and admins write. tpflow control refuses to start unless http.auth has
an operator or admin credential. Every accepted write is recorded with
who made it (the token's, user's or certificate's name) and exported to
the ClickHouse table operations (the clickhouse section) for change
markers on the dashboards; the export waits in the store while
ClickHouse is down. control/README.md has curl examples.`,
		Example: "tpflow control --config tpflow.yaml\n" +
			"tpflow control --store postgres://control@db-1:5432/tpflow --listen :8090\n" +
			`curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/api/v1/topology`,
		Common: true,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&storeDSN, "store", "", "store `DSN`: a SQLite file path or postgres://URL, overriding control.store")
		},
		Override: cli.Overrides(
			cli.SetFlag("store", "control.store", func(c *cli.Config) { c.Control.Store = storeDSN }),
		),
		Role: func(ctx context.Context, env *cli.Env, cfg *cli.Config, args []string) error {
			return runControl(ctx, env, cfg)
		},
	}
}

// runControl is the control role.
func runControl(ctx context.Context, env *cli.Env, cfg *cli.Config) error {
	if err := plane.CheckAuth(cfg.HTTP.Auth); err != nil {
		return fmt.Errorf("cannot start the control plane: %w", err)
	}
	reg := cli.NewRoleRegistry()
	r, err := plane.New(ctx, cfg.Control, cfg.ClickHouse, cli.RoleSettings(env, reg), plane.WithValidator(sections.ValidateFile))
	if err != nil {
		return err
	}
	env.Logger.Info("serving the control plane", "listen", cfg.HTTP.Listen, "export_operations", cfg.Control.Operations.Export)
	return cli.ServeRole(ctx, env, cfg.HTTP.Listen, reg, r, cli.ServeOptions{Name: "control", Check: "store", Pprof: cfg.HTTP.PprofListen, HTTP: cfg.HTTP})
}
