package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/aggregator/stream"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/kafka"
)

func aggregateCommand() *command {
	o := stream.DefaultConfig()
	return &command{
		name:    "aggregate",
		summary: "consume calls, keep event-time panes and windows of TP50-TP999; publish final panes",
		help: `Consumes the calls topic as a member of the aggregator consumer group and
keeps, per (system, app, group, idc, method), tumbling panes of call count,
errors and a latency t-digest, plus sliding windows over them. Final panes
are published to the stats topic with their digest centroids; offsets are
committed only after every pane holding their events is published. The
aggregator section of the configuration sets panes, windows and lateness.
Serves /metrics, /healthz and /readyz on http.listen (--listen).`,
		example: "tpflow aggregate --config tpflow.yaml --brokers kafka-1:9092",
		common:  true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&o.GroupID, "group", o.GroupID, "Kafka consumer group of the aggregators")
			fs.DurationVar(&o.FlushInterval, "flush-interval", o.FlushInterval, "how often final panes are published and offsets committed")
		},
		role: func(ctx context.Context, env *Env, cfg *Config, args []string) error {
			if err := o.Validate(); err != nil {
				return usageError("%v", err)
			}
			return runAggregate(ctx, env, cfg, o)
		},
	}
}

// runAggregate is the aggregate role.
func runAggregate(ctx context.Context, env *Env, cfg *Config, o stream.Config) error {
	reg := newRoleRegistry()
	eng, err := aggregator.New(cfg.Aggregator, aggregator.WithLogger(env.Logger), aggregator.WithRegisterer(reg))
	if err != nil {
		return err
	}
	var ready atomic.Bool
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveRoleHTTP(gctx, cfg.HTTP.Listen, reg, ready.Load, env.Logger) })
	g.Go(func() error {
		ready.Store(true)
		err := stream.Run(gctx, roleKafkaConfig(cfg), o, eng, reg, env.Logger)
		if err == nil && gctx.Err() == nil {
			err = errors.New("aggregator stopped")
		}
		return err
	})
	err = g.Wait()
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

// roleKafkaConfig is the client configuration of the kafka section.
func roleKafkaConfig(cfg *Config) kafka.Config {
	k := kafka.DefaultConfig()
	c := cfg.Kafka
	k.Brokers = slices.Clone(c.Brokers)
	k.TopicPrefix = c.TopicPrefix
	k.Partitions = map[string]int{
		kafka.TopicCalls: c.Partitions.Calls, kafka.TopicLogs: c.Partitions.Logs, kafka.TopicMetrics: c.Partitions.Metrics,
		kafka.TopicStats: c.Partitions.Stats, kafka.TopicAlerts: c.Partitions.Alerts, kafka.TopicDLQ: c.Partitions.DLQ,
	}
	k.Compression = c.Compression
	k.MaxMessageBytes = c.MaxMessageBytes
	k.TLS = kafka.TLSConfig(c.TLS)
	k.SASL = kafka.SASLConfig(c.SASL)
	return k
}

// roleClickHouseConfig is the clickhouse section; the database is the
// DSN's path.
func roleClickHouseConfig(cfg *Config) clickhouse.Config {
	c := clickhouse.DefaultConfig()
	c.DSN = cfg.ClickHouse.DSN
	if u, err := url.Parse(cfg.ClickHouse.DSN); err == nil && len(u.Path) > 1 {
		c.Database = u.Path[1:]
		u.Path = ""
		c.DSN = u.String()
	}
	c.BatchRows = cfg.ClickHouse.BatchRows
	c.BatchAge = cfg.ClickHouse.BatchAge
	c.MaxRetryBackoff = cfg.ClickHouse.MaxRetryBackoff
	return c
}
