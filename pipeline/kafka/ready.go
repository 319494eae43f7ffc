package kafka

import (
	"context"
	"fmt"
)

// Ready reports whether the cluster of cfg answers: nil once a metadata
// request for topics (short names, such as TopicCalls) succeeded, else the
// reason. A topic the cluster does not know yet is not an error: consumers
// wait for it. Roles use it as their Kafka readiness check.
func Ready(ctx context.Context, cfg Config, topics ...string) error {
	full := make([]string, len(topics))
	for i, t := range topics {
		full[i] = cfg.Topic(t)
	}
	if _, err := TopicPartitions(ctx, cfg, full...); err != nil {
		return fmt.Errorf("kafka %v: %w", cfg.Brokers, err)
	}
	return nil
}
