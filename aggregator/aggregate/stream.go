// Package aggregate runs an aggregator.Engine as a Kafka consumer: it reads the
// calls topic in a consumer group, feeds every batch to the engine, publishes
// the final panes to the stats topic and commits the calls offsets only
// after those panes are acknowledged. Alongside, in a second consumer group,
// it does the same for the metrics topic with a resource.Engine, whose
// resource panes go to stats too. DESIGN.md next to this file records
// when offsets may be committed and what happens on a rebalance.
package aggregate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/aggregator/late"
	"github.com/tpflow/tpflow/aggregator/resource"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
)

// Config configures the streaming aggregator.
type Config struct {
	// GroupID is the consumer group of the aggregators.
	GroupID string `yaml:"group_id"`
	// FlushInterval is how often final panes are published and offsets
	// committed.
	FlushInterval time.Duration `yaml:"flush_interval"`
}

// MetricsGroupID returns the consumer group in which the metrics topic is
// aggregated into resource panes: GroupID with "-metrics" appended. It is
// a group of its own so that the two topics rebalance independently.
func (c Config) MetricsGroupID() string { return c.GroupID + "-metrics" }

// DefaultConfig returns the defaults: group tpflow-aggregate, a flush every
// second.
func DefaultConfig() Config {
	return Config{GroupID: "tpflow-aggregate", FlushInterval: time.Second}
}

// Validate reports every impossible value as a *schemas.FieldError.
func (c Config) Validate() error {
	var errs []error
	if c.GroupID == "" {
		errs = append(errs, schemas.Fieldf("group_id", "must not be empty"))
	}
	if c.FlushInterval < 10*time.Millisecond || c.FlushInterval > time.Hour {
		errs = append(errs, schemas.Fieldf("flush_interval", "must be between 10ms and 1h, got %s", c.FlushInterval))
	}
	return errors.Join(errs...)
}

// Run consumes the calls topic as a member of cfg.GroupID until ctx is done,
// aggregating into eng, and returns after a final flush. Undecodable
// messages go to the DLQ. Final panes are produced to the stats topic and
// calls past their pane's grace to the late topic (for the late merger,
// aggregator/late), and only after both produces succeeded are the offsets
// that the flush returned committed, so a crash at any point re-delivers, and the re-published
// panes replace their earlier copies downstream.
//
// Run also consumes the metrics topic in the group cfg.MetricsGroupID()
// into a resource.Engine with eng's configuration and publishes its
// resource panes to stats under the same rules. An error of either consumer
// ends Run.
//
// Run does not close eng; it must be the only caller of eng.Flush.
func Run(ctx context.Context, kcfg kafka.Config, cfg Config, eng *aggregator.Engine, reg prometheus.Registerer, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("cannot start aggregator stream: %w", err)
	}
	if err := kafka.EnsureTopics(ctx, kcfg); err != nil {
		return fmt.Errorf("cannot start aggregator stream: %w", err)
	}
	km, err := kafka.NewMetrics(reg)
	if err != nil {
		return fmt.Errorf("cannot start aggregator stream: %w", err)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return fmt.Errorf("cannot start aggregator stream: %w", err)
	}
	reng, err := resource.New(eng.Config(), resource.WithLogger(log), resource.WithRegisterer(reg))
	if err != nil {
		return fmt.Errorf("cannot start aggregator stream: %w", err)
	}
	statsTopic := kcfg.Topic(kafka.TopicStats)
	prod, err := kafka.NewProducer(kcfg, statsTopic, log, kafka.WithMetrics(km))
	if err != nil {
		return err
	}
	defer prod.Close()
	lateTopic := kcfg.Topic(kafka.TopicLate)
	lateProd, err := kafka.NewProducer(kcfg, lateTopic, log, kafka.WithMetrics(km))
	if err != nil {
		return err
	}
	defer lateProd.Close()
	lateParts := kcfg.PartitionsFor(kafka.TopicLate)
	if n, err := kafka.TopicPartitions(ctx, kcfg, lateTopic); err == nil && n[lateTopic] > 0 {
		lateParts = n[lateTopic]
	}
	dlq, err := kafka.NewDLQ(kcfg, codec.Reason, reg, log, kafka.WithMetrics(km))
	if err != nil {
		return err
	}
	defer dlq.Close()
	gc, err := kafka.NewGroupConsumer(kcfg, kcfg.Topic(kafka.TopicCalls), cfg.GroupID, log, kafka.WithMetrics(km))
	if err != nil {
		return err
	}
	statsParts := kcfg.PartitionsFor(kafka.TopicStats)
	if n, err := kafka.TopicPartitions(ctx, kcfg, statsTopic); err == nil && n[statsTopic] > 0 {
		statsParts = n[statsTopic]
	}
	callsTopic := kcfg.Topic(kafka.TopicCalls)
	callsParts := kcfg.PartitionsFor(kafka.TopicCalls)
	if n, err := kafka.TopicPartitions(ctx, kcfg, callsTopic); err == nil && n[callsTopic] > 0 {
		callsParts = n[callsTopic]
	}

	h := &groupHandler[aggregator.PaneStat]{
		eng: callsEngine{eng}, log: log, m: m, tm: m.calls, dlq: dlq, prod: prod,
		encode: func(panes []aggregator.PaneStat) ([]kafkago.Message, error) {
			return encode(panes, kcfg.MaxMessageBytes, statsParts)
		},
		lateProd: lateProd,
		encodeLate: func(events []aggregator.LateEvent) []kafkago.Message {
			return late.Encode(events, kcfg.MaxMessageBytes, lateParts)
		},
		ownerKey: callOwnerKey, parts: callsParts, what: "panes",
		dec:      codec.DecodeOptions{MaxBytes: kcfg.MaxMessageBytes},
		ingested: map[int32]int64{}, batches: map[int]*codec.Batch{},
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	var rwg sync.WaitGroup
	var rerr error
	rwg.Add(1)
	go func() {
		defer rwg.Done()
		if err := runResources(runCtx, kcfg, cfg.MetricsGroupID(), cfg.FlushInterval, reng, prod, dlq, km, m, log); err != nil && runCtx.Err() == nil {
			rerr = fmt.Errorf("resource panes: %w", err)
			stopRun()
		}
	}()
	err = h.run(runCtx, gc, cfg.FlushInterval)
	stopRun()
	rwg.Wait()
	if rerr != nil && ctx.Err() == nil {
		return rerr
	}
	return err
}
