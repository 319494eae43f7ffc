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

	var calls []Call
	warned := time.Time{}
	// A stalled produce must not turn into a burst of old events: an
	// interval covers at most two ticks.
	return paced(ctx, g.cfg.Tick, g.cfg.Rate, 2*g.cfg.Tick, now, func(from, cur time.Time, n int) error {
		calls = g.Calls(calls[:0], from, cur, n)
		msgs := g.Messages(calls, kcfg.MaxMessageBytes)
		if err := p.Produce(ctx, msgs...); err != nil {
			if !errors.Is(err, context.Canceled) && ctx.Err() == nil && cur.Sub(warned) > 10*time.Second {
				log.Warn("demo generator cannot produce; dropping events", "err", err)
				warned = cur
			}
			return nil
		}
		generated.Add(float64(n))
		return nil
	})
}

// paced calls emit once a tick, until ctx is done, with the interval since
// the last call and the number of events due in it at rate per second
// (fractions carry over). maxSpan > 0 bounds how far back an interval
// reaches. An error of emit ends it.
func paced(ctx context.Context, tick time.Duration, rate int, maxSpan time.Duration, now func() time.Time, emit func(from, to time.Time, n int) error) error {
	t := time.NewTicker(tick)
	defer t.Stop()
	last := now()
	carry := 0.0
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
		from := last
		if maxSpan > 0 && cur.Sub(from) > maxSpan {
			from = cur.Add(-maxSpan)
		}
		want := float64(rate)*cur.Sub(from).Seconds() + carry
		n := int(want)
		carry = want - float64(n)
		last = cur
		if err := emit(from, cur, n); err != nil {
			return err
		}
	}
}
