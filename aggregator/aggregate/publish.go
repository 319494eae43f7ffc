package aggregate

import (
	"fmt"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

// paneSizeBound over-estimates the encoded size of a pane so that a batch
// is cut before it outgrows maxBytes.
func paneSizeBound(p *aggregator.PaneStat) int {
	k := p.Key
	return 160 + 2*(len(k.System)+len(k.App)+len(k.Group)+len(k.IDC)+len(k.Method)) + 18*len(p.Centroids)
}

// encodePanes turns panes into messages of at most maxBytes each, grouped
// by the stats partition of key(pane), each message keyed by the key of its
// first pane. sizeBound over-estimates the encoded size of a pane, and add
// appends one pane to the builder.
func encodePanes[P any](panes []P, maxBytes, partitions int, key func(*P) []byte, sizeBound func(*P) int,
	add func(*codec.Builder, *P) error) ([]kafkago.Message, error) {
	var msgs []kafkago.Message
	var b codec.Builder
	for _, g := range kafka.GroupByPartition(len(panes), partitions, func(i int) []byte { return key(&panes[i]) }) {
		b.Reset()
		for _, i := range g.Idx {
			pane := &panes[i]
			if b.Len() > 0 && b.Size()+sizeBound(pane) > maxBytes {
				msgs = append(msgs, kafkago.Message{Key: g.Key, Value: b.AppendTo(nil)})
				b.Reset()
			}
			if err := add(&b, pane); err != nil {
				return nil, err
			}
		}
		if b.Len() > 0 {
			msgs = append(msgs, kafkago.Message{Key: g.Key, Value: b.AppendTo(nil)})
		}
	}
	return msgs, nil
}

// callKey is the key a call pane's events were produced with.
func callKey(ps *aggregator.PaneStat) []byte {
	return kafka.CallKey(ps.Key.System, ps.Key.App, ps.Key.Method)
}

// callOwnerKey is the groupHandler's ownerKey for call panes: the panes of
// the overflow method mix partitions.
func callOwnerKey(ps *aggregator.PaneStat) []byte {
	if aggregator.IsOverflow(ps.Key.Method) {
		return nil
	}
	return callKey(ps)
}

// encode turns call panes into messages of at most maxBytes each, grouped
// by the stats partition of their key.
func encode(panes []aggregator.PaneStat, maxBytes, partitions int) ([]kafkago.Message, error) {
	var pb tpflowpb.PaneStat
	labels := make([]schemas.Label, 4)
	return encodePanes(panes, maxBytes, partitions, callKey, paneSizeBound, func(b *codec.Builder, ps *aggregator.PaneStat) error {
		labels[0] = schemas.Label{Name: schemas.LabelSystem, Value: ps.Key.System}
		labels[1] = schemas.Label{Name: schemas.LabelApp, Value: ps.Key.App}
		labels[2] = schemas.Label{Name: schemas.LabelGroup, Value: ps.Key.Group}
		labels[3] = schemas.Label{Name: schemas.LabelIDC, Value: ps.Key.IDC}
		ps.ToProto(&pb, b.LabelSet(labels), b.Symbol(ps.Key.Method))
		if err := b.AddPane(&pb); err != nil {
			return fmt.Errorf("cannot encode pane %v@%d: %w", ps.Key, ps.Start, err)
		}
		return nil
	})
}
