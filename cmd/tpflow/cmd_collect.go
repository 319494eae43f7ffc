package main

import "context"

func collectCommand() *command {
	return &command{
		name:    "collect",
		summary: "tail container logs and read cgroup, /proc and kmsg on this node; produce to Kafka",
		help: `Runs the node agent: discovers container log files, tails them across
rotations with checkpoints, parses log lines and call records, reads cgroup,
/proc and kernel messages, labels everything with its system, app, group and
IDC, and produces event batches to the logs, calls and metrics topics.`,
		example: "tpflow collect --config /etc/tpflow/tpflow.yaml --brokers kafka-1:9092,kafka-2:9092",
		common:  true,
		role:    runCollect,
	}
}

// runCollect is the collect role.
func runCollect(ctx context.Context, env *Env, cfg *Config, args []string) error {
	return errNotImplemented
}
