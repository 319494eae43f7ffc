package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/tpflow/tpflow/aggregator/aggregate"
)

func aggregateCommand() *command {
	var (
		group string
		flush time.Duration
	)
	d := DefaultConfig().Aggregate
	return &command{
		name:    "aggregate",
		summary: "consume calls, keep event-time panes and windows of TP50-TP999; publish final panes",
		help: `Consumes the calls topic as a member of the aggregator consumer group and
keeps, per (system, app, group, idc, method), tumbling panes of call count,
errors and a latency t-digest, plus sliding windows over them. Final panes
are published to the stats topic with their digest centroids; offsets are
committed only after every pane holding their events is published. The
aggregator section of the configuration sets panes, windows and lateness;
the aggregate section the consumer group and the flush interval.
Serves /metrics, /healthz and /readyz on http.listen (--listen).`,
		example: "tpflow aggregate --config tpflow.yaml --brokers kafka-1:9092",
		common:  true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&group, "group", "", fmt.Sprintf("Kafka consumer `GROUP` of the aggregators, overriding aggregate.group_id (default from config: %s)", d.GroupID))
			fs.DurationVar(&flush, "flush-interval", 0, fmt.Sprintf("how often final panes are published and offsets committed, overriding aggregate.flush_interval (default from config: %s)", d.FlushInterval))
		},
		override: overrides(
			flagOverride{"group", "aggregate.group_id", func(c *Config) { c.Aggregate.GroupID = group }},
			flagOverride{"flush-interval", "aggregate.flush_interval", func(c *Config) { c.Aggregate.FlushInterval = flush }},
		),
		role: runAggregate,
	}
}

// runAggregate is the aggregate role.
func runAggregate(ctx context.Context, env *Env, cfg *Config, _ []string) error {
	reg := newRoleRegistry()
	r, err := aggregate.New(cfg.Aggregate, cfg.Kafka, cfg.Aggregator, roleSettings(env, reg))
	if err != nil {
		return err
	}
	return serveRole(ctx, env, cfg.HTTP.Listen, reg, r, serveOptions{name: "aggregator", check: "kafka", pprof: cfg.HTTP.PprofListen, wait: true, http: cfg.HTTP})
}
