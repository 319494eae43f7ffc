package dashboards

import (
	"testing"
	"time"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/aggregator/resource"
	"github.com/tpflow/tpflow/collectors/metrics"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
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
		MetricCPULimit:        metrics.Gauge,
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

// TestResourceGaugesReachResourcePanes sends one reading of the
// collector's container samples, encoded as the node agent sends them,
// through the resource engine, and checks that every gauge the resource
// panels read from resource_panes comes out as a pane under its name.
func TestResourceGaugesReachResourcePanes(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	prev := metrics.CgroupStats{At: now.Add(-10 * time.Second), CPUUsageNanos: 1e9}
	cur := metrics.CgroupStats{At: now, CPUUsageNanos: 3e9, CPULimitCores: 1.5, MemoryWorkingSet: 1 << 28, MemoryLimit: 1 << 30}
	var b codec.Builder
	ls := b.LabelSet([]schemas.Label{
		{Name: schemas.LabelSystem, Value: "shop"}, {Name: schemas.LabelApp, Value: "cart"},
		{Name: schemas.LabelGroup, Value: "g1"}, {Name: schemas.LabelIDC, Value: "bj"},
		{Name: schemas.LabelHost, Value: "node-1"}, {Name: schemas.LabelContainer, Value: "cart-0"},
	})
	for _, s := range cur.Samples(&prev) {
		b.AddMetric(codec.Metric{TsUnixMs: now.UnixMilli(), Labels: ls, Name: b.Symbol(s.Name), Value: s.Value, Kind: uint8(s.Kind)})
	}
	batch := new(codec.Batch)
	if err := codec.Decode(b.AppendTo(nil), batch); err != nil {
		t.Fatal(err)
	}
	clock := now
	eng, err := resource.New(aggregator.DefaultConfig(), resource.WithClock(func() time.Time { return clock }))
	if err != nil {
		t.Fatal(err)
	}
	if st := eng.Ingest(0, 0, batch); st.Accepted == 0 {
		t.Fatalf("nothing accepted: %+v", st)
	}
	clock = now.Add(time.Hour)
	panes, _ := eng.Flush()
	got := map[string]float64{}
	for _, p := range panes {
		got[p.Key.Name] = p.Avg()
	}
	for name, want := range map[string]float64{MetricCPUCores: 0.2, MetricCPULimit: 1.5, MetricMemWorkingSet: 1 << 28, MetricMemLimit: 1 << 30} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("resource pane %s = %v (present %v), want %v; panes %v", name, v, ok, want, got)
		}
	}
}
