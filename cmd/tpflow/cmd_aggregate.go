package main

import "context"

func aggregateCommand() *command {
	return &command{
		name:    "aggregate",
		summary: "consume calls, keep event-time panes and windows of TP50-TP999; publish final panes",
		help: `Consumes the calls topic as a member of the aggregator consumer group and
keeps, per (system, app, group, idc, method), tumbling panes of call count,
errors and a latency t-digest, plus sliding windows over them. Final panes
are published to the stats topic with their digest centroids; offsets are
committed only after every pane holding their events is published. The
aggregator section of the configuration sets panes, windows and lateness.`,
		example: "tpflow aggregate --config tpflow.yaml --brokers kafka-1:9092",
		common:  true,
		role:    runAggregate,
	}
}

// runAggregate is the aggregate role.
func runAggregate(ctx context.Context, env *Env, cfg *Config, args []string) error {
	return errNotImplemented
}
