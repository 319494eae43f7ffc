package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/schemas"
)

// The section types below (KafkaConfig, ClickHouseConfig, BrokerConfig,
// HTTPConfig, LogConfig) are stand-ins until the packages that use them
// export their own Config. Each has its own DefaultConfig and Validate so
// that swapping one for, say, kafka.Config is a change to one field of
// Config and one line of DefaultConfig. Field paths in *schemas.FieldError
// are the YAML keys relative to the section; Config.Validate prefixes them.

// Config is the whole tpflow configuration: one YAML file shared by every
// role. A key absent from the file keeps its value from DefaultConfig.
type Config struct {
	// Aggregator configures panes, windows, lateness and memory bounds.
	Aggregator aggregator.Config `yaml:"aggregator"`
	// Kafka configures the cluster every role produces to and consumes from.
	Kafka KafkaConfig `yaml:"kafka"`
	// ClickHouse configures where the sink writes.
	ClickHouse ClickHouseConfig `yaml:"clickhouse"`
	// Broker configures the embedded Kafka-protocol broker.
	Broker BrokerConfig `yaml:"broker"`
	// HTTP configures the metrics, health and API listener of every role.
	HTTP HTTPConfig `yaml:"http"`
	// Log configures the structured logger.
	Log LogConfig `yaml:"log"`
}

// DefaultConfig returns the configuration used when no file is given.
func DefaultConfig() Config {
	return Config{
		Aggregator: aggregator.DefaultConfig(),
		Kafka:      DefaultKafkaConfig(),
		ClickHouse: DefaultClickHouseConfig(),
		Broker:     DefaultBrokerConfig(),
		HTTP:       DefaultHTTPConfig(),
		Log:        DefaultLogConfig(),
	}
}

// Validate reports every impossible value in every section, each as a
// *schemas.FieldError whose field is the full dotted YAML path.
func (c Config) Validate() error {
	return errors.Join(
		schemas.PrefixField("aggregator", c.Aggregator.Validate()),
		schemas.PrefixField("kafka", c.Kafka.Validate()),
		schemas.PrefixField("clickhouse", c.ClickHouse.Validate()),
		schemas.PrefixField("broker", c.Broker.Validate()),
		schemas.PrefixField("http", c.HTTP.Validate()),
		schemas.PrefixField("log", c.Log.Validate()),
	)
}

// fieldErrs collects *schemas.FieldError values for a Validate method.
type fieldErrs []error

func (e *fieldErrs) add(field, format string, args ...any) {
	*e = append(*e, schemas.Fieldf(field, format, args...))
}

func (e fieldErrs) err() error { return errors.Join(e...) }

// KafkaConfig configures the Kafka cluster and the topics tpflow uses.
type KafkaConfig struct {
	// Brokers are the bootstrap brokers, HOST:PORT each.
	Brokers []string `yaml:"brokers"`
	// TopicPrefix is prepended to every topic name ("tpflow." gives
	// "tpflow.calls").
	TopicPrefix string `yaml:"topic_prefix"`
	// Partitions is the partition count of each topic when tpflow creates it.
	Partitions PartitionsConfig `yaml:"partitions"`
	// Compression is the producer's batch compression: lz4, zstd or none.
	Compression string `yaml:"compression"`
	// MaxMessageBytes bounds one produced message (an EventBatch) before
	// compression.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// TLS configures encryption to the brokers.
	TLS TLSConfig `yaml:"tls"`
	// SASL configures authentication to the brokers.
	SASL SASLConfig `yaml:"sasl"`
}

// PartitionsConfig holds the partition count of each tpflow topic.
type PartitionsConfig struct {
	// Calls is the partition count of the calls topic.
	Calls int `yaml:"calls"`
	// Logs is the partition count of the logs topic.
	Logs int `yaml:"logs"`
	// Metrics is the partition count of the metrics topic.
	Metrics int `yaml:"metrics"`
	// Stats is the partition count of the stats topic (final panes).
	Stats int `yaml:"stats"`
	// Alerts is the partition count of the alerts topic.
	Alerts int `yaml:"alerts"`
	// DLQ is the partition count of the dead-letter topic.
	DLQ int `yaml:"dlq"`
}

// TLSConfig configures TLS to Kafka.
type TLSConfig struct {
	// Enabled turns TLS on.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of CAs to trust; empty means the system pool.
	CAFile string `yaml:"ca_file"`
	// CertFile is the PEM client certificate for mutual TLS.
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of CertFile.
	KeyFile string `yaml:"key_file"`
	// InsecureSkipVerify disables verification of the broker certificates.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// SASLConfig configures SASL authentication to Kafka.
type SASLConfig struct {
	// Mechanism is plain, scram-sha-256 or scram-sha-512; empty disables SASL.
	Mechanism string `yaml:"mechanism"`
	// Username is the SASL user.
	Username string `yaml:"username"`
	// Password is the SASL password.
	Password string `yaml:"password"`
}

// DefaultKafkaConfig returns the Kafka defaults: one local broker, lz4.
func DefaultKafkaConfig() KafkaConfig {
	return KafkaConfig{
		Brokers:     []string{"127.0.0.1:9092"},
		TopicPrefix: "tpflow.",
		Partitions: PartitionsConfig{
			Calls: 8, Logs: 8, Metrics: 4, Stats: 4, Alerts: 1, DLQ: 1,
		},
		Compression:     "lz4",
		MaxMessageBytes: 1 << 20,
	}
}

// maxTopicPrefix leaves room for the longest topic suffix within Kafka's
// 249-character limit on topic names.
const maxTopicPrefix = 200

// Validate reports every impossible value as a *schemas.FieldError.
func (c KafkaConfig) Validate() error {
	var errs fieldErrs
	if len(c.Brokers) == 0 {
		errs.add("brokers", "at least one broker is required")
	}
	for i, b := range c.Brokers {
		if err := checkHostPort(b); err != nil {
			errs.add(fmt.Sprintf("brokers[%d]", i), "%v", err)
		}
	}
	if len(c.TopicPrefix) > maxTopicPrefix {
		errs.add("topic_prefix", "must be at most %d characters, got %d", maxTopicPrefix, len(c.TopicPrefix))
	}
	for _, r := range c.TopicPrefix {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			errs.add("topic_prefix", "%q is not allowed in a Kafka topic name (use letters, digits, '.', '_', '-')", r)
			break
		}
	}
	p := c.Partitions
	for _, f := range []struct {
		name string
		n    int
	}{{"calls", p.Calls}, {"logs", p.Logs}, {"metrics", p.Metrics}, {"stats", p.Stats}, {"alerts", p.Alerts}, {"dlq", p.DLQ}} {
		if f.n < 1 || f.n > 1000 {
			errs.add("partitions."+f.name, "must be between 1 and 1000, got %d", f.n)
		}
	}
	switch c.Compression {
	case "lz4", "zstd", "none":
	default:
		errs.add("compression", "must be lz4, zstd or none, got %q", c.Compression)
	}
	if c.MaxMessageBytes < 1<<10 || c.MaxMessageBytes > 64<<20 {
		errs.add("max_message_bytes", "must be between 1024 (1 KiB) and 67108864 (64 MiB), got %d", c.MaxMessageBytes)
	}
	t := c.TLS
	if t.Enabled {
		if (t.CertFile == "") != (t.KeyFile == "") {
			field := "tls.cert_file"
			if t.KeyFile == "" {
				field = "tls.key_file"
			}
			errs.add(field, "cert_file and key_file must be set together")
		}
	} else {
		for _, f := range []struct{ name, v string }{{"ca_file", t.CAFile}, {"cert_file", t.CertFile}, {"key_file", t.KeyFile}} {
			if f.v != "" {
				errs.add("tls."+f.name, "is set but tls.enabled is false")
			}
		}
		if t.InsecureSkipVerify {
			errs.add("tls.insecure_skip_verify", "is set but tls.enabled is false")
		}
	}
	s := c.SASL
	switch s.Mechanism {
	case "":
		if s.Username != "" || s.Password != "" {
			errs.add("sasl.mechanism", "must be set when sasl.username or sasl.password is")
		}
	case "plain", "scram-sha-256", "scram-sha-512":
		if s.Username == "" {
			errs.add("sasl.username", "is required with sasl.mechanism %s", s.Mechanism)
		}
	default:
		errs.add("sasl.mechanism", "must be plain, scram-sha-256 or scram-sha-512, got %q", s.Mechanism)
	}
	return errs.err()
}

// ClickHouseConfig configures the ClickHouse connection and insert batching.
type ClickHouseConfig struct {
	// DSN is clickhouse://[USER[:PASSWORD]@]HOST:PORT/DATABASE[?OPTIONS],
	// the native protocol.
	DSN string `yaml:"dsn"`
	// BatchRows is the number of rows that triggers an insert.
	BatchRows int `yaml:"batch_rows"`
	// BatchAge is the age of the oldest buffered row that triggers an insert.
	BatchAge time.Duration `yaml:"batch_age"`
	// MaxRetryBackoff caps the exponential backoff between insert retries.
	MaxRetryBackoff time.Duration `yaml:"max_retry_backoff"`
}

// DefaultClickHouseConfig returns the ClickHouse defaults: a local server.
func DefaultClickHouseConfig() ClickHouseConfig {
	return ClickHouseConfig{
		DSN:             "clickhouse://127.0.0.1:9000/tpflow",
		BatchRows:       5000,
		BatchAge:        2 * time.Second,
		MaxRetryBackoff: 30 * time.Second,
	}
}

// Validate reports every impossible value as a *schemas.FieldError.
func (c ClickHouseConfig) Validate() error {
	var errs fieldErrs
	if err := checkClickHouseDSN(c.DSN); err != nil {
		errs.add("dsn", "%v", err)
	}
	if c.BatchRows < 1 || c.BatchRows > 1_000_000 {
		errs.add("batch_rows", "must be between 1 and 1000000, got %d", c.BatchRows)
	}
	if c.BatchAge <= 0 {
		errs.add("batch_age", "must be positive, got %s", c.BatchAge)
	}
	if c.MaxRetryBackoff < 100*time.Millisecond {
		errs.add("max_retry_backoff", "must be at least 100ms, got %s", c.MaxRetryBackoff)
	}
	return errs.err()
}

// checkClickHouseDSN accepts clickhouse://HOST:PORT/DB with optional user
// info and query options.
func checkClickHouseDSN(dsn string) error {
	u, err := url.Parse(dsn)
	if err != nil {
		return fmt.Errorf("cannot parse %q as a URL", dsn)
	}
	if u.Scheme != "clickhouse" {
		return fmt.Errorf("%q must start with clickhouse:// (the native protocol)", dsn)
	}
	if err := checkHostPort(u.Host); err != nil {
		return fmt.Errorf("%q: %v", dsn, err)
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" || strings.Contains(db, "/") {
		return fmt.Errorf("%q must name one database, as in clickhouse://HOST:PORT/tpflow", dsn)
	}
	return nil
}

// BrokerConfig configures the embedded Kafka-protocol broker that
// `tpflow broker` and `tpflow run` start.
type BrokerConfig struct {
	// Listen is the HOST:PORT the broker accepts Kafka clients on.
	Listen string `yaml:"listen"`
	// DataDir keeps the log segments on disk; empty keeps them in memory.
	DataDir string `yaml:"data_dir"`
	// Retention is how long a record is kept.
	Retention time.Duration `yaml:"retention"`
	// RetentionBytes caps each partition's size on disk.
	RetentionBytes int64 `yaml:"retention_bytes"`
}

// DefaultBrokerConfig returns the broker defaults: in memory, one day.
func DefaultBrokerConfig() BrokerConfig {
	return BrokerConfig{
		Listen:         "127.0.0.1:9092",
		Retention:      24 * time.Hour,
		RetentionBytes: 1 << 30,
	}
}

// Validate reports every impossible value as a *schemas.FieldError.
func (c BrokerConfig) Validate() error {
	var errs fieldErrs
	if err := checkHostPort(c.Listen); err != nil {
		errs.add("listen", "%v", err)
	}
	if c.Retention < time.Minute {
		errs.add("retention", "must be at least 1m, got %s", c.Retention)
	}
	if c.RetentionBytes < 1<<20 {
		errs.add("retention_bytes", "must be at least 1048576 (1 MiB), got %d", c.RetentionBytes)
	}
	return errs.err()
}

// HTTPConfig configures the HTTP listener of a role (/metrics, /healthz,
// /readyz and any API).
type HTTPConfig struct {
	// Listen is the HOST:PORT to serve on.
	Listen string `yaml:"listen"`
}

// DefaultHTTPConfig returns the HTTP defaults: loopback only.
func DefaultHTTPConfig() HTTPConfig {
	return HTTPConfig{Listen: "127.0.0.1:8080"}
}

// Validate reports every impossible value as a *schemas.FieldError.
func (c HTTPConfig) Validate() error {
	var errs fieldErrs
	if err := checkHostPort(c.Listen); err != nil {
		errs.add("listen", "%v", err)
	}
	return errs.err()
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
