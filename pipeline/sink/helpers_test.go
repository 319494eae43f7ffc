package sink

import (
	"context"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest"
	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest/chdb"
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

// startBackends returns a context that ends after timeout or with the
// test, the config of the embedded broker with one partition per topic
// but metrics partitions for metrics, and the config of a fresh database
// on the package's ClickHouse.
func startBackends(t *testing.T, timeout time.Duration, metrics int) (context.Context, kafka.Config, clickhouse.Config) {
	t.Helper()
	ch := chtest.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	kcfg := kafkatest.Start(t, ctx, map[string]int{kafka.TopicStats: 1, kafka.TopicLogs: 1, kafka.TopicMetrics: metrics, kafka.TopicAlerts: 1, kafka.TopicCalls: 1, kafka.TopicDLQ: 1})
	return ctx, kcfg, chdb.Config(ch)
}
