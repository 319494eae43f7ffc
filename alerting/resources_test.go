package alerting

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

const resourceRules = `
rules:
  - name: ContainerCPU
    measure: cpu_usage
    window: 20s
    op: ">"
    threshold: 1.5
  - name: AppMemory
    selector: {app: pay}
    measure: memory_utilization
    window: 20s
    op: ">="
    threshold: 0.9
    by: [app]
    annotations:
      summary: "{{ $labels.app }} uses {{ $value }} of its memory"
  - name: CPUNearQuota
    measure: cpu_utilization
    window: 20s
    op: ">"
    threshold: 0.8
    by: [container]
`

func TestResourceRules(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)}
	m := newTestManager(t, newFakeSource(), c, resourceRules)
	st := NewResourceStore(time.Minute)
	m.SetResourceStore(st)
	const pane = 10_000
	t0 := c.t.UnixMilli()
	add := func(container, name string, i int64, samples ...float64) {
		var sum float64
		for _, v := range samples {
			sum += v
		}
		st.Add(ResourcePane{Key: ResourceKey{System: "shop", App: "pay", Host: "n1", Container: container, Name: name},
			Start: t0 + i*pane, PaneMs: pane, Version: uint64(len(samples)), Count: uint64(len(samples)), Sum: sum})
	}
	if st.Add(ResourcePane{Key: ResourceKey{Name: "container_processes"}, Start: t0, PaneMs: pane, Count: 1}) {
		t.Error("a metric no measure reads was kept")
	}
	// api: 2 cores on average over the last two panes of a 2.25-core
	// quota (0.889); worker 1 core of 4 (0.25).
	// Memory: api 900 of 1000, worker 950 of 1000 → 1850/2000 = 0.925.
	for i := int64(0); i < 3; i++ {
		add("api", MetricCPUCores, i, 1, 3)
		add("api", MetricCPULimit, i, 2.25)
		add("worker", MetricCPUCores, i, 1)
		add("worker", MetricCPULimit, i, 4)
		add("api", MetricMemoryBytes, i, 900)
		add("api", MetricMemoryLimit, i, 1000)
		add("worker", MetricMemoryBytes, i, 950)
		add("worker", MetricMemoryLimit, i, 1000)
	}
	// A container without a limit has no utilisation and does not count.
	add("sidecar", MetricMemoryBytes, 2, 5000)
	// A correction with more samples replaces the pane.
	add("worker", MetricCPUCores, 2, 1, 1, 1)

	var got []string
	for _, a := range m.Eval(c.now()) {
		got = append(got, a.Rule+"/"+a.Labels["container"]+"/"+a.Annotations["summary"])
		if a.Rule == "AppMemory" && math.Abs(a.Value-0.925) > 1e-9 {
			t.Errorf("AppMemory value %v, want 0.925", a.Value)
		}
		if a.Rule == "ContainerCPU" && (a.Value != 2 || len(a.Labels) != 7) {
			t.Errorf("ContainerCPU %v %v", a.Value, a.Labels)
		}
		if a.Rule == "CPUNearQuota" && math.Abs(a.Value-2/2.25) > 1e-9 {
			t.Errorf("CPUNearQuota value %v, want %v", a.Value, 2/2.25)
		}
	}
	slices.Sort(got)
	if s := strings.Join(got, " "); s != "AppMemory//pay uses 0.925 of its memory CPUNearQuota/api/ ContainerCPU/api/" {
		t.Errorf("alerts %q", s)
	}
	// Panes older than the store keeps are dropped as newer ones arrive.
	add("api", MetricCPUCores, 9, 0.5)
	if n := len(st.series[ResourceKey{System: "shop", App: "pay", Host: "n1", Container: "api", Name: MetricCPUCores}]); n != 1 {
		t.Errorf("%d api cpu panes kept, want 1", n)
	}
	for _, a := range m.Eval(c.now()) {
		if a.Rule == "ContainerCPU" && a.State != StateResolved {
			t.Errorf("ContainerCPU %s after the load went", a.State)
		}
	}
}
