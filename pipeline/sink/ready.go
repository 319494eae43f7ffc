package sink

import (
	"context"
	"errors"

	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/kafka"
)

// Ready is the sink role's readiness: nil once the Kafka cluster of kcfg
// answered for cfg.Topics and ClickHouse answered a ping; else the reasons
// of both.
func Ready(ctx context.Context, kcfg kafka.Config, ccfg clickhouse.Config, cfg Config) error {
	return errors.Join(kafka.Ready(ctx, kcfg, cfg.Topics...), clickhouse.Ready(ctx, ccfg))
}
