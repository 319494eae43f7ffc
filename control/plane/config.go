package plane

import (
	"errors"
	"time"

	"github.com/tpflow/tpflow/control/store"
	"github.com/tpflow/tpflow/pipeline/httpserver"
	"github.com/tpflow/tpflow/schemas"
)

// Config configures the control plane (tpflow control).
type Config struct {
	// Store is where the state is kept: the path of a SQLite file
	// (created with its directory), or a postgres:// URL for several
	// replicas on one PostgreSQL; give its password in PGPASSWORD or
	// ~/.pgpass rather than in the URL.
	Store string `yaml:"store"`
	// Operations configures the export of the operation history to the
	// ClickHouse of the clickhouse section.
	Operations OperationsConfig `yaml:"operations"`
	// RolloutInterval is how often the leading replica steps the running
	// rollouts, and how often the others try to lead.
	RolloutInterval time.Duration `yaml:"rollout_interval"`
}

// OperationsConfig configures the operations export.
type OperationsConfig struct {
	// Export writes every operation to the ClickHouse table operations,
	// for the change markers of the dashboards. Operations wait in the
	// store's outbox while ClickHouse is down.
	Export bool `yaml:"export"`
	// BatchSize is the most operations written in one insert.
	BatchSize int `yaml:"batch_size"`
	// Interval is how often the outbox is checked when no write woke the
	// exporter, and the first pause after a failed export.
	Interval time.Duration `yaml:"interval"`
}

// DefaultStore is the default store: a SQLite file under .data.
const DefaultStore = ".data/control.db"

// DefaultConfig returns the defaults: SQLite in .data/control.db,
// operations exported in batches of 500 checked every second, rollouts
// stepped every 5 seconds.
func DefaultConfig() Config {
	return Config{
		Store:           DefaultStore,
		Operations:      OperationsConfig{Export: true, BatchSize: 500, Interval: time.Second},
		RolloutInterval: 5 * time.Second,
	}
}

// Validate reports every impossible value as a *schemas.FieldError.
func (c Config) Validate() error {
	var errs []error
	if c.Store == "" {
		errs = append(errs, schemas.Fieldf("store", "must not be empty; the default is %s", DefaultStore))
	} else if err := store.CheckDSN(c.Store); err != nil {
		errs = append(errs, schemas.Fieldf("store", "%v", err))
	}
	if c.Operations.BatchSize < 1 || c.Operations.BatchSize > 100000 {
		errs = append(errs, schemas.Fieldf("operations.batch_size", "must be between 1 and 100000, got %d", c.Operations.BatchSize))
	}
	if c.Operations.Interval < 10*time.Millisecond || c.Operations.Interval > time.Hour {
		errs = append(errs, schemas.Fieldf("operations.interval", "must be between 10ms and 1h, got %s", c.Operations.Interval))
	}
	if c.RolloutInterval < 10*time.Millisecond || c.RolloutInterval > time.Minute {
		errs = append(errs, schemas.Fieldf("rollout_interval", "must be between 10ms and 1m, got %s", c.RolloutInterval))
	}
	return errors.Join(errs...)
}

// ErrNoWriter is returned by CheckAuth for an authentication that cannot
// make a write.
var ErrNoWriter = errors.New("http.auth has no operator or admin credential: the control plane serves only authenticated callers and records who made every write; add a token, user or client certificate of role operator or admin to http.auth (SECURITY.md)")

// CheckAuth reports ErrNoWriter unless c, the http.auth of the listener
// the control plane serves on, has a credential of role operator or
// admin: without one its API would refuse every write. tpflow control
// runs it before it starts.
func CheckAuth(c httpserver.AuthConfig) error {
	roles := make([]string, 0, len(c.Tokens)+len(c.Users)+len(c.ClientCerts))
	for _, t := range c.Tokens {
		roles = append(roles, t.Role)
	}
	for _, u := range c.Users {
		roles = append(roles, u.Role)
	}
	for _, cc := range c.ClientCerts {
		roles = append(roles, cc.Role)
	}
	for _, name := range roles {
		if r, err := httpserver.ParseRole(name); err == nil && r >= httpserver.RoleOperator {
			return nil
		}
	}
	return ErrNoWriter
}
