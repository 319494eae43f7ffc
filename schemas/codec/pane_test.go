package codec

import (
	"math"
	"strings"
	"testing"
)

func TestCheckPane(t *testing.T) {
	good := func() PaneValues {
		return PaneValues{Count: 3, Errors: 1, SumUs: 60, MinUs: 10, MaxUs: 30, Quantiles: [4]float64{20, 30, 30, 30},
			CentroidMeans: []float64{10, 20, 30}, CentroidWeights: []float64{1, 1, 1}}
	}
	v := good()
	if err := CheckPane(&v); err != nil {
		t.Fatalf("good pane: %v", err)
	}
	for _, c := range []struct {
		mod  func(*PaneValues)
		want string
	}{
		{func(v *PaneValues) { v.Count, v.Errors = 0, 0 }, "count is 0"},
		{func(v *PaneValues) { v.Errors = 4 }, "errors 4 exceed count 3"},
		{func(v *PaneValues) { v.MinUs = 31 }, "not a latency in range"},
		{func(v *PaneValues) { v.SumUs = -1 }, "not a latency in range"},
		{func(v *PaneValues) { v.MaxUs = math.Inf(1) }, "not a latency in range"},
		{func(v *PaneValues) { v.Quantiles[2] = math.NaN() }, "not finite"},
		{func(v *PaneValues) { v.CentroidWeights = v.CentroidWeights[:2] }, "3 centroid means but 2 weights"},
		{func(v *PaneValues) { v.CentroidMeans[1] = math.NaN() }, "centroid 1 has mean NaN"},
		{func(v *PaneValues) { v.CentroidWeights[2] = 0 }, "centroid 2 has weight 0"},
		{func(v *PaneValues) { v.CentroidMeans[2] = 5 }, "centroid 2 is out of order"},
	} {
		v := good()
		c.mod(&v)
		if err := CheckPane(&v); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error containing %q", v, err, c.want)
		}
	}
}
