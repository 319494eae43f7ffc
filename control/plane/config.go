package plane

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/tpflow/tpflow/control/api"
	"github.com/tpflow/tpflow/control/store"
	"github.com/tpflow/tpflow/internal/config"
	"github.com/tpflow/tpflow/schemas"
)

// Config configures the control plane (tpflow control).
type Config struct {
	// Listen is the HOST:PORT the API, /metrics, /healthz and /readyz are
	// served on.
	Listen string `yaml:"listen"`
	// Store is where the state is kept: the path of a SQLite file
	// (created with its directory), or a postgres:// URL for several
	// replicas on one PostgreSQL; give its password in PGPASSWORD or
	// ~/.pgpass rather than in the URL.
	Store string `yaml:"store"`
	// Tokens are the API's bearer tokens; without one the API refuses
	// every request, so tpflow control refuses to start.
	Tokens []Token `yaml:"tokens"`
	// Operations configures the export of the operation history to the
	// ClickHouse of the clickhouse section.
	Operations OperationsConfig `yaml:"operations"`
	// RolloutInterval is how often the leading replica steps the running
	// rollouts, and how often the others try to lead.
	RolloutInterval time.Duration `yaml:"rollout_interval"`
}

// Token is one bearer token of the API and who holds it.
type Token struct {
	// Name is who the token's holder is in the operation history.
	Name string `yaml:"name"`
	// Role is viewer (reads), operator or admin (reads and writes).
	Role string `yaml:"role"`
	// Token is the secret; set token_file to read it from a file.
	Token config.Secret `yaml:"token"`
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

// DefaultConfig returns the defaults: loopback port 8090, SQLite in
// .data/control.db, no tokens, operations exported in batches of 500
// checked every second, rollouts stepped every 5 seconds.
func DefaultConfig() Config {
	return Config{
		Listen:          "127.0.0.1:8090",
		Store:           DefaultStore,
		Tokens:          []Token{},
		Operations:      OperationsConfig{Export: true, BatchSize: 500, Interval: time.Second},
		RolloutInterval: 5 * time.Second,
	}
}

// Validate reports every impossible value as a *schemas.FieldError.
func (c Config) Validate() error {
	var errs []error
	if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, schemas.Fieldf("listen", "%q is not HOST:PORT", c.Listen))
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		errs = append(errs, schemas.Fieldf("listen", "%q has an invalid port (want 1-65535)", c.Listen))
	}
	if c.Store == "" {
		errs = append(errs, schemas.Fieldf("store", "must not be empty; the default is %s", DefaultStore))
	} else if err := store.CheckDSN(c.Store); err != nil {
		errs = append(errs, schemas.Fieldf("store", "%v", err))
	}
	names := map[string]bool{}
	tokens := map[string]int{}
	for i, t := range c.Tokens {
		f := func(field, format string, args ...any) {
			errs = append(errs, schemas.Fieldf(fmt.Sprintf("tokens[%d].%s", i, field), format, args...))
		}
		if t.Name == "" {
			f("name", "must not be empty: it is who the operation history names")
		} else if names[t.Name] {
			f("name", "%q is given twice", t.Name)
		}
		names[t.Name] = true
		if _, err := api.ParseRole(t.Role); err != nil {
			f("role", "%v", err)
		}
		if len(t.Token.Reveal()) < 16 {
			f("token", "must be at least 16 characters")
		} else if j, dup := tokens[t.Token.Reveal()]; dup {
			f("token", "is the same as tokens[%d].token", j)
		}
		tokens[t.Token.Reveal()] = i
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

// authenticator is the static token table of the configuration.
func (c Config) authenticator() api.StaticTokens {
	t := api.StaticTokens{}
	for _, tok := range c.Tokens {
		r, _ := api.ParseRole(tok.Role)
		t[tok.Token.Reveal()] = api.Principal{Name: tok.Name, Role: r}
	}
	return t
}
