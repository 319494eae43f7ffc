package late

import (
	"context"
	"fmt"
	"slices"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/internal/role"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/kafka"
)

// Role is the late merger as a role (role.Role).
type Role struct {
	run func(ctx context.Context) error
}

// New returns the late merger of cfg between the Kafka of kcfg and the
// ClickHouse of ccfg; nothing connects before Run.
func New(cfg Config, kcfg kafka.Config, ccfg clickhouse.Config, s role.Settings) (*Role, error) {
	return &Role{run: func(ctx context.Context) error { return Run(ctx, kcfg, ccfg, cfg, s.Registerer, s.Log()) }}, nil
}

// NextToSink returns the late merger that runs beside a sink of the
// consumer group sinkGroup storing sinkTopics: it waits for that sink's
// progress on the stats topic, so a sink that does not store stats gets
// none and NextToSink returns nil (which role.Group skips).
func NextToSink(sinkTopics []string, sinkGroup string, kcfg kafka.Config, ccfg clickhouse.Config, aggCfg aggregator.Config, s role.Settings) role.Role {
	if !slices.Contains(sinkTopics, kafka.TopicStats) {
		return nil
	}
	r, _ := New(Config{GroupID: GroupIDFor(sinkGroup), SinkGroupID: sinkGroup, Aggregator: aggCfg}, kcfg, ccfg, s)
	return r
}

// Run merges late calls until ctx is done (see the package's Run).
func (r *Role) Run(ctx context.Context) error {
	if err := r.run(ctx); err != nil && ctx.Err() == nil {
		return fmt.Errorf("late merger: %w", err)
	}
	return nil
}

// Ready is nil: the sink beside the merger reports on the same Kafka and
// ClickHouse.
func (r *Role) Ready(context.Context) error { return nil }

// Routes is empty.
func (r *Role) Routes() []role.Route { return nil }
