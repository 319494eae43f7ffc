package kafka

import (
	"context"
	"fmt"
	"os"

	"github.com/tpflow/tpflow/internal/role"
)

// BrokerRole is the broker role (role.Role): an embedded broker that
// serves until its Run's context is done.
type BrokerRole struct {
	b    *Broker
	kcfg Config
}

// NewBroker starts, within ctx, the embedded broker of bcfg with room for
// the largest message kcfg produces (creating its data dir), and returns
// it as a role. Like the api role it starts at once: the roles beside it
// need its address (Kafka). Close or Run stops it.
func NewBroker(ctx context.Context, bcfg BrokerConfig, kcfg Config, s role.Settings) (*BrokerRole, error) {
	bcfg.MaxMessageBytes = max(bcfg.MaxMessageBytes, kcfg.MaxMessageBytes+(128<<10))
	if bcfg.DataDir != "" {
		if err := os.MkdirAll(bcfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("cannot create broker data dir: %w", err)
		}
	}
	b, err := StartBroker(ctx, bcfg, s.Log())
	if err != nil {
		return nil, err
	}
	kcfg.Brokers = []string{b.Addr()}
	return &BrokerRole{b: b, kcfg: kcfg}, nil
}

// Addr is the address the broker listens on.
func (r *BrokerRole) Addr() string { return r.b.Addr() }

// Kafka is the Kafka configuration the role was given, pointed at the
// broker.
func (r *BrokerRole) Kafka() Config { return r.kcfg }

// Close stops the broker.
func (r *BrokerRole) Close() { r.b.Close() }

// Run serves until ctx is done, then stops the broker.
func (r *BrokerRole) Run(ctx context.Context) error {
	<-ctx.Done()
	r.b.Close()
	return nil
}

// Ready is nil once the broker answers as a Kafka cluster.
func (r *BrokerRole) Ready(ctx context.Context) error { return Ready(ctx, r.kcfg) }

// Routes is empty.
func (r *BrokerRole) Routes() []role.Route { return nil }
