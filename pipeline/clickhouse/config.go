package clickhouse

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tpflow/tpflow/internal/config"
	"github.com/tpflow/tpflow/schemas"
)

// Config configures the connection, the schema and the Writer. Every field has
// a default in DefaultConfig.
type Config struct {
	// DSN is a clickhouse:// URL of the native protocol port, for example
	// "clickhouse://default:@127.0.0.1:9000?dial_timeout=5s". A database in
	// its path is ignored; Database names the database.
	DSN string `yaml:"dsn"`
	// Password is the password of the DSN's user, kept out of the DSN so
	// that it is never printed with it; PasswordFile, the path of a file
	// holding it, is read instead when set (config.Secret). The DSN then
	// carries no password.
	Password     config.Secret `yaml:"password"`
	PasswordFile string        `yaml:"password_file"`
	// Database holds every tpflow table; Open creates it when missing.
	Database string `yaml:"database"`
	// BatchRows is the most rows one INSERT carries; a longer slice passed
	// to a Write method is split. Callers that buffer rows flush at this
	// size.
	BatchRows int `yaml:"batch_rows"`
	// BatchAge is how long a caller that buffers rows may hold the oldest
	// one before it flushes a smaller batch. The Writer itself does not
	// buffer; the sink reads this value.
	BatchAge time.Duration `yaml:"batch_age"`
	// MaxRetryBackoff caps the exponential backoff between attempts while
	// ClickHouse is unreachable.
	MaxRetryBackoff time.Duration `yaml:"max_retry_backoff"`
	// RetentionDays is the TTL per table in days, applied when the table is
	// created on a server that supports TTL (19.6 and later); 0 keeps rows
	// for ever. Older servers ignore it.
	RetentionDays Retention `yaml:"retention_days"`
}

// Retention holds a number of days per table; 0 means no TTL.
type Retention struct {
	CallPanes     int `yaml:"call_panes"`
	CallRollups   int `yaml:"call_rollups"`
	Logs          int `yaml:"logs"`
	MetricSamples int `yaml:"metric_samples"`
	ResourcePanes int `yaml:"resource_panes"`
	Alerts        int `yaml:"alerts"`
}

// DefaultConfig returns the documented defaults: a local server, database
// tpflow, 5000-row batches at most 2 s old, backoff capped at 30 s and no
// TTL.
func DefaultConfig() Config {
	return Config{
		DSN:             "clickhouse://127.0.0.1:9000",
		Database:        "tpflow",
		BatchRows:       5000,
		BatchAge:        2 * time.Second,
		MaxRetryBackoff: 30 * time.Second,
	}
}

// redacted is c, with the DSN's password hidden, as a type without
// methods, for printing.
type redacted Config

func (c Config) redacted() redacted {
	c.DSN = config.RedactURL(c.DSN)
	return redacted(c)
}

// String prints c with the DSN's password hidden (Password is a
// config.Secret and hides itself).
func (c Config) String() string { return fmt.Sprintf("%+v", c.redacted()) }

// LogValue logs c with the DSN's password hidden.
func (c Config) LogValue() slog.Value { return slog.AnyValue(c.redacted()) }

// parseDSN parses dsn with the driver, in an error that never repeats the
// DSN (it may hold a password).
func parseDSN(dsn string) (*ch.Options, error) {
	opts, err := ch.ParseDSN(dsn)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("cannot parse the DSN %s: %v", config.RedactURL(dsn), err)
	}
	return opts, nil
}

// options returns the driver's options of c: the DSN's, over the native
// protocol, with Password, a 5 s dial timeout unless the DSN sets one, and
// database db.
func (c Config) options(db string) (*ch.Options, error) {
	opts, err := parseDSN(c.DSN)
	if err != nil {
		return nil, err
	}
	opts.Protocol = ch.Native
	if c.Password != "" {
		opts.Auth.Password = c.Password.Reveal()
	}
	opts.Auth.Database = db
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 5 * time.Second
	}
	return opts, nil
}

// identRe is what this package accepts as a database name: it is spliced
// into DDL, so it must never need quoting.
var identRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// maxRetentionDays keeps TTL expressions far inside DateTime's range.
const maxRetentionDays = 36500

// Validate reports every impossible value as a *schemas.FieldError.
func (c Config) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, schemas.Fieldf(field, format, args...))
	}
	if c.DSN == "" {
		add("dsn", "must not be empty")
	} else if opts, err := parseDSN(c.DSN); err != nil {
		add("dsn", "%v", err)
	} else if opts.Protocol != ch.Native {
		add("dsn", "must use the native protocol (clickhouse://host:9000), got %s", opts.Protocol)
	} else if opts.Auth.Password != "" && c.Password != "" {
		add("password", "the DSN holds a password too; give it in password or password_file only")
	}
	if !identRe.MatchString(c.Database) {
		add("database", "must match %s, got %q", identRe, c.Database)
	}
	if c.BatchRows < 1 || c.BatchRows > 1_000_000 {
		add("batch_rows", "must be between 1 and 1000000, got %d", c.BatchRows)
	}
	if c.BatchAge <= 0 {
		add("batch_age", "must be positive, got %s", c.BatchAge)
	}
	if c.MaxRetryBackoff < 10*time.Millisecond {
		add("max_retry_backoff", "must be at least 10ms, got %s", c.MaxRetryBackoff)
	}
	for _, r := range []struct {
		name string
		days int
	}{
		{"call_panes", c.RetentionDays.CallPanes},
		{"call_rollups", c.RetentionDays.CallRollups},
		{"logs", c.RetentionDays.Logs},
		{"metric_samples", c.RetentionDays.MetricSamples},
		{"resource_panes", c.RetentionDays.ResourcePanes},
		{"alerts", c.RetentionDays.Alerts},
	} {
		if r.days < 0 || r.days > maxRetentionDays {
			add("retention_days."+r.name, "must be between 0 and %d, got %d", maxRetentionDays, r.days)
		}
	}
	return errors.Join(errs...)
}
