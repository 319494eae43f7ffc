package codec

import (
	"errors"
	"fmt"
	"math"
)

// PaneValues are the statistics of one call pane as the wire (a PaneStat)
// and the tables (call_panes, call_rollups) carry them.
type PaneValues struct {
	Count, Errors       uint64
	SumUs, MinUs, MaxUs float64
	// Quantiles are p50, p90, p99 and p999, µs.
	Quantiles                      [4]float64
	CentroidMeans, CentroidWeights []float64
}

// CheckPane is the one validation of a call pane's statistics, wherever the
// pane comes from (a decoded PaneStat, a stored row, a row to store): at
// least one call and no more errors than calls; sum, min and max finite,
// not negative and min at most max; finite percentiles; and a digest of as
// many means as weights, the means finite and ascending (the wire contract
// sorts them), the weights finite and positive.
func CheckPane(v *PaneValues) error {
	if v.Count == 0 {
		return errors.New("count is 0")
	}
	if v.Errors > v.Count {
		return fmt.Errorf("errors %d exceed count %d", v.Errors, v.Count)
	}
	if !(finite(v.SumUs) && finite(v.MinUs) && finite(v.MaxUs)) || v.SumUs < 0 || v.MinUs < 0 || v.MinUs > v.MaxUs {
		return fmt.Errorf("sum %g, min %g or max %g is not a latency in range", v.SumUs, v.MinUs, v.MaxUs)
	}
	for _, f := range v.Quantiles {
		if !finite(f) {
			return fmt.Errorf("latency statistic %g is not finite", f)
		}
	}
	ms, ws := v.CentroidMeans, v.CentroidWeights
	if len(ms) != len(ws) {
		return fmt.Errorf("%d centroid means but %d weights", len(ms), len(ws))
	}
	for i, m := range ms {
		if !finite(m) {
			return fmt.Errorf("centroid %d has mean %g", i, m)
		}
		if w := ws[i]; !finite(w) || w <= 0 {
			return fmt.Errorf("centroid %d has weight %g; want a finite positive number", i, w)
		}
		if i > 0 && m < ms[i-1] {
			return fmt.Errorf("centroid %d is out of order (mean %g after %g)", i, m, ms[i-1])
		}
	}
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
