package dashboards

import (
	"testing"
	"time"

	"github.com/tpflow/tpflow/collectors/metrics"
)

// TestResourceMetricNamesAreCollected checks that every metric name the
// resource panels read is one the collector reports for a container, with
// the kind the panel expects: gauges reach resource_panes (the aggregator
// skips counters), counters are read raw from metric_samples.
func TestResourceMetricNamesAreCollected(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	prev := metrics.CgroupStats{At: now.Add(-10 * time.Second), CPUUsageNanos: 1e9}
	cur := metrics.CgroupStats{At: now, CPUUsageNanos: 3e9}
	kinds := map[string]metrics.Kind{}
	for _, s := range cur.Samples(&prev) {
		kinds[s.Name] = s.Kind
	}
	for name, want := range map[string]metrics.Kind{
		MetricCPUCores:        metrics.Gauge,
		MetricMemWorkingSet:   metrics.Gauge,
		MetricMemLimit:        metrics.Gauge,
		MetricCFSPeriods:      metrics.Counter,
		MetricCFSThrottled:    metrics.Counter,
		MetricCFSThrottledSec: metrics.Counter,
	} {
		got, ok := kinds[name]
		if !ok {
			t.Errorf("the collector reports no %s", name)
		} else if got != want {
			t.Errorf("%s has kind %v, want %v", name, got, want)
		}
	}
}
