// Package sections is tpflow's one configuration file: the Config made of
// every package's section, its defaults, the documentation of every key
// (print-defaults) and Load, which reads a file through the loader of
// package config.
package sections

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/aggregator/aggregate"
	"github.com/tpflow/tpflow/alerting/alert"
	"github.com/tpflow/tpflow/collectors/collect"
	"github.com/tpflow/tpflow/control/plane"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/httpserver"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/pipeline/sink"
	"github.com/tpflow/tpflow/report"
	"github.com/tpflow/tpflow/schemas"
)

// Each section is the Config of the package that uses it, with that
// package's DefaultConfig and Validate; HTTPConfig and LogConfig belong to
// the tpflow command. config.Validate calls every section's Validate and
// prefixes the paths of its *schemas.FieldError values.

// Config is the whole tpflow configuration: one YAML file shared by every
// role. A key absent from the file keeps its value from DefaultConfig.
type Config struct {
	// Aggregator configures panes, windows, lateness and memory bounds.
	Aggregator aggregator.Config `yaml:"aggregator"`
	// Aggregate configures the aggregate role's consumer group and flushes.
	Aggregate aggregate.Config `yaml:"aggregate"`
	// Kafka configures the cluster every role produces to and consumes from.
	Kafka kafka.Config `yaml:"kafka"`
	// ClickHouse configures where the sink writes.
	ClickHouse clickhouse.Config `yaml:"clickhouse"`
	// Sink configures the sink role's consumer group and topics.
	Sink sink.Config `yaml:"sink"`
	// Alert configures the alert role's rules, receivers and state.
	Alert alert.Config `yaml:"alert"`
	// Collect configures the node collector: log sources, topology,
	// metrics and batching.
	Collect collect.Config `yaml:"collect"`
	// Broker configures the embedded Kafka-protocol broker.
	Broker kafka.BrokerConfig `yaml:"broker"`
	// API bounds the query API's requests and queries.
	API report.Config `yaml:"api"`
	// Control configures the control plane.
	Control plane.Config `yaml:"control"`
	// HTTP configures the metrics, health and API listener of every role.
	HTTP HTTPConfig `yaml:"http"`
	// Log configures the structured logger.
	Log LogConfig `yaml:"log"`
}

// DefaultConfig returns the configuration used when no file is given.
func DefaultConfig() Config {
	return Config{
		Aggregator: aggregator.DefaultConfig(),
		Aggregate:  aggregate.DefaultConfig(),
		Kafka:      kafka.DefaultConfig(),
		ClickHouse: clickhouse.DefaultConfig(),
		Sink:       sink.DefaultConfig(),
		Alert:      alert.DefaultConfig(),
		Collect:    collect.DefaultConfig(),
		Broker:     kafka.DefaultBrokerConfig(),
		API:        report.DefaultConfig(),
		Control:    plane.DefaultConfig(),
		HTTP:       DefaultHTTPConfig(),
		Log:        DefaultLogConfig(),
	}
}

// Validate reports what no one section can see: today a clickhouse.dsn
// naming another database than clickhouse.database. Every section is
// validated by config.Validate, which calls this first.
func (c Config) Validate() error {
	return schemas.PrefixField("clickhouse", checkDSNDatabase(c.ClickHouse))
}

// checkDSNDatabase refuses a DSN whose path names a database other than
// c.Database: clickhouse.Config ignores the path, so such a file would
// silently write elsewhere than it says.
func checkDSNDatabase(c clickhouse.Config) error {
	u, err := url.Parse(c.DSN)
	if err != nil {
		return nil // clickhouse.Config.Validate reports it
	}
	if db := strings.TrimPrefix(u.Path, "/"); db != "" && db != c.Database {
		return schemas.Fieldf("dsn", "names database %q in its path, but clickhouse.database is %q; set the database in clickhouse.database only", db, c.Database)
	}
	return nil
}

// WithClickHouseDSN applies a --clickhouse value: a database in the DSN's
// path (clickhouse://HOST:PORT/DB) goes to clickhouse.database, the rest to
// clickhouse.dsn. It reports whether the database was set.
func WithClickHouseDSN(c *clickhouse.Config, dsn string) bool {
	c.DSN = dsn
	u, err := url.Parse(dsn)
	if err != nil {
		return false
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" || strings.Contains(db, "/") {
		return false
	}
	c.Database = db
	u.Path, u.RawPath = "", ""
	c.DSN = u.String()
	return true
}

// ClickHouseURL is the DSN with the database as its path, the form the
// --clickhouse flag takes.
func ClickHouseURL(c clickhouse.Config) string {
	u, err := url.Parse(c.DSN)
	if err != nil || (u.Path != "" && u.Path != "/") {
		return c.DSN
	}
	u.Path = "/" + c.Database
	return u.String()
}

// fieldErrs collects *schemas.FieldError values for a Validate method.
type fieldErrs []error

func (e *fieldErrs) add(field, format string, args ...any) {
	*e = append(*e, schemas.Fieldf(field, format, args...))
}

func (e fieldErrs) err() error { return errors.Join(e...) }

// HTTPConfig configures the HTTP listener of a role (/metrics, /healthz,
// /readyz and any API).
type HTTPConfig struct {
	// Listen is the HOST:PORT to serve on.
	Listen string `yaml:"listen"`
	// PprofListen is the loopback HOST:PORT the Go profiler is served on,
	// on a listener of its own; empty (the default) serves no profiler.
	PprofListen string `yaml:"pprof_listen"`
	// TLS is the listener's TLS (and the broker's HTTP listener's); off
	// without a certificate.
	TLS httpserver.TLSConfig `yaml:"tls"`
	// Auth says who may call the listener (and the broker's HTTP
	// listener); off without users or tokens.
	Auth httpserver.AuthConfig `yaml:"auth"`
}

// DefaultHTTPConfig returns the HTTP defaults: loopback only, plain HTTP,
// no authentication.
func DefaultHTTPConfig() HTTPConfig {
	return HTTPConfig{Listen: "127.0.0.1:8080", TLS: httpserver.DefaultTLSConfig(), Auth: httpserver.DefaultAuthConfig()}
}

// Validate reports every impossible value as a *schemas.FieldError.
func (c HTTPConfig) Validate() error {
	var errs fieldErrs
	if err := checkHostPort(c.Listen); err != nil {
		errs.add("listen", "%v", err)
	}
	if c.PprofListen != "" {
		if err := checkHostPort(c.PprofListen); err != nil {
			errs.add("pprof_listen", "%v", err)
		} else if err := checkLoopback(c.PprofListen); err != nil {
			errs.add("pprof_listen", "%v", err)
		}
	}
	if len(c.Auth.ClientCerts) > 0 && c.TLS.ClientCAFile == "" {
		errs.add("auth.client_certs", "need tls.client_ca_file: only certificates verified against it authenticate")
	}
	return errs.err()
}

// checkLoopback accepts a HOST:PORT whose host is localhost or a loopback
// IP address (127.0.0.0/8, ::1): the profiler shows the process's
// arguments and memory, so only the node itself may reach it.
func checkLoopback(s string) error {
	host, _, _ := net.SplitHostPort(s)
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%q is not a loopback address: the profiler is served on 127.0.0.1, ::1 or localhost only", s)
}

// LogConfig configures log/slog output.
type LogConfig struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text or json.
	Format string `yaml:"format"`
}

// DefaultLogConfig returns the log defaults: info, text.
func DefaultLogConfig() LogConfig {
	return LogConfig{Level: "info", Format: "text"}
}

// Validate reports every impossible value as a *schemas.FieldError.
func (c LogConfig) Validate() error {
	var errs fieldErrs
	switch c.Level {
	case "debug", "info", "warn", "error":
	default:
		errs.add("level", "must be debug, info, warn or error, got %q", c.Level)
	}
	switch c.Format {
	case "text", "json":
	default:
		errs.add("format", "must be text or json, got %q", c.Format)
	}
	return errs.err()
}

// checkHostPort accepts HOST:PORT with a numeric port in 1..65535; HOST may
// be empty (all interfaces) or a bracketed IPv6 address.
func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not HOST:PORT", s)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("%q has an invalid host", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q has an invalid port (want 1-65535)", s)
	}
	return nil
}
