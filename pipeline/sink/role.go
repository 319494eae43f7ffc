package sink

import (
	"context"

	"github.com/tpflow/tpflow/internal/role"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/kafka"
)

// Role is the sink role (role.Role): the topics of its Config from the
// Kafka of kcfg into the ClickHouse of ccfg.
type Role struct {
	cfg  Config
	kcfg kafka.Config
	ccfg clickhouse.Config
	s    role.Settings
}

// New returns the sink role; nothing connects before Run.
func New(cfg Config, kcfg kafka.Config, ccfg clickhouse.Config, s role.Settings) (*Role, error) {
	return &Role{cfg: cfg, kcfg: kcfg, ccfg: ccfg, s: s}, nil
}

// Run stores the topics until ctx is done (see the package's Run).
func (r *Role) Run(ctx context.Context) error {
	return Run(ctx, r.kcfg, r.ccfg, r.cfg, r.s.Registerer, r.s.Log())
}

// Ready is nil once Kafka and ClickHouse answered.
func (r *Role) Ready(ctx context.Context) error { return Ready(ctx, r.kcfg, r.ccfg, r.cfg) }

// Routes is empty.
func (r *Role) Routes() []role.Route { return nil }
