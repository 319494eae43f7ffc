package sink

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/aggregator/aggregate"
	"github.com/tpflow/tpflow/internal/devtools/loadgen"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

func TestResourcePanesOf(t *testing.T) {
	var bld codec.Builder
	ls := bld.LabelSet([]schemas.Label{{Name: "system", Value: "s"}, {Name: "app", Value: "a"}, {Name: "group", Value: "g"},
		{Name: "idc", Value: "i"}, {Name: "host", Value: "h"}, {Name: "container", Value: "c"}})
	if err := bld.AddResourcePane(&tpflowpb.ResourcePane{
		Labels: ls, Name: bld.Symbol("cpu_cores"), PaneStartUnixMs: 1_700_000_010_000, PaneMs: 10000, Version: 4,
		Count: 4, Sum: 3, Max: 1.5, P95: 1.5,
	}); err != nil {
		t.Fatal(err)
	}
	var b codec.Batch
	if err := codec.Decode(bld.AppendTo(nil), &b); err != nil {
		t.Fatal(err)
	}
	var row clickhouse.ResourcePaneRow
	if _, err := resourcePaneRow(&b, 0, &row); err != nil {
		t.Fatal(err)
	}
	rows := []clickhouse.ResourcePaneRow{row}
	want := clickhouse.ResourcePaneRow{
		PaneStart: time.UnixMilli(1_700_000_010_000).UTC(), PaneSeconds: 10,
		System: "s", App: "a", Group: "g", IDC: "i", Host: "h", Container: "c", Name: "cpu_cores",
		Count: 4, Avg: 0.75, Max: 1.5, P95: 1.5, Version: 4,
	}
	if len(rows) != 1 || rows[0] != want {
		t.Errorf("got %+v\nwant %+v", rows, want)
	}

	// A stats batch with both kinds fills both buffers; a batch whose
	// resource pane is broken reports it alone and keeps its good pane.
	if err := bld.AddPane(&tpflowpb.PaneStat{Labels: ls, Method: bld.Symbol("M"), PaneStartUnixMs: 1_700_000_010_000, PaneMs: 10000, Count: 1}); err != nil {
		t.Fatal(err)
	}
	if err := codec.Decode(bld.AppendTo(nil), &b); err != nil {
		t.Fatal(err)
	}
	conv := newConverter(kafka.TopicStats)
	if bad := conv.add(&b, 0); len(bad) != 0 || conv.rows() != 2 {
		t.Fatalf("add: %v, %d rows, want 2", bad, conv.rows())
	}
	raw := []byte{0x10, 0x07} // name symbol 7: out of range of a fresh batch
	if err := codec.Decode([]byte("\x08\x01"), &b); err != nil {
		t.Fatal(err)
	}
	b.ResourcePanes = append(b.ResourcePanes, raw)
	b.Panes = append(b.Panes, []byte{0x08, 0x00})
	bad := conv.add(&b, 1)
	if len(bad) != 1 || conv.rows() != 3 {
		t.Fatalf("bad resource pane: %+v, %d rows, want 1 bad record and 3 rows", bad, conv.rows())
	}
	if r := bad[0]; r.kind != "resource_pane" || r.msg != 1 || r.rec != 0 || !errors.Is(r.err, codec.ErrBadReference) || string(r.raw) != string(raw) {
		t.Errorf("bad record %+v, want resource pane 0 of message 1 with ErrBadReference and its bytes", r)
	}
}

// TestResourcePanesEndToEnd produces metric samples with loadgen, runs
// aggregate.Run and sink Run against the embedded broker and a real
// ClickHouse, and checks that resource_panes holds exactly one pane per
// container, metric and second with the exact count, avg, max and p95.
func TestResourcePanesEndToEnd(t *testing.T) {
	// Two metrics partitions, so the resource watermark spans partitions.
	ctx, kcfg, ccfg := startBackends(t, 90*time.Second, 2)
	ccfg.BatchAge = 100 * time.Millisecond

	acfg := aggregator.DefaultConfig()
	acfg.Pane = time.Second
	acfg.AllowedLateness = 0
	acfg.IdleTimeout = 300 * time.Millisecond
	eng, err := aggregator.New(acfg)
	if err != nil {
		t.Fatal(err)
	}
	scfg := aggregate.DefaultConfig()
	scfg.FlushInterval = 100 * time.Millisecond
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	aggDone := make(chan error, 1)
	go func() { aggDone <- aggregate.Run(runCtx, kcfg, scfg, eng, nil, nil) }()
	sinkDone := make(chan error, 1)
	go func() { sinkDone <- Run(runCtx, kcfg, ccfg, DefaultConfig(), nil, nil) }()

	samplesFile := t.TempDir() + "/samples.jsonl"
	st, err := loadgen.Run(ctx, kcfg, loadgen.Options{
		Duration: 2500 * time.Millisecond, Rate: 200, Keys: 4, Seed: 1,
		Containers: 6, SampleEvery: 100 * time.Millisecond, SamplesFile: samplesFile,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	samples, err := loadgen.ReadSamples(samplesFile)
	if err != nil {
		t.Fatal(err)
	}
	// On a loaded machine the generator may tick less often than every
	// 100 ms; the check below needs one sample per series at least.
	if int64(len(samples)) != st.Samples || len(samples) < 6*2 {
		t.Fatalf("%d samples in the file, %d acknowledged", len(samples), st.Samples)
	}

	type id struct {
		container, name string
		start           int64
	}
	vals := map[id][]float64{}
	for _, s := range samples {
		c := loadgen.ContainerOf(s.Container)
		k := id{c.Container, s.Name, s.TsUnixMs - s.TsUnixMs%1000}
		vals[k] = append(vals[k], s.Value)
	}
	type row struct {
		count              uint64
		avg, max, p95      float64
		host, app, grp, dc string
	}
	want := map[id]row{}
	for k, vs := range vals {
		slices.Sort(vs)
		sum := 0.0
		for _, v := range vs {
			sum += v
		}
		n := len(vs)
		c := loadgen.ContainerOf(containerIndex(t, k.container))
		want[k] = row{count: uint64(n), avg: sum / float64(n), max: vs[n-1], p95: vs[int(math.Ceil(0.95*float64(n)-1e-9))-1],
			host: c.Host, app: c.App, grp: c.Group, dc: c.IDC}
	}

	conn := openDB(t, ctx, ccfg)
	q := fmt.Sprintf("SELECT container, name, toUInt64(pane_start), pane_seconds, count, avg, max, p95, host, app, group_name, idc FROM %s.resource_panes FINAL", ccfg.Database)
	var got map[id]row
	for ctx.Err() == nil {
		got = map[id]row{}
		rows, err := conn.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var k id
			var r row
			var start uint64
			var secs uint32
			if err := rows.Scan(&k.container, &k.name, &start, &secs, &r.count, &r.avg, &r.max, &r.p95, &r.host, &r.app, &r.grp, &r.dc); err != nil {
				t.Fatal(err)
			}
			if secs != 1 {
				t.Errorf("pane_seconds %d, want 1", secs)
			}
			k.start = int64(start) * 1000
			got[k] = r
		}
		rows.Close()
		if len(got) >= len(want) && fmt.Sprint(got) == fmt.Sprint(want) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(got) != len(want) {
		t.Errorf("%d resource panes stored, want %d", len(got), len(want))
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("pane %+v missing", k)
			continue
		}
		// avg is stored from the engine's sum, added in ascending order
		// like here: exact.
		if g != w {
			t.Errorf("pane %+v: got %+v, want %+v", k, g, w)
		}
	}
	t.Logf("%d samples of %d containers → %d resource panes, all exact", len(samples), 6, len(want))
	stop()
	if err := <-aggDone; err != nil {
		t.Errorf("stream.Run: %v", err)
	}
	if err := <-sinkDone; err != nil {
		t.Errorf("sink Run: %v", err)
	}
}

func containerIndex(t *testing.T, name string) int {
	t.Helper()
	for i := range 1000 {
		if loadgen.ContainerOf(i).Container == name {
			return i
		}
	}
	t.Fatalf("unknown container %q", name)
	return -1
}
