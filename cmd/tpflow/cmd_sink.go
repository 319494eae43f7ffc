package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/tpflow/tpflow/pipeline/sink"
)

// sinkOptions are the flags of `tpflow sink` beyond the common ones.
type sinkOptions struct {
	// MigrateOnly applies the schema migrations and returns.
	MigrateOnly bool
	// Config is the sink's group and topics.
	Config sink.Config
}

func sinkCommand() *command {
	o := sinkOptions{Config: sink.DefaultConfig()}
	return &command{
		name:    "sink",
		summary: "consume stats, logs, metrics and alerts; write them to ClickHouse in batches",
		help: `Consumes the stats, logs, metrics and alerts topics and writes them to
ClickHouse in batches (clickhouse.batch_rows rows or clickhouse.batch_age,
whichever comes first), retrying with backoff; a retried batch replaces
rather than adds. Offsets are committed only after the insert succeeded;
while ClickHouse is down consumption pauses. Undecodable messages go to the
dead-letter topic. Schema migrations are applied at start-up; --migrate
applies them and exits. Serves /metrics, /healthz and /readyz on
http.listen (--listen).`,
		example: "tpflow sink --config tpflow.yaml --clickhouse clickhouse://ch-1:9000/tpflow\ntpflow sink --migrate --clickhouse clickhouse://127.0.0.1:9000/tpflow",
		common:  true,
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&o.MigrateOnly, "migrate", false, "apply the ClickHouse schema migrations and exit")
			fs.StringVar(&o.Config.GroupID, "group", o.Config.GroupID, "Kafka consumer group of the sinks")
		},
		role: func(ctx context.Context, env *Env, cfg *Config, args []string) error {
			if err := o.Config.Validate(); err != nil {
				return usageError("%v", err)
			}
			return runSink(ctx, env, cfg, o, args)
		},
	}
}

// runSink is the sink role.
func runSink(ctx context.Context, env *Env, cfg *Config, o sinkOptions, args []string) error {
	ccfg := roleClickHouseConfig(cfg)
	if o.MigrateOnly {
		applied, err := sink.Migrate(ctx, ccfg, env.Logger)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(env.Stdout, "applied %d migrations %v to database %s\n", len(applied), applied, ccfg.Database)
		return err
	}
	reg := newRoleRegistry()
	var ready atomic.Bool
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveRoleHTTP(gctx, cfg.HTTP.Listen, reg, ready.Load, env.Logger) })
	g.Go(func() error {
		ready.Store(true)
		err := sink.Run(gctx, roleKafkaConfig(cfg), ccfg, o.Config, reg, env.Logger)
		if err == nil && gctx.Err() == nil {
			err = errors.New("sink stopped")
		}
		return err
	})
	err := g.Wait()
	if ctx.Err() != nil && err == nil {
		return nil
	}
	return err
}
