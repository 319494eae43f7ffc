package alerting

import (
	"cmp"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/tpflow/tpflow/schemas"
)

// The resource measures read the resource panes the aggregators publish
// from container metrics: cpu_usage is the average of
// container_cpu_usage_cores over the window (cores), memory_usage the
// average of container_memory_working_set_bytes (bytes),
// memory_utilization the average working set over the average limit
// (container_memory_limit_bytes) and cpu_utilization the average cores used
// over the average CFS quota (container_cpu_limit_cores), ratios in [0, 1]
// (CPU can exceed 1 briefly within a sample). A group of several containers
// adds their averages up (cores, bytes), and its utilisation is the sum of
// usage over the sum of limits.
const (
	CPUUsage          Measure = "cpu_usage"
	CPUUtilization    Measure = "cpu_utilization"
	MemoryUsage       Measure = "memory_usage"
	MemoryUtilization Measure = "memory_utilization"
)

// The metric names the resource measures read.
const (
	MetricCPUCores    = "container_cpu_usage_cores"
	MetricCPULimit    = "container_cpu_limit_cores"
	MetricMemoryBytes = "container_memory_working_set_bytes"
	MetricMemoryLimit = "container_memory_limit_bytes"
)

// resourceMetrics returns the metric a resource measure averages and, for
// a utilisation, the limit metric it divides by ("" otherwise).
func (m Measure) resourceMetrics() (used, limit string) {
	switch m {
	case CPUUsage:
		return MetricCPUCores, ""
	case CPUUtilization:
		return MetricCPUCores, MetricCPULimit
	case MemoryUsage:
		return MetricMemoryBytes, ""
	case MemoryUtilization:
		return MetricMemoryBytes, MetricMemoryLimit
	}
	panic("BUG: not a resource measure: " + string(m))
}

// ResourceLabelNames are the labels a selector and a by clause of a
// resource measure may name.
var ResourceLabelNames = append(schemas.KeyLabelNames(4), schemas.LabelHost, schemas.LabelContainer)

// isResource reports whether m reads resource panes.
func (m Measure) isResource() bool {
	switch m {
	case CPUUsage, CPUUtilization, MemoryUsage, MemoryUtilization:
		return true
	}
	return false
}

// ResourceKey identifies one container's metric.
type ResourceKey struct {
	System, App, Group, IDC, Host, Container, Name string
}

func (k *ResourceKey) label(name string) string {
	if v, ok := schemas.KeyLabelValue(name, k.System, k.App, k.Group, k.IDC); ok {
		return v
	}
	switch name {
	case schemas.LabelHost:
		return k.Host
	case schemas.LabelContainer:
		return k.Container
	}
	panic("BUG: unknown resource label " + name)
}

// ResourcePane is one final pane of one container's metric.
type ResourcePane struct {
	Key     ResourceKey
	Start   int64 // Unix ms
	PaneMs  int64
	Version uint64
	Count   uint64
	Sum     float64
}

// ResourceStore keeps the resource panes of the metrics the resource
// measures read, for the longest window; windows end at the end of the
// newest pane added, as the call windows do. A higher version of a pane
// replaces it. ResourceStore is safe for concurrent use.
type ResourceStore struct {
	keep time.Duration

	mu     sync.Mutex
	series map[ResourceKey][]ResourcePane // ordered by start
	end    int64
}

// NewResourceStore returns a store that keeps panes for keep.
func NewResourceStore(keep time.Duration) *ResourceStore {
	return &ResourceStore{keep: keep, series: map[ResourceKey][]ResourcePane{}}
}

// Add stores p if its metric is one the resource measures read; it
// reports whether it did.
func (s *ResourceStore) Add(p ResourcePane) bool {
	switch p.Key.Name {
	case MetricCPUCores, MetricCPULimit, MetricMemoryBytes, MetricMemoryLimit:
	default:
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	end := p.Start + p.PaneMs
	if end <= s.end-s.keep.Milliseconds() {
		return false
	}
	ps := s.series[p.Key]
	i, found := slices.BinarySearchFunc(ps, p.Start, func(q ResourcePane, start int64) int { return cmp.Compare(q.Start, start) })
	switch {
	case !found:
		ps = slices.Insert(ps, i, p)
	case p.Version > ps[i].Version:
		ps[i] = p
	}
	s.series[p.Key] = ps
	if end > s.end {
		s.end = end
		cut := end - s.keep.Milliseconds()
		for k, ps := range s.series {
			j := 0
			for j < len(ps) && ps[j].Start+ps[j].PaneMs <= cut {
				j++
			}
			if j == len(ps) {
				delete(s.series, k)
			} else if j > 0 {
				s.series[k] = slices.Clone(ps[j:])
			}
		}
	}
	return true
}

// resourceGroup is one group's summed averages over a window.
type resourceGroup struct {
	labels     map[string]string
	value, lim float64
}

// groups measures r per group of its by labels over the window ending at
// the newest pane.
func (s *ResourceStore) groups(r *Rule) []evalGroup {
	name, limit := r.Measure.resourceMetrics()
	s.mu.Lock()
	defer s.mu.Unlock()
	from := s.end - r.Window.Milliseconds()
	avg := func(k ResourceKey) (float64, bool) {
		var sum float64
		var n uint64
		for _, p := range s.series[k] {
			if p.Start >= from {
				sum += p.Sum
				n += p.Count
			}
		}
		if n == 0 {
			return 0, false
		}
		return sum / float64(n), true
	}
	byFP := map[string]*resourceGroup{}
	var order []string
	for k := range s.series {
		if k.Name != name || !r.matchesBy(k.label) {
			continue
		}
		v, ok := avg(k)
		if !ok {
			continue
		}
		var lim float64
		if limit != "" {
			// A container without a limit has no utilisation.
			lk := k
			lk.Name = limit
			if lim, ok = avg(lk); !ok || lim <= 0 {
				continue
			}
		}
		ls := make(map[string]string, len(r.By))
		for _, l := range r.By {
			ls[l] = k.label(l)
		}
		fp := fingerprint(ls)
		g := byFP[fp]
		if g == nil {
			g = &resourceGroup{labels: ls}
			byFP[fp] = g
			order = append(order, fp)
		}
		g.value += v
		g.lim += lim
	}
	slices.Sort(order)
	out := make([]evalGroup, 0, len(order))
	for _, fp := range order {
		g := byFP[fp]
		eg := evalGroup{labels: maps.Clone(g.labels), value: g.value, ok: true}
		if limit != "" {
			eg.value = g.value / g.lim
		}
		out = append(out, eg)
	}
	return out
}
