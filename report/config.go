package report

import (
	"errors"
	"time"

	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/schemas"
)

// Config is the api section of the configuration file: what one query of
// the API may cost.
type Config struct {
	// MaxConcurrent is how many requests each API path serves at a time;
	// the next ones are answered 503 with Retry-After.
	MaxConcurrent int `yaml:"max_concurrent"`
	// Timeout bounds one request's queries, and is their
	// max_execution_time on the server.
	Timeout time.Duration `yaml:"timeout"`
	// MaxMemoryUsage is each query's max_memory_usage on the server, in
	// bytes; it bounds the queries of the report command too.
	MaxMemoryUsage int64 `yaml:"max_memory_usage"`
}

// DefaultConfig returns DefaultMaxConcurrent requests per path and
// DefaultLimits.
func DefaultConfig() Config {
	return Config{MaxConcurrent: DefaultMaxConcurrent, Timeout: DefaultLimits.MaxExecutionTime, MaxMemoryUsage: DefaultLimits.MaxMemoryUsage}
}

// Validate reports every impossible value as a *schemas.FieldError.
func (c Config) Validate() error {
	var errs []error
	if c.MaxConcurrent < 1 || c.MaxConcurrent > 10000 {
		errs = append(errs, schemas.Fieldf("max_concurrent", "must be between 1 and 10000, got %d", c.MaxConcurrent))
	}
	if c.Timeout < time.Second || c.Timeout > time.Hour || c.Timeout%time.Second != 0 {
		errs = append(errs, schemas.Fieldf("timeout", "must be whole seconds between 1s and 1h, got %s", c.Timeout))
	}
	if c.MaxMemoryUsage < 1<<20 {
		errs = append(errs, schemas.Fieldf("max_memory_usage", "must be at least 1048576 bytes, got %d", c.MaxMemoryUsage))
	}
	return errors.Join(errs...)
}

// Options returns the APIOptions of c.
func (c Config) Options() APIOptions {
	return APIOptions{MaxConcurrent: c.MaxConcurrent, Timeout: c.Timeout,
		Limits: clickhouse.Limits{MaxExecutionTime: c.Timeout, MaxMemoryUsage: c.MaxMemoryUsage}}
}
