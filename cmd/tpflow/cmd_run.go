package main

import (
	"context"
	"flag"
)

// runOptions are the flags of `tpflow run` beyond the common ones.
type runOptions struct {
	// Demo also generates synthetic traffic so that the pipeline has
	// something to show.
	Demo bool
}

func runCommand() *command {
	var o runOptions
	return &command{
		name:    "run",
		summary: "run every role in one process with an embedded broker (laptop, demo, tests)",
		help: `Runs the whole pipeline in one process: an embedded Kafka-protocol broker
(configured by the broker section), the collector, aggregator, sink and
alerting, all sharing one configuration. With --demo it also generates
synthetic calls and logs. The sink writes to the ClickHouse in clickhouse.dsn.`,
		example: "tpflow run --demo\ntpflow run --config tpflow.yaml --clickhouse clickhouse://127.0.0.1:9000/tpflow",
		common:  true,
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&o.Demo, "demo", false, "also generate synthetic calls and logs")
		},
		role: func(ctx context.Context, env *Env, cfg *Config, args []string) error {
			return runAllRoles(ctx, env, cfg, o, args)
		},
	}
}

// runAllRoles is the run role: every role in one process.
func runAllRoles(ctx context.Context, env *Env, cfg *Config, o runOptions, args []string) error {
	return errNotImplemented
}
