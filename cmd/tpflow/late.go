package main

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tpflow/tpflow/aggregator/late"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/kafka"
)

// runLateMerger runs the late merger next to a sink that stores the stats
// topic (it waits for that sink's progress, see aggregator/late); a sink
// without stats runs none, and runLateMerger returns nil at once.
func runLateMerger(ctx context.Context, cfg *Config, kcfg kafka.Config, ccfg clickhouse.Config, reg prometheus.Registerer, log *slog.Logger) error {
	if !slices.Contains(cfg.Sink.Topics, kafka.TopicStats) {
		return nil
	}
	lcfg := late.Config{GroupID: late.GroupIDFor(cfg.Sink.GroupID), SinkGroupID: cfg.Sink.GroupID, Aggregator: cfg.Aggregator}
	if err := late.Run(ctx, kcfg, ccfg, lcfg, reg, log); err != nil && ctx.Err() == nil {
		return fmt.Errorf("late merger: %w", err)
	}
	return nil
}
