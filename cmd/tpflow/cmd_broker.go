package main

import "context"

func brokerCommand() *command {
	return &command{
		name:    "broker",
		summary: "serve an embedded Kafka-protocol broker (in memory or durable in broker.data_dir)",
		help: `Serves a Kafka-protocol broker on broker.listen (--listen overrides it for
this command), creating the tpflow topics with the partition counts of the
kafka section. With broker.data_dir set, records survive a restart; records
older than broker.retention or beyond broker.retention_bytes are dropped.
For a laptop, a small site and tests; production uses a Kafka cluster.`,
		example: "tpflow broker --listen 127.0.0.1:9092\ntpflow broker --config tpflow.yaml",
		common:  true,
		role:    runBroker,
	}
}

// runBroker is the broker role.
func runBroker(ctx context.Context, env *Env, cfg *Config, args []string) error {
	return errNotImplemented
}
