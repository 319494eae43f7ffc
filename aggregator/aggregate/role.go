package aggregate

import (
	"context"
	"fmt"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/internal/role"
	"github.com/tpflow/tpflow/pipeline/kafka"
)

// Role is the aggregate role (role.Role): the engine of the aggregator
// section, fed from the calls topic by Run.
type Role struct {
	cfg  Config
	kcfg kafka.Config
	eng  *aggregator.Engine
	s    role.Settings
}

// New builds the engine of aggCfg and returns the role that streams the
// calls topic of kcfg through it as cfg says.
func New(cfg Config, kcfg kafka.Config, aggCfg aggregator.Config, s role.Settings) (*Role, error) {
	opts := []aggregator.Option{aggregator.WithLogger(s.Log()), aggregator.WithRegisterer(s.Registerer)}
	if s.Clock != nil {
		opts = append(opts, aggregator.WithClock(s.Clock))
	}
	eng, err := aggregator.New(aggCfg, opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot start aggregator: %w", err)
	}
	return &Role{cfg: cfg, kcfg: kcfg, eng: eng, s: s}, nil
}

// Engine is the role's engine, for readers of its windows.
func (r *Role) Engine() *aggregator.Engine { return r.eng }

// Run streams the calls until ctx is done (see the package's Run).
func (r *Role) Run(ctx context.Context) error {
	return Run(ctx, r.kcfg, r.cfg, r.eng, r.s.Registerer, r.s.Log())
}

// Ready is nil once Kafka answered for the role's topics.
func (r *Role) Ready(ctx context.Context) error { return Ready(ctx, r.kcfg) }

// Routes is empty: the engine's windows are served by whoever composes
// the role (/api/v1/windows in `tpflow run`).
func (r *Role) Routes() []role.Route { return nil }
