package main

import (
	"context"
	"flag"

	"github.com/tpflow/tpflow/pipeline/kafka"
)

// brokerOptions are the flags of `tpflow broker` beyond the common ones.
type brokerOptions struct {
	// DataDir overrides broker.data_dir.
	DataDir string
	// SyncWrites fsyncs every produced batch.
	SyncWrites bool
}

func brokerCommand() *command {
	var o brokerOptions
	return &command{
		name:    "broker",
		summary: "serve an embedded Kafka-protocol broker (in memory or durable in broker.data_dir)",
		help: `Serves a Kafka-protocol broker on broker.listen (--listen overrides it for
this command), creating the tpflow topics with the partition counts of the
kafka section. Without a data dir (broker.data_dir or --data-dir) everything
is kept in memory and lost when the broker stops; with one, records, topics
and committed offsets survive a restart. Records older than broker.retention
or beyond broker.retention_bytes are dropped. For a laptop, a small site and
tests; production uses a Kafka cluster.`,
		example: "tpflow broker --listen 127.0.0.1:9092\ntpflow broker --listen 127.0.0.1:9092 --data-dir /var/lib/tpflow/broker --sync-writes\ntpflow broker --config tpflow.yaml",
		common:  true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&o.DataDir, "data-dir", "", "`DIR` keeping the broker's data across restarts, overriding broker.data_dir; empty keeps it in memory")
			fs.BoolVar(&o.SyncWrites, "sync-writes", false, "fsync every produced batch before acknowledging it (needs a data dir)")
		},
		role: func(ctx context.Context, env *Env, cfg *Config, args []string) error {
			return runBroker(ctx, env, cfg, o)
		},
	}
}

// runBroker is the broker role: it serves until ctx is done, after creating
// the tpflow topics.
func runBroker(ctx context.Context, env *Env, cfg *Config, o brokerOptions) error {
	bcfg := roleBrokerConfig(cfg)
	if o.DataDir != "" {
		bcfg.DataDir = o.DataDir
	}
	if o.SyncWrites {
		if bcfg.DataDir == "" {
			return usageError("--sync-writes needs a data dir")
		}
		bcfg.SyncWrites = true
	}
	kcfg := roleKafkaConfig(cfg)
	bcfg.MaxMessageBytes = max(bcfg.MaxMessageBytes, kcfg.MaxMessageBytes+(128<<10))
	b, err := kafka.StartBroker(ctx, bcfg, env.Logger)
	if err != nil {
		return err
	}
	defer b.Close()
	kcfg.Brokers = []string{b.Addr()}
	if err := kafka.EnsureTopics(ctx, kcfg); err != nil {
		return err
	}
	env.Logger.Info("broker ready", "addr", b.Addr(), "data_dir", bcfg.DataDir)
	<-ctx.Done()
	return nil
}

// roleBrokerConfig is the broker section.
func roleBrokerConfig(cfg *Config) kafka.BrokerConfig {
	b := kafka.DefaultBrokerConfig()
	b.Listen = cfg.Broker.Listen
	b.DataDir = cfg.Broker.DataDir
	b.Retention = cfg.Broker.Retention
	b.RetentionBytes = cfg.Broker.RetentionBytes
	return b
}
