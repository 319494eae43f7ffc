package sink

import (
	"context"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/pipeline/kafka/kafkatest"
)

// startSink runs the sink with the default settings until stop is called;
// done receives what Run returned.
func startSink(ctx context.Context, kcfg kafka.Config, ccfg clickhouse.Config, reg prometheus.Registerer) (done <-chan error, stop context.CancelFunc) {
	runCtx, stop := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { errc <- Run(runCtx, kcfg, ccfg, DefaultConfig(), reg, nil) }()
	return errc, stop
}

// openDB connects to ccfg's database and closes the connection when the
// test ends.
func openDB(t *testing.T, ctx context.Context, ccfg clickhouse.Config) driver.Conn {
	t.Helper()
	conn, err := clickhouse.Open(ctx, ccfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// startKafka starts the embedded broker with one partition per topic but
// metrics partitions for metrics, and returns its client config.
func startKafka(t *testing.T, ctx context.Context, metrics int) kafka.Config {
	t.Helper()
	return kafkatest.Start(t, ctx, map[string]int{kafka.TopicStats: 1, kafka.TopicLogs: 1, kafka.TopicMetrics: metrics, kafka.TopicAlerts: 1, kafka.TopicCalls: 1, kafka.TopicDLQ: 1})
}
