package main

import (
	"context"
	"flag"

	"github.com/tpflow/tpflow/internal/cli"
	"github.com/tpflow/tpflow/pipeline/kafka"
)

func brokerCommand() *cli.Command {
	var (
		dataDir    string
		syncWrites bool
	)
	return &cli.Command{
		Name:    "broker",
		Summary: "serve an embedded Kafka-protocol broker (in memory or durable in broker.data_dir)",
		Help: `Serves a Kafka-protocol broker on broker.listen (--listen overrides it for
this command), creating the tpflow topics with the partition counts of the
kafka section. Without a data dir (broker.data_dir or --data-dir) everything
is kept in memory and lost when the broker stops; with one, records, topics
and committed offsets survive a restart. Records older than broker.retention
or beyond broker.retention_bytes are dropped. For a laptop, a small site and
tests; production uses a Kafka cluster. Serves /metrics, /healthz and
/readyz on broker.http_listen (port 0, the default, picks a free port and
logs it).`,
		Example: "tpflow broker --listen 127.0.0.1:9092\ntpflow broker --listen 127.0.0.1:9092 --data-dir /var/lib/tpflow/broker --sync-writes\ntpflow broker --config tpflow.yaml",
		Common:  true,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&dataDir, "data-dir", "", "`DIR` keeping the broker's data across restarts, overriding broker.data_dir; empty keeps it in memory")
			fs.BoolVar(&syncWrites, "sync-writes", false, "fsync every produced batch before acknowledging it, overriding broker.sync_writes (needs a data dir)")
		},
		Override: cli.Overrides(
			cli.SetFlag("data-dir", "broker.data_dir", func(c *cli.Config) { c.Broker.DataDir = dataDir }),
			cli.SetFlag("sync-writes", "broker.sync_writes", func(c *cli.Config) { c.Broker.SyncWrites = syncWrites }),
		),
		Role: runBroker,
	}
}

// runBroker is the broker role: it serves until ctx is done, after creating
// the tpflow topics.
func runBroker(ctx context.Context, env *cli.Env, cfg *cli.Config, _ []string) error {
	reg := cli.NewRoleRegistry()
	r, err := kafka.NewBroker(ctx, cfg.Broker, cfg.Kafka, cli.RoleSettings(env, reg))
	if err != nil {
		return err
	}
	defer r.Close()
	if err := kafka.EnsureTopics(ctx, r.Kafka()); err != nil {
		return err
	}
	env.Logger.Info("broker ready", "addr", r.Addr(), "data_dir", cfg.Broker.DataDir)
	if cfg.Broker.HTTPListen == "" {
		return r.Run(ctx)
	}
	return cli.ServeRole(ctx, env, cfg.Broker.HTTPListen, reg, r, cli.ServeOptions{Name: "broker", Check: "kafka", HTTP: cfg.HTTP})
}
