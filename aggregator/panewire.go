package aggregator

import (
	"errors"

	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

// ToProto writes ps into pb as the aggregator publishes it, reusing pb's
// centroid slices; labels and method are ps's key as references of the
// batch being built (the label set of system, app, group and idc, and the
// method's symbol). PaneFromProto is its inverse.
func (ps *PaneStat) ToProto(pb *tpflowpb.PaneStat, labels, method uint32) {
	means, weights := pb.CentroidMeans[:0], pb.CentroidWeights[:0]
	for _, c := range ps.Centroids {
		means = append(means, float64(c.Mean))
		weights = append(weights, float64(c.Weight))
	}
	*pb = tpflowpb.PaneStat{
		Labels:          labels,
		Method:          method,
		PaneStartUnixMs: ps.Start,
		PaneMs:          uint32(ps.PaneMs),
		Version:         ps.Version,
		Count:           ps.Count,
		Errors:          ps.Errors,
		SumUs:           float64(ps.SumUs),
		MinUs:           float64(ps.MinUs),
		MaxUs:           float64(ps.MaxUs),
		P50Us:           ps.P50,
		P90Us:           ps.P90,
		P99Us:           ps.P99,
		P999Us:          ps.P999,
		CentroidMeans:   means,
		CentroidWeights: weights,
		Rollup:          ps.Rollup,
	}
}

// PaneFromProto converts pb, a pane of the decoded batch b, into dst,
// reusing dst's centroids. A label set or method that b does not hold is
// codec.ErrBadReference; statistics that fail codec.CheckPane are
// codec.ErrMalformed.
func PaneFromProto(dst *PaneStat, b *codec.Batch, pb *tpflowpb.PaneStat) error {
	if int(pb.Labels) >= b.NumLabelSets() || int(pb.Method) >= len(b.Symbols) {
		return codec.ErrBadReference
	}
	v := codec.PaneValues{
		Count: pb.Count, Errors: pb.Errors, SumUs: pb.SumUs, MinUs: pb.MinUs, MaxUs: pb.MaxUs,
		Quantiles:     [4]float64{pb.P50Us, pb.P90Us, pb.P99Us, pb.P999Us},
		CentroidMeans: pb.CentroidMeans, CentroidWeights: pb.CentroidWeights,
	}
	if err := codec.CheckPane(&v); err != nil {
		return errors.Join(codec.ErrMalformed, err)
	}
	cents := dst.Centroids[:0]
	for i, mean := range pb.CentroidMeans {
		cents = append(cents, Centroid{Mean: float32(mean), Weight: uint32(pb.CentroidWeights[i])})
	}
	*dst = PaneStat{
		Key: Key{
			System: b.Label(pb.Labels, schemas.LabelSystem),
			App:    b.Label(pb.Labels, schemas.LabelApp),
			Group:  b.Label(pb.Labels, schemas.LabelGroup),
			IDC:    b.Label(pb.Labels, schemas.LabelIDC),
			Method: b.Symbol(pb.Method),
		},
		Start: pb.PaneStartUnixMs, PaneMs: int64(pb.PaneMs), Version: pb.Version,
		Count: pb.Count, Errors: pb.Errors, SumUs: uint64(pb.SumUs),
		MinUs: uint32(pb.MinUs), MaxUs: uint32(pb.MaxUs),
		P50: pb.P50Us, P90: pb.P90Us, P99: pb.P99Us, P999: pb.P999Us,
		Centroids: cents, Rollup: pb.Rollup,
	}
	return nil
}
