package alert

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/alerting"
	"github.com/tpflow/tpflow/internal/role"
	"github.com/tpflow/tpflow/pipeline/kafka"
)

// Role is the alert role (role.Role): the rules of its Config evaluated
// over the final panes of the Kafka of kcfg.
type Role struct {
	cfg    Config
	kcfg   kafka.Config
	aggCfg aggregator.Config
	s      role.Settings
	opts   []Option
	list   atomic.Pointer[func() []alerting.Alert]
}

// New checks the rules files of cfg, so that a missing or broken one fails
// before anything listens, and returns the role that evaluates them over
// panes of aggCfg read from the Kafka of kcfg.
func New(cfg Config, kcfg kafka.Config, aggCfg aggregator.Config, s role.Settings, opts ...Option) (*Role, error) {
	if len(cfg.RulesFiles) == 0 {
		return nil, ErrNoRules
	}
	if _, err := Check(cfg.RulesFiles...); err != nil {
		return nil, fmt.Errorf("invalid alert rules:\n%w", err)
	}
	r := &Role{cfg: cfg, kcfg: kcfg, aggCfg: aggCfg, s: s}
	r.opts = append(opts, WithAlerts(func(f func() []alerting.Alert) { r.list.Store(&f) }))
	return r, nil
}

// Alerts are the role's pending, firing and resolved alerts once Run has
// started, none before.
func (r *Role) Alerts() []alerting.Alert {
	if f := r.list.Load(); f != nil {
		return (*f)()
	}
	return nil
}

// Run evaluates the rules until ctx is done (see the package's Run).
func (r *Role) Run(ctx context.Context) error {
	return Run(ctx, r.kcfg, r.aggCfg, r.cfg, r.s.Registerer, r.s.Log(), r.opts...)
}

// Ready is nil once Kafka answered for the role's topics.
func (r *Role) Ready(ctx context.Context) error { return Ready(ctx, r.kcfg) }

// Routes is empty.
func (r *Role) Routes() []role.Route { return nil }
