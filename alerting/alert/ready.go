package alert

import (
	"context"

	"github.com/tpflow/tpflow/pipeline/kafka"
)

// Ready is the alert role's readiness: nil once the Kafka cluster of kcfg
// answered for the topics the role reads and writes.
func Ready(ctx context.Context, kcfg kafka.Config) error {
	return kafka.Ready(ctx, kcfg, kafka.TopicStats, kafka.TopicLogs, kafka.TopicAlerts)
}
