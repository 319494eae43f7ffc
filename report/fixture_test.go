package report

import (
	"context"
	"math"
	"os"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/influxdata/tdigest"

	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest"
	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest/chdb"
)

func TestMain(m *testing.M) { os.Exit(chtest.RunMain(m)) }

// setup opens a migrated database of its own on the shared server.
func setup(tb testing.TB) (driver.Conn, clickhouse.Config) {
	tb.Helper()
	return chdb.Shared(tb)
}

// The known dataset: 10 minutes of 10-s panes from fixFrom.
var (
	fixFrom  = time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	fixPanes = 60
	fixTo    = fixFrom.Add(time.Duration(fixPanes) * 10 * time.Second)
)

// container is one container of the dataset.
type container struct {
	system, app, group, idc, host, name string
	// first is the first pane it reports in.
	first int
	// cpuLimit in cores and memLimit in bytes; 0 is none.
	cpuLimit, memLimit float64
}

var fixContainers = []container{
	{"pay", "api", "g1", "bj", "h1", "c1", 0, 2, 4 << 30},
	{"pay", "api", "g1", "bj", "h2", "c2", 0, 2, 4 << 30},
	{"pay", "api", "g2", "sh", "h3", "c3", 0, 1, 2 << 30},
	{"pay", "api", "g2", "sh", "h4", "c4", 0, 1, 2 << 30},
	{"pay", "api", "g2", "sh", "h5", "c5", 30, 1, 2 << 30}, // scaled out half-way
	{"pay", "ledger", "g1", "bj", "h1", "c6", 0, 4, 8 << 30},
	{"shop", "web", "g1", "gz", "h6", "c7", 0, 0, 0}, // no limits at all
}

// cpuAt and memAt are the pane averages: multiples of 1/8 core and of
// 1 MiB, so that every sum is exact in any order.
func cpuAt(ci, pane int) float64 { return float64(1+(pane*7+ci*3)%13) / 8 }
func memAt(ci, pane int) float64 {
	return float64((512 + ((pane*11+ci*5)%37)*16) << 20)
}

func resourceRows() []clickhouse.ResourcePaneRow {
	m := DefaultMetrics()
	var rows []clickhouse.ResourcePaneRow
	for ci, c := range fixContainers {
		for p := c.first; p < fixPanes; p++ {
			add := func(name string, v float64, version uint64) {
				rows = append(rows, clickhouse.ResourcePaneRow{
					PaneStart: fixFrom.Add(time.Duration(p) * 10 * time.Second), PaneSeconds: 10,
					System: c.system, App: c.app, Group: c.group, IDC: c.idc, Host: c.host, Container: c.name,
					Name: name, Count: version, Avg: v, Max: v, P95: v, Version: version,
				})
			}
			add(m.CPUUsed, cpuAt(ci, p), 5)
			add(m.MemoryUsed, memAt(ci, p), 5)
			add(m.CPULimit, c.cpuLimit, 5)
			add(m.MemoryLimit, c.memLimit, 5)
			if p%7 == 0 {
				// An earlier, partial version of the pane that the
				// later one replaces: FINAL must drop it.
				add(m.CPUUsed, 100, 2)
			}
			// A metric the report does not read.
			add("container_processes", 42, 5)
		}
	}
	return rows
}

// callLatencies returns the raw latencies (µs) of one method's pane:
// deterministic, spread over three orders of magnitude.
func callLatencies(key, pane, n int) []float64 {
	out := make([]float64, n)
	x := uint64(key*1_000_003 + pane*7919 + 1)
	for i := range out {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		u := float64(x%1_000_000) / 1_000_000
		out[i] = math.Round(200 * math.Exp(4*u*u))
	}
	return out
}

// callKey is one method of the dataset.
type callKey struct{ system, app, group, idc, method string }

var fixCalls = []callKey{
	{"pay", "api", "g1", "bj", "pay.api.Charge"},
	{"pay", "api", "g1", "bj", "pay.api.Refund"},
	{"pay", "api", "g2", "sh", "pay.api.Charge"},
	{"pay", "ledger", "g1", "bj", "ledger.Post"},
	{"shop", "web", "g1", "gz", "GET /cart"},
}

// callRows returns the call panes of fixCalls with digests built from
// callLatencies at compression 100, as the aggregator stores them, and the
// raw latencies per key index.
func callRows() ([]clickhouse.PaneRow, map[int][]float64) {
	raw := map[int][]float64{}
	var rows []clickhouse.PaneRow
	for ki, k := range fixCalls {
		for p := range fixPanes {
			n := 50 + (p*13+ki*29)%200
			lat := callLatencies(ki, p, n)
			raw[ki] = append(raw[ki], lat...)
			rows = append(rows, paneRow(k, fixFrom.Add(time.Duration(p)*10*time.Second), lat, uint64(p%5)))
		}
	}
	return rows, raw
}

func paneRow(k callKey, start time.Time, lat []float64, errors uint64) clickhouse.PaneRow {
	td := tdigest.NewWithCompression(100)
	sum := 0.0
	for _, v := range lat {
		td.Add(v, 1)
		sum += v
	}
	r := clickhouse.PaneRow{
		PaneStart: start, PaneSeconds: 10, System: k.system, App: k.app, Group: k.group, IDC: k.idc, Method: k.method,
		Count: uint64(len(lat)), Errors: errors, SumUs: sum, MinUs: slices.Min(lat), MaxUs: slices.Max(lat),
		P50Us: td.Quantile(0.5), P90Us: td.Quantile(0.9), P99Us: td.Quantile(0.99), P999Us: td.Quantile(0.999), Version: 1,
	}
	for _, c := range td.Centroids(nil) {
		r.CentroidMeans = append(r.CentroidMeans, c.Mean)
		r.CentroidWeights = append(r.CentroidWeights, c.Weight)
	}
	return r
}

// loadFixture writes the dataset into the test's database.
func loadFixture(tb testing.TB, conn driver.Conn, cfg clickhouse.Config) map[int][]float64 {
	tb.Helper()
	w := clickhouse.NewWriter(conn, cfg, nil)
	ctx := context.Background()
	if err := w.WriteResourcePanes(ctx, resourceRows()); err != nil {
		tb.Fatal(err)
	}
	panes, raw := callRows()
	if err := w.WritePanes(ctx, panes); err != nil {
		tb.Fatal(err)
	}
	return raw
}

// exactQuantile is the nearest-rank quantile of vs.
func exactQuantile(vs []float64, q float64) float64 {
	s := slices.Clone(vs)
	sort.Float64s(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, i)]
}
