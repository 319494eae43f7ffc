package main

import (
	"context"
	"flag"
)

// sinkOptions are the flags of `tpflow sink` beyond the common ones.
type sinkOptions struct {
	// MigrateOnly applies the schema migrations and returns.
	MigrateOnly bool
}

func sinkCommand() *command {
	var o sinkOptions
	return &command{
		name:    "sink",
		summary: "consume stats, logs, metrics and alerts; write them to ClickHouse in batches",
		help: `Consumes the stats, logs, metrics and alerts topics and writes them to
ClickHouse in batches (clickhouse.batch_rows rows or clickhouse.batch_age,
whichever comes first), retrying with backoff; a retried batch replaces
rather than adds. Schema migrations are applied at start-up; --migrate
applies them and exits.`,
		example: "tpflow sink --config tpflow.yaml --clickhouse clickhouse://ch-1:9000/tpflow\ntpflow sink --migrate --clickhouse clickhouse://127.0.0.1:9000/tpflow",
		common:  true,
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&o.MigrateOnly, "migrate", false, "apply the ClickHouse schema migrations and exit")
		},
		role: func(ctx context.Context, env *Env, cfg *Config, args []string) error {
			return runSink(ctx, env, cfg, o, args)
		},
	}
}

// runSink is the sink role.
func runSink(ctx context.Context, env *Env, cfg *Config, o sinkOptions, args []string) error {
	return errNotImplemented
}
