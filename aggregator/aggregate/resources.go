package aggregate

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/aggregator/resource"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

// runResources consumes the metrics topic as a member of groupID into eng
// until ctx is done, publishing final resource panes to stats with prod and
// committing after the publish, as Run does for calls.
func runResources(ctx context.Context, kcfg kafka.Config, groupID string, flushEvery time.Duration, eng *resource.Engine,
	prod *kafka.Producer, dlq *kafka.DLQ, km *kafka.Metrics, m *metrics, log *slog.Logger) error {
	gc, err := kafka.NewGroupConsumer(kcfg, kcfg.Topic(kafka.TopicMetrics), groupID, log, kafka.WithMetrics(km))
	if err != nil {
		return err
	}
	statsTopic := kcfg.Topic(kafka.TopicStats)
	statsParts := kcfg.PartitionsFor(kafka.TopicStats)
	metricsTopic := kcfg.Topic(kafka.TopicMetrics)
	metricsParts := kcfg.PartitionsFor(kafka.TopicMetrics)
	if n, err := kafka.TopicPartitions(ctx, kcfg, statsTopic, metricsTopic); err == nil {
		if n[statsTopic] > 0 {
			statsParts = n[statsTopic]
		}
		if n[metricsTopic] > 0 {
			metricsParts = n[metricsTopic]
		}
	}
	h := &groupHandler[resource.Pane]{
		eng: resourceEngine{eng}, log: log, m: m, tm: m.resources, dlq: dlq, prod: prod,
		encode: func(panes []resource.Pane) ([]kafkago.Message, error) {
			return encodeResources(panes, kcfg.MaxMessageBytes, statsParts)
		},
		ownerKey: resourceOwnerKey, parts: metricsParts, what: "resource panes",
		dec:      codec.DecodeOptions{MaxBytes: kcfg.MaxMessageBytes},
		ingested: map[int32]int64{}, batches: map[int]*codec.Batch{},
	}
	return h.run(ctx, gc, flushEvery)
}

// resourceSizeBound over-estimates the encoded size of a resource pane.
func resourceSizeBound(p *resource.Pane) int {
	k := p.Key
	return 120 + 2*(len(k.System)+len(k.App)+len(k.Group)+len(k.IDC)+len(k.Host)+len(k.Container)+len(k.Name))
}

// metricKey is the key a resource pane's samples were produced with.
func metricKey(rp *resource.Pane) []byte { return kafka.MetricKey(rp.Key.Host, rp.Key.Container) }

// resourceOwnerKey is the groupHandler's ownerKey for resource panes: the
// panes of the overflow container mix partitions.
func resourceOwnerKey(rp *resource.Pane) []byte {
	if aggregator.IsOverflow(rp.Key.Container) {
		return nil
	}
	return metricKey(rp)
}

// encodeResources turns resource panes into messages of at most maxBytes
// each, grouped by the stats partition of their metrics key (host,
// container), as encode does for call panes.
func encodeResources(panes []resource.Pane, maxBytes, partitions int) ([]kafkago.Message, error) {
	labels := make([]schemas.Label, 6)
	return encodePanes(panes, maxBytes, partitions, metricKey, resourceSizeBound, func(b *codec.Builder, rp *resource.Pane) error {
		k := rp.Key
		labels[0] = schemas.Label{Name: schemas.LabelSystem, Value: k.System}
		labels[1] = schemas.Label{Name: schemas.LabelApp, Value: k.App}
		labels[2] = schemas.Label{Name: schemas.LabelGroup, Value: k.Group}
		labels[3] = schemas.Label{Name: schemas.LabelIDC, Value: k.IDC}
		labels[4] = schemas.Label{Name: schemas.LabelHost, Value: k.Host}
		labels[5] = schemas.Label{Name: schemas.LabelContainer, Value: k.Container}
		pb := tpflowpb.ResourcePane{
			Labels:          b.LabelSet(labels),
			Name:            b.Symbol(k.Name),
			PaneStartUnixMs: rp.Start,
			PaneMs:          uint32(rp.PaneMs),
			Version:         rp.Version,
			Count:           rp.Count,
			Sum:             rp.Sum,
			Max:             rp.Max,
			P95:             rp.P95,
		}
		if err := b.AddResourcePane(&pb); err != nil {
			return fmt.Errorf("cannot encode resource pane %v@%d: %w", k, rp.Start, err)
		}
		return nil
	})
}
