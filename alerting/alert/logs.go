package alert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	"github.com/tpflow/tpflow/alerting"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

// logReader feeds the logs topic into the log counter. The counts live in
// memory: offsets are committed as positions only, as for stats.
type logReader struct {
	counter *alerting.LogCounter
	m       *metrics
	log     *slog.Logger
	now     func() time.Time
	dec     codec.DecodeOptions

	batch codec.Batch
	ev    tpflowpb.LogEvent
	line  alerting.LogLine
	*marker
}

// consume reads logs messages until ctx is done. A message that does not
// decode is counted and skipped: the sink dead-letters the same message.
func (r *logReader) consume(ctx context.Context, c *kafka.Consumer) error {
	for {
		msg, err := c.Fetch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("cannot read logs: %w", err)
		}
		if err := r.handle(msg); err != nil {
			r.m.logMessages.WithLabelValues("bad").Inc()
			r.log.Debug("skipping a logs message", "partition", msg.Partition, "offset", msg.Offset, "err", err)
		} else {
			r.m.logMessages.WithLabelValues("ok").Inc()
		}
		r.mark(msg)
	}
}

// handle counts the lines of one logs message; it skips decoding when no
// log rule is loaded.
func (r *logReader) handle(msg kafkago.Message) error {
	if !r.counter.HasRules() {
		return nil
	}
	if err := r.dec.Decode(msg.Value, &r.batch); err != nil {
		return err
	}
	b := &r.batch
	now := r.now()
	var bad error
	for _, raw := range b.Logs {
		ev := &r.ev
		if err := proto.Unmarshal(raw, ev); err != nil {
			bad = errors.Join(codec.ErrMalformed, err)
			continue
		}
		if int(ev.Labels) >= b.NumLabelSets() || int(ev.Stream) >= len(b.Symbols) || int(ev.Level) >= len(b.Symbols) {
			bad = codec.ErrBadReference
			continue
		}
		r.line = alerting.LogLine{
			Time:      time.Unix(0, ev.TsUnixNano),
			System:    b.Label(ev.Labels, schemas.LabelSystem),
			App:       b.Label(ev.Labels, schemas.LabelApp),
			Group:     b.Label(ev.Labels, schemas.LabelGroup),
			IDC:       b.Label(ev.Labels, schemas.LabelIDC),
			Host:      b.Label(ev.Labels, schemas.LabelHost),
			Container: b.Label(ev.Labels, schemas.LabelContainer),
			Stream:    b.Symbol(ev.Stream),
			Level:     b.Symbol(ev.Level),
			Message:   ev.Message,
		}
		r.counter.Add(&r.line, now)
		r.m.logLines.Inc()
	}
	return bad
}
