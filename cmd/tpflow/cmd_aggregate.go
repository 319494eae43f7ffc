package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/aggregator/stream"
	"github.com/tpflow/tpflow/pipeline/kafka"
)

func aggregateCommand() *command {
	var (
		group string
		flush time.Duration
	)
	d := DefaultConfig().Aggregate
	return &command{
		name:    "aggregate",
		summary: "consume calls, keep event-time panes and windows of TP50-TP999; publish final panes",
		help: `Consumes the calls topic as a member of the aggregator consumer group and
keeps, per (system, app, group, idc, method), tumbling panes of call count,
errors and a latency t-digest, plus sliding windows over them. Final panes
are published to the stats topic with their digest centroids; offsets are
committed only after every pane holding their events is published. The
aggregator section of the configuration sets panes, windows and lateness;
the aggregate section the consumer group and the flush interval.
Serves /metrics, /healthz and /readyz on http.listen (--listen).`,
		example: "tpflow aggregate --config tpflow.yaml --brokers kafka-1:9092",
		common:  true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&group, "group", "", fmt.Sprintf("Kafka consumer `GROUP` of the aggregators, overriding aggregate.group_id (default from config: %s)", d.GroupID))
			fs.DurationVar(&flush, "flush-interval", 0, fmt.Sprintf("how often final panes are published and offsets committed, overriding aggregate.flush_interval (default from config: %s)", d.FlushInterval))
		},
		override: overrides(
			flagOverride{"group", "aggregate.group_id", func(c *Config) { c.Aggregate.GroupID = group }},
			flagOverride{"flush-interval", "aggregate.flush_interval", func(c *Config) { c.Aggregate.FlushInterval = flush }},
		),
		role: runAggregate,
	}
}

// runAggregate is the aggregate role.
func runAggregate(ctx context.Context, env *Env, cfg *Config, _ []string) error {
	reg := newRoleRegistry()
	_, run, err := newAggregatePart(cfg, cfg.Kafka, reg, env.Logger)
	if err != nil {
		return err
	}
	return serveRole(ctx, env, cfg, reg, "aggregator", run)
}

// newAggregatePart builds the engine of the aggregator section and returns
// it with the function that streams the calls topic of kcfg through it
// until ctx is done (stream.Run with the aggregate section).
func newAggregatePart(cfg *Config, kcfg kafka.Config, reg *prometheus.Registry, log *slog.Logger) (*aggregator.Engine, func(ctx context.Context) error, error) {
	eng, err := aggregator.New(cfg.Aggregator, aggregator.WithLogger(log), aggregator.WithRegisterer(reg))
	if err != nil {
		return nil, nil, fmt.Errorf("cannot start aggregator: %w", err)
	}
	run := func(ctx context.Context) error {
		return stream.Run(ctx, kcfg, cfg.Aggregate, eng, reg, log)
	}
	return eng, run, nil
}

// serveRole runs part, one role's work, next to the HTTP listener of
// http.listen until ctx is done. /readyz answers ok once part has started.
// part returning before ctx is done is an error: a role never stops by
// itself.
func serveRole(ctx context.Context, env *Env, cfg *Config, reg *prometheus.Registry, name string, part func(context.Context) error) error {
	var ready atomic.Bool
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveRoleHTTP(gctx, cfg.HTTP.Listen, reg, ready.Load, env.Logger) })
	g.Go(func() error {
		ready.Store(true)
		err := part(gctx)
		if err == nil && gctx.Err() == nil {
			err = errors.New(name + " stopped")
		}
		return err
	})
	err := g.Wait()
	if ctx.Err() != nil && err == nil {
		return nil
	}
	return err
}

// newRoleRegistry returns a registry with the Go and process collectors.
func newRoleRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// serveRoleHTTP serves /metrics, /healthz and /readyz on addr until ctx is
// done. /readyz answers 503 until ready reports true.
func serveRoleHTTP(ctx context.Context, addr string, reg *prometheus.Registry, ready func() bool, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("cannot serve HTTP: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Info("serving HTTP", "addr", ln.Addr().String())
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	defer stop()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("cannot serve HTTP on %s: %w", addr, err)
	}
	return nil
}
