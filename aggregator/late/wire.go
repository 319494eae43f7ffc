// Package late is the late path: call events that reached the aggregator
// after their pane's grace travel on the late topic (Encode, used by the
// aggregator) to the late merger (Run, in the sink role), which folds them
// into the panes and rollups stored in ClickHouse. DESIGN.md next to this
// file records who owns a pane when, and why a late message redelivered
// after a crash is merged once.
package late

import (
	"strconv"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
)

// Labels a late message adds to its events' label sets. RollupLabel ("1")
// marks the events whose rollup bucket the late path merges too
// (aggregator.LateEvent.Rollup); the engine added the others to a bucket
// it still holds. SourcePartitionLabel and SourceOffsetLabel are the calls
// partition and offset the event was read from (decimal): its identity,
// by which the merger keeps a redelivered or re-produced event from being
// merged twice.
const (
	RollupLabel          = "tpflow_late_rollup"
	SourcePartitionLabel = "tpflow_late_calls_partition"
	SourceOffsetLabel    = "tpflow_late_calls_offset"
)

// eventBound over-estimates the encoded size of one late event beyond its
// label strings, so that a message is cut before it outgrows maxBytes.
const eventBound = 64

// Encode turns late events into messages for the late topic of partitions
// partitions, each keyed and placed like the calls of its events
// (kafka.CallKey of system, app and method), so that one late merger owns
// every late event of a key. A message holds the events of one partition
// and is cut before it exceeds maxBytes, but never between two events of
// one key read from the same calls message (the merger's marks rely on
// that; such a group alone may exceed maxBytes by its labels). The
// messages are EventBatches of calls with their key labels (system, app,
// group, idc) and the labels above. Events keep their order.
func Encode(events []aggregator.LateEvent, maxBytes, partitions int) []kafkago.Message {
	var msgs []kafkago.Message
	var b codec.Builder
	labels := make([]schemas.Label, 0, 7)
	groups := kafka.GroupByPartition(len(events), partitions, func(i int) []byte {
		k := &events[i].Key
		return kafka.CallKey(k.System, k.App, k.Method)
	})
	for _, g := range groups {
		b.Reset()
		for n, i := range g.Idx {
			ev := &events[i]
			k := &ev.Key
			size := eventBound + len(k.System) + len(k.App) + len(k.Group) + len(k.IDC) + len(k.Method)
			if b.Len() > 0 && b.Size()+size > maxBytes && !sameSource(&events[g.Idx[n-1]], ev) {
				msgs = append(msgs, kafkago.Message{Key: g.Key, Value: b.AppendTo(nil)})
				b.Reset()
			}
			labels = append(labels[:0],
				schemas.Label{Name: schemas.LabelSystem, Value: k.System},
				schemas.Label{Name: schemas.LabelApp, Value: k.App},
				schemas.Label{Name: schemas.LabelGroup, Value: k.Group},
				schemas.Label{Name: schemas.LabelIDC, Value: k.IDC},
				schemas.Label{Name: SourcePartitionLabel, Value: strconv.FormatInt(int64(ev.Partition), 10)},
				schemas.Label{Name: SourceOffsetLabel, Value: strconv.FormatInt(ev.Offset, 10)})
			if ev.Rollup {
				labels = append(labels, schemas.Label{Name: RollupLabel, Value: "1"})
			}
			s := b.Series(b.LabelSet(labels), k.Method)
			b.AddCall(codec.Call{TsUnixMs: ev.TsUnixMs, Series: s, LatencyUs: ev.LatencyUs, Status: ev.Status, OK: ev.OK})
		}
		if b.Len() > 0 {
			msgs = append(msgs, kafkago.Message{Key: g.Key, Value: b.AppendTo(nil)})
		}
	}
	return msgs
}

// sameSource reports whether a and b are events of one key read from the
// same calls message.
func sameSource(a, b *aggregator.LateEvent) bool {
	return a.Partition == b.Partition && a.Offset == b.Offset && a.Key == b.Key
}

// event is one decoded late event; src is false when its source labels
// are missing or malformed (not a message of the aggregator).
type event struct {
	key       aggregator.Key
	rollup    bool
	src       bool
	partition int32
	offset    int64
	call      codec.Call
}

// decodeEvents appends the events of the decoded batch b to dst.
func decodeEvents(dst []event, b *codec.Batch) []event {
	type set struct {
		done, rollup  bool
		key           aggregator.Key
		partOK, offOK bool
		partition     int32
		offset        int64
	}
	sets := make([]set, b.NumLabelSets())
	for _, c := range b.Calls {
		sr := b.Series[c.Series]
		st := &sets[sr.Labels]
		if !st.done {
			st.done = true
			refs := b.LabelSet(sr.Labels)
			for i := 0; i+1 < len(refs); i += 2 {
				v := b.Symbol(refs[i+1])
				switch b.Symbol(refs[i]) {
				case schemas.LabelSystem:
					st.key.System = v
				case schemas.LabelApp:
					st.key.App = v
				case schemas.LabelGroup:
					st.key.Group = v
				case schemas.LabelIDC:
					st.key.IDC = v
				case RollupLabel:
					st.rollup = v == "1"
				case SourcePartitionLabel:
					p, err := strconv.ParseInt(v, 10, 32)
					st.partition, st.partOK = int32(p), err == nil && p >= 0
				case SourceOffsetLabel:
					o, err := strconv.ParseInt(v, 10, 64)
					st.offset, st.offOK = o, err == nil && o >= 0
				}
			}
		}
		k := st.key
		k.Method = b.Symbol(sr.Method)
		dst = append(dst, event{key: k, rollup: st.rollup, src: st.partOK && st.offOK,
			partition: st.partition, offset: st.offset, call: c})
	}
	return dst
}
