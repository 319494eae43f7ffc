package late

import (
	"context"
	"fmt"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/pipeline/kafka"
)

// sinkBarrier waits until the sink group has stored every stats message
// that exists now. A late message is produced after the stats messages of
// the panes it corrects were acknowledged, so once the sink's committed
// offsets reach the stats topic's end offsets read after the late message
// was fetched, those panes are in ClickHouse and the merge reads them.
type sinkBarrier struct {
	cl    *kafkago.Client
	topic string
	group string
	every time.Duration
	m     *metrics
}

func newSinkBarrier(kcfg kafka.Config, group string) (*sinkBarrier, error) {
	tr, err := kcfg.Transport()
	if err != nil {
		return nil, fmt.Errorf("cannot start late merger: %w", err)
	}
	return &sinkBarrier{
		cl:    &kafkago.Client{Addr: kafkago.TCP(kcfg.Brokers...), Timeout: kcfg.WriteTimeout, Transport: tr},
		topic: kcfg.Topic(kafka.TopicStats), group: group, every: 200 * time.Millisecond,
	}, nil
}

func (b *sinkBarrier) close() { b.cl.Transport.(*kafkago.Transport).CloseIdleConnections() }

// wait returns once the sink group's committed offset on every stats
// partition is at or past the partition's end offset as read now.
func (b *sinkBarrier) wait(ctx context.Context) error {
	md, err := b.cl.Metadata(ctx, &kafkago.MetadataRequest{Topics: []string{b.topic}})
	if err != nil {
		return fmt.Errorf("cannot read metadata of %s: %w", b.topic, err)
	}
	var parts []int
	for _, t := range md.Topics {
		if t.Error != nil {
			return fmt.Errorf("cannot read metadata of %s: %w", b.topic, t.Error)
		}
		for _, p := range t.Partitions {
			parts = append(parts, p.ID)
		}
	}
	reqs := make([]kafkago.OffsetRequest, len(parts))
	for i, p := range parts {
		reqs[i] = kafkago.LastOffsetOf(p)
	}
	lo, err := b.cl.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{b.topic: reqs}})
	if err != nil {
		return fmt.Errorf("cannot list offsets of %s: %w", b.topic, err)
	}
	end := map[int]int64{}
	for _, po := range lo.Topics[b.topic] {
		if po.Error != nil {
			return fmt.Errorf("cannot list offsets of %s/%d: %w", b.topic, po.Partition, po.Error)
		}
		end[po.Partition] = po.LastOffset
	}
	for {
		of, err := b.cl.OffsetFetch(ctx, &kafkago.OffsetFetchRequest{GroupID: b.group, Topics: map[string][]int{b.topic: parts}})
		if err != nil {
			return fmt.Errorf("cannot fetch offsets of group %s: %w", b.group, err)
		}
		committed := map[int]int64{}
		for _, p := range of.Topics[b.topic] {
			if p.Error != nil {
				return fmt.Errorf("cannot fetch offset of group %s on %s/%d: %w", b.group, b.topic, p.Partition, p.Error)
			}
			committed[p.Partition] = p.CommittedOffset
		}
		behind := false
		for _, p := range parts {
			c, ok := committed[p]
			if !ok {
				c = -1 // never committed
			}
			if max(c, 0) < end[p] {
				behind = true
			}
		}
		if !behind {
			return nil
		}
		if b.m != nil {
			b.m.sinkWaits.Inc()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(b.every):
		}
	}
}
