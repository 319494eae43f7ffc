package sink

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	err := Config{Topics: []string{"stats", "calls", "stats"}}.Validate()
	for _, want := range []string{"group_id: must not be empty", `topics[1]: must be stats, logs, metrics or alerts, got "calls"`, `topics[2]: "stats" is listed twice`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func TestPanesOf(t *testing.T) {
	var bld codec.Builder
	ls := bld.LabelSet([]schemas.Label{{Name: "system", Value: "s"}, {Name: "app", Value: "a"}, {Name: "group", Value: "g"}, {Name: "idc", Value: "i"}})
	if err := bld.AddPane(&tpflowpb.PaneStat{
		Labels: ls, Method: bld.Symbol("M"), PaneStartUnixMs: 1_700_000_010_000, PaneMs: 10000, Version: 3,
		Count: 7, Errors: 1, SumUs: 70, MinUs: 2, MaxUs: 30, P50Us: 5, P90Us: 20, P99Us: 29, P999Us: 30,
		CentroidMeans: []float64{2, 5, 30}, CentroidWeights: []float64{3, 3, 1},
	}); err != nil {
		t.Fatal(err)
	}
	var b codec.Batch
	if err := codec.Decode(bld.AppendTo(nil), &b); err != nil {
		t.Fatal(err)
	}
	var row clickhouse.PaneRow
	if _, err := paneRow(false)(&b, 0, &row); err != nil {
		t.Fatal(err)
	}
	rows := []clickhouse.PaneRow{row}
	if skip, err := paneRow(true)(&b, 0, &row); !skip || err != nil {
		t.Errorf("a pane read as a rollup: skip %v, %v", skip, err)
	}
	want := clickhouse.PaneRow{
		PaneStart: time.UnixMilli(1_700_000_010_000).UTC(), PaneSeconds: 10,
		System: "s", App: "a", Group: "g", IDC: "i", Method: "M",
		Count: 7, Errors: 1, SumUs: 70, MinUs: 2, MaxUs: 30, P50Us: 5, P90Us: 20, P99Us: 29, P999Us: 30,
		CentroidMeans: []float64{2, 5, 30}, CentroidWeights: []float64{3, 3, 1}, Version: 3,
	}
	if len(rows) != 1 || !equalPane(rows[0], want) {
		t.Errorf("got %+v\nwant %+v", rows, want)
	}

	// A pane whose centroid arrays differ in length is refused.
	bld.Reset()
	ls = bld.LabelSet(nil)
	_ = bld.AddPane(&tpflowpb.PaneStat{Labels: ls, CentroidMeans: []float64{1}})
	if err := codec.Decode(bld.AppendTo(nil), &b); err != nil {
		t.Fatal(err)
	}
	if _, err := paneRow(false)(&b, 0, &row); !errors.Is(err, codec.ErrBadReference) {
		t.Errorf("mismatched centroids: got %v", err)
	}
}

func equalPane(a, b clickhouse.PaneRow) bool {
	return reflect.DeepEqual(a, b)
}
