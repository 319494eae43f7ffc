package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/tpflow/tpflow/aggregator/aggregate"
	"github.com/tpflow/tpflow/internal/cli"
	"github.com/tpflow/tpflow/internal/config/sections"
)

func aggregateCommand() *cli.Command {
	var (
		group string
		flush time.Duration
	)
	d := sections.DefaultConfig().Aggregate
	return &cli.Command{
		Name:    "aggregate",
		Summary: "consume calls, keep event-time panes and windows of TP50-TP999; publish final panes",
		Help: `Consumes the calls topic as a member of the aggregator consumer group and
keeps, per (system, app, group, idc, method), tumbling panes of call count,
errors and a latency t-digest, plus sliding windows over them. Final panes
are published to the stats topic with their digest centroids; offsets are
committed only after every pane holding their events is published. The
aggregator section of the configuration sets panes, windows and lateness;
the aggregate section the consumer group and the flush interval.
Serves /metrics, /healthz and /readyz on http.listen (--listen).`,
		Example: "tpflow aggregate --config tpflow.yaml --brokers kafka-1:9092",
		Common:  true,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&group, "group", "", fmt.Sprintf("Kafka consumer `GROUP` of the aggregators, overriding aggregate.group_id (default from config: %s)", d.GroupID))
			fs.DurationVar(&flush, "flush-interval", 0, fmt.Sprintf("how often final panes are published and offsets committed, overriding aggregate.flush_interval (default from config: %s)", d.FlushInterval))
		},
		Override: cli.Overrides(
			cli.SetFlag("group", "aggregate.group_id", func(c *cli.Config) { c.Aggregate.GroupID = group }),
			cli.SetFlag("flush-interval", "aggregate.flush_interval", func(c *cli.Config) { c.Aggregate.FlushInterval = flush }),
		),
		Role: runAggregate,
	}
}

// runAggregate is the aggregate role.
func runAggregate(ctx context.Context, env *cli.Env, cfg *cli.Config, _ []string) error {
	reg := cli.NewRoleRegistry()
	r, err := aggregate.New(cfg.Aggregate, cfg.Kafka, cfg.Aggregator, cli.RoleSettings(env, reg))
	if err != nil {
		return err
	}
	return cli.ServeRole(ctx, env, cfg.HTTP.Listen, reg, r, cli.ServeOptions{Name: "aggregator", Check: "kafka", Pprof: cfg.HTTP.PprofListen, Wait: true, HTTP: cfg.HTTP})
}
