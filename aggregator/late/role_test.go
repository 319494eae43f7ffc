package late

import (
	"testing"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/internal/role"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/kafka"
)

func TestNextToSinkOnlyBesideASinkOfStats(t *testing.T) {
	k, c, a := kafka.DefaultConfig(), clickhouse.DefaultConfig(), aggregator.DefaultConfig()
	if r := NextToSink([]string{kafka.TopicLogs, kafka.TopicMetrics}, "sinks", k, c, a, role.Settings{}); r != nil {
		t.Errorf("a sink without stats got a late merger: %v", r)
	}
	r := NextToSink([]string{kafka.TopicLogs, kafka.TopicStats}, "sinks", k, c, a, role.Settings{})
	if r == nil {
		t.Fatal("a sink of stats got no late merger")
	}
	if err := r.Ready(t.Context()); err != nil {
		t.Errorf("Ready = %v, want nil (the sink reports)", err)
	}
	if rs := r.Routes(); len(rs) != 0 {
		t.Errorf("Routes = %v, want none", rs)
	}
}
