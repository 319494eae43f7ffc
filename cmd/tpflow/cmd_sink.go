package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/tpflow/tpflow/aggregator/late"
	"github.com/tpflow/tpflow/internal/role"
	"github.com/tpflow/tpflow/pipeline/sink"
)

func sinkCommand() *command {
	var (
		migrateOnly bool
		group       string
	)
	d := DefaultConfig().Sink
	return &command{
		name:    "sink",
		summary: "consume stats, logs, metrics and alerts; write them to ClickHouse in batches",
		help: `Consumes the topics of sink.topics (stats, logs, metrics and alerts) and
writes them to ClickHouse in batches (clickhouse.batch_rows rows or
clickhouse.batch_age, whichever comes first), retrying with backoff; a
retried batch replaces rather than adds. Offsets are committed only after
the insert succeeded; while ClickHouse is down consumption pauses.
Undecodable messages go to the dead-letter topic. Alongside, the late
merger folds calls that reached the aggregator past their pane's grace
(the late topic) into the stored panes and rollups. Schema migrations are
applied at start-up; --migrate applies them and exits (as tpflow migrate). Serves /metrics,
/healthz and /readyz on http.listen (--listen).`,
		example: "tpflow sink --config tpflow.yaml --clickhouse clickhouse://ch-1:9000/tpflow\ntpflow sink --migrate --clickhouse clickhouse://127.0.0.1:9000/tpflow",
		common:  true,
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&migrateOnly, "migrate", false, "apply the ClickHouse schema migrations and exit")
			fs.StringVar(&group, "group", "", fmt.Sprintf("Kafka consumer `GROUP` of the sinks, overriding sink.group_id (default from config: %s)", d.GroupID))
		},
		override: overrides(
			flagOverride{"group", "sink.group_id", func(c *Config) { c.Sink.GroupID = group }},
		),
		role: func(ctx context.Context, env *Env, cfg *Config, args []string) error {
			if migrateOnly {
				return runMigrate(ctx, env, cfg, migrateOptions{})
			}
			return runSink(ctx, env, cfg)
		},
	}
}

// runSink is the sink role, with the late merger beside it.
func runSink(ctx context.Context, env *Env, cfg *Config) error {
	reg := newRoleRegistry()
	s := roleSettings(env, reg)
	sr, err := sink.New(cfg.Sink, cfg.Kafka, cfg.ClickHouse, s)
	if err != nil {
		return err
	}
	lr := late.NextToSink(cfg.Sink.Topics, cfg.Sink.GroupID, cfg.Kafka, cfg.ClickHouse, cfg.Aggregator, s.With("part", "late"))
	return serveRole(ctx, env, cfg.HTTP.Listen, reg, role.Group(sr, lr), serveOptions{name: "sink", check: "sink", pprof: cfg.HTTP.PprofListen, wait: true, http: cfg.HTTP})
}
