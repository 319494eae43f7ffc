package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tpflow/tpflow/internal/promreg"
	"github.com/tpflow/tpflow/pipeline/kafka"
)

// Run produces g's calls to the calls topic of kcfg at the configured rate
// until ctx is done, with event time = the wall clock (now). It returns nil
// when ctx is cancelled. A produce error is logged and the tick's events are
// dropped (the demo favours staying live over completeness); Run returns an
// error only when it cannot start. A nil logger discards.
func Run(ctx context.Context, kcfg kafka.Config, g *Generator, now func() time.Time, reg prometheus.Registerer, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	m, err := kafka.NewMetrics(reg)
	if err != nil {
		return fmt.Errorf("cannot start demo generator: %w", err)
	}
	p, err := kafka.NewProducer(kcfg, kcfg.Topic(kafka.TopicCalls), log, kafka.WithMetrics(m))
	if err != nil {
		return fmt.Errorf("cannot start demo generator: %w", err)
	}
	defer p.Close()
	generated := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tpflow_demo_events_total", Help: "Call events the demo generator produced.",
	})
	generated, err = promreg.Register(reg, generated)
	if err != nil {
		return fmt.Errorf("cannot start demo generator: %w", err)
	}
	log.Info("demo traffic", "rate", g.cfg.Rate, "topology", g.Describe(), "schedule", g.cfg.Schedule())

	t := time.NewTicker(g.cfg.Tick)
	defer t.Stop()
	last := now()
	carry := 0.0
	var calls []Call
	warned := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		cur := now()
		if !cur.After(last) {
			continue
		}
		// A stalled produce must not turn into a burst of old events:
		// cover at most two ticks.
		from := last
		if cur.Sub(from) > 2*g.cfg.Tick {
			from = cur.Add(-2 * g.cfg.Tick)
		}
		want := float64(g.cfg.Rate)*cur.Sub(from).Seconds() + carry
		n := int(want)
		carry = want - float64(n)
		last = cur
		calls = g.Calls(calls[:0], from, cur, n)
		msgs := g.Messages(calls, kcfg.MaxMessageBytes)
		if err := p.Produce(ctx, msgs...); err != nil {
			if errors.Is(err, context.Canceled) || ctx.Err() != nil {
				return nil
			}
			if cur.Sub(warned) > 10*time.Second {
				log.Warn("demo generator cannot produce; dropping events", "err", err)
				warned = cur
			}
			continue
		}
		generated.Add(float64(n))
	}
}
