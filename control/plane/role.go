// Package plane runs the control role (tpflow control): the control
// plane's HTTP API over its store, and the exporter that copies every
// operation from the store's outbox to the ClickHouse table operations.
package plane

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tpflow/tpflow/control"
	"github.com/tpflow/tpflow/control/api"
	"github.com/tpflow/tpflow/control/rollout"
	"github.com/tpflow/tpflow/control/store"
	"github.com/tpflow/tpflow/internal/role"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
)

// MetricsPrefix prefixes the control role's metrics.
const MetricsPrefix = "tpflow_control_"

// Role is the control role (role.Role).
type Role struct {
	cfg      Config
	ccfg     clickhouse.Config
	store    store.Store
	api      *api.API
	exporter *exporter
	engine   *rollout.Engine
	log      *slog.Logger
}

// Option configures New beyond its configuration.
type Option func(*options)

type options struct {
	validate control.Validator
	fleet    rollout.Fleet
}

// WithFleet has the role run the rollout engine over fleet, the agents as
// they report themselves, while it leads.
func WithFleet(f rollout.Fleet) Option { return func(o *options) { o.fleet = f } }

// WithValidator has every file of a new configuration version checked by
// v, the function the roles run when they load it (cmd/tpflow passes
// sections.ValidateFile). Without it every file is accepted.
func WithValidator(v control.Validator) Option { return func(o *options) { o.validate = v } }

// New opens and migrates the store of cfg, within ctx, and returns the
// control role; operations are exported to the ClickHouse of ccfg when
// cfg.Operations.Export is set. Like the api role it connects at once:
// its routes need the store. Run closes it.
func New(ctx context.Context, cfg Config, ccfg clickhouse.Config, s role.Settings, opts ...Option) (*Role, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot start control role: %w", err)
	}
	m, err := newMetrics(s.Registerer)
	if err != nil {
		return nil, fmt.Errorf("cannot start control role: %w", err)
	}
	st, err := store.Open(ctx, cfg.Store, s.Clock)
	if err != nil {
		return nil, err
	}
	log := s.Log().With("part", "control")
	if s.Registerer != nil {
		if err := s.Registerer.Register(newFleetCollector(st, log)); err != nil {
			st.Close()
			return nil, fmt.Errorf("cannot start control role: %w", err)
		}
	}
	r := &Role{cfg: cfg, ccfg: ccfg, store: st, log: log}
	var wake func()
	if cfg.Operations.Export {
		r.exporter = newExporter(st, ccfg, cfg.Operations, m, log)
		wake = r.exporter.wake
	}
	r.api = api.New(st, o.validate, api.Options{Logger: log, Written: wake})
	if o.fleet != nil {
		r.engine = rollout.New(st, o.fleet, s.Clock, log.With("part", "rollout"))
	}
	return r, nil
}

// Run exports operations and steps rollouts until ctx is done, then
// closes the store.
func (r *Role) Run(ctx context.Context) error {
	defer r.store.Close()
	var wg sync.WaitGroup
	if r.exporter != nil {
		wg.Go(func() { r.exporter.run(ctx) })
	}
	if r.engine != nil {
		wg.Go(func() { _ = r.engine.Run(ctx, r.cfg.RolloutInterval) })
	}
	<-ctx.Done()
	wg.Wait()
	return nil
}

// Ready is nil while the store answers; ClickHouse being down delays
// only the operations export, so it does not make the role unready.
func (r *Role) Ready(ctx context.Context) error {
	_, err := r.store.Versions(ctx, control.Scope{Kind: control.ScopeGlobal}, 1)
	return err
}

// Routes are the API's. They serve only the callers an httpserver.Auth in
// front of them authenticated (api.New); serve them behind the http.auth
// that CheckAuth accepted.
func (r *Role) Routes() []role.Route { return r.api.Routes() }

// Handler serves Routes on a mux of its own, for a process that mounts
// the control plane under a prefix of its listener (tpflow run); like
// Routes, serve it behind an httpserver.Auth.
func (r *Role) Handler() http.Handler { return r.api.Handler() }

// Store returns the role's store, for tests and tools in the same process.
func (r *Role) Store() store.Store { return r.store }

type metrics struct {
	exported prometheus.Counter
	failures prometheus.Counter
	pending  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		exported: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricsPrefix + "operations_exported_total",
			Help: "Operations written to the ClickHouse table operations."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricsPrefix + "operations_export_failures_total",
			Help: "Failed attempts to write operations to ClickHouse; the operations stay queued."}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: MetricsPrefix + "operations_pending",
			Help: "Operations queued for ClickHouse at the last export attempt (at most one batch is counted)."}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.exported, m.failures, m.pending} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// pause waits d or until ctx is done, reporting whether ctx is still live.
func pause(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-wake:
	}
	return true
}
