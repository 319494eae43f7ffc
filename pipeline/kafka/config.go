// Package kafka is tpflow's Kafka transport: configuration of the client
// (brokers, topics, compression, TLS, SASL), a synchronous producer, a
// consumer-group reader with explicit commits, a generation-aware group
// consumer that lets its caller flush before partitions are revoked, the
// dead-letter queue, and the embedded Kafka-protocol broker used by
// `tpflow run`, `tpflow broker` and the tests. DESIGN.md next to this file
// records when offsets may be committed and why.
package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/tpflow/tpflow/internal/config"
	"github.com/tpflow/tpflow/schemas"
)

// Topic names, without the configured prefix; Config.Topic adds it.
const (
	TopicLogs    = "logs"
	TopicCalls   = "calls"
	TopicMetrics = "metrics"
	TopicStats   = "stats"
	TopicAlerts  = "alerts"
	TopicDLQ     = "dlq"
	// TopicLate carries call events that reached the aggregator after
	// their pane's grace, keyed like calls; the late merger folds them into
	// the stored panes.
	TopicLate = "late"
)

// TopicNames lists every topic tpflow uses, in a stable order.
var TopicNames = []string{TopicLogs, TopicCalls, TopicMetrics, TopicStats, TopicAlerts, TopicDLQ, TopicLate}

// Compression codec names accepted in Config.Compression.
const (
	CompressionNone   = "none"
	CompressionGzip   = "gzip"
	CompressionSnappy = "snappy"
	CompressionLZ4    = "lz4"
	CompressionZstd   = "zstd"
)

// SASL mechanism names accepted in SASLConfig.Mechanism.
const (
	SASLPlain       = "plain"
	SASLScramSHA256 = "scram-sha-256"
	SASLScramSHA512 = "scram-sha-512"
)

// messageOverhead is the room a producer request needs beyond the payload
// bytes of one message (record headers, key, batch header); the writer's
// batch limit and the topics' max.message.bytes are raised by this much so a
// payload of exactly MaxMessageBytes is still accepted.
const messageOverhead = 64 << 10

// TLSConfig configures TLS towards the brokers, used by every client (the
// producer, consumers, transactional producers and the admin client). The
// files are PEM encoded; certificates are verified unless
// InsecureSkipVerify is set.
type TLSConfig struct {
	Enabled bool `yaml:"enabled"`
	// CAFile holds the CAs to trust; empty means the system pool.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the client certificate for mutual TLS.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name the brokers' certificates must carry; empty
	// means the host of each address dialled.
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// SASLConfig configures SASL authentication. An empty Mechanism disables it.
type SASLConfig struct {
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	// Password is the SASL password; PasswordFile, the path of a file
	// holding it, is read instead when set (config.Secret).
	Password     config.Secret `yaml:"password"`
	PasswordFile string        `yaml:"password_file"`
}

// Config is the Kafka client configuration shared by every role.
type Config struct {
	// Brokers are the bootstrap addresses, host:port.
	Brokers []string `yaml:"brokers"`
	// TopicPrefix is put in front of every topic name (see Topic).
	TopicPrefix string `yaml:"topic_prefix"`
	// Partitions is the partition count per topic name (without prefix)
	// that EnsureTopics creates; a missing name falls back to the default.
	Partitions map[string]int `yaml:"partitions"`
	// ReplicationFactor is used by EnsureTopics for new topics.
	ReplicationFactor int `yaml:"replication_factor"`
	// Compression is one of none, gzip, snappy, lz4, zstd.
	Compression string `yaml:"compression"`
	// MaxMessageBytes is the largest message payload a producer sends;
	// the codec cuts event batches at this size.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// WriteTimeout bounds one produce request.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// BatchTimeout is how long a producer waits to fill a request with
	// messages from concurrent Produce calls before it sends it.
	BatchTimeout time.Duration `yaml:"batch_timeout"`
	// SessionTimeout is how long a consumer group waits for a member that
	// stopped heartbeating (a killed process) before it hands the member's
	// partitions to the others: the failover time. Heartbeats go every
	// tenth of it. Kafka brokers accept 6s..5m by default.
	SessionTimeout time.Duration `yaml:"session_timeout"`
	TLS            TLSConfig     `yaml:"tls"`
	SASL           SASLConfig    `yaml:"sasl"`
}

// DefaultPartitions returns the default partition count of every topic.
func DefaultPartitions() map[string]int {
	return map[string]int{
		TopicCalls:   8,
		TopicLogs:    8,
		TopicMetrics: 4,
		TopicStats:   4,
		TopicAlerts:  1,
		TopicDLQ:     1,
		TopicLate:    4,
	}
}

// DefaultConfig returns the configuration for a single local broker.
func DefaultConfig() Config {
	return Config{
		Brokers:           []string{"127.0.0.1:9092"},
		TopicPrefix:       "tpflow.",
		Partitions:        DefaultPartitions(),
		ReplicationFactor: 1,
		Compression:       CompressionLZ4,
		MaxMessageBytes:   1 << 20,
		WriteTimeout:      10 * time.Second,
		BatchTimeout:      5 * time.Millisecond,
		SessionTimeout:    10 * time.Second,
	}
}

// heartbeat is the consumer group heartbeat interval for c.
func (c Config) heartbeat() time.Duration { return max(c.SessionTimeout/10, 500*time.Millisecond) }

// Topic returns the full topic name for name (one of the Topic constants).
func (c Config) Topic(name string) string { return c.TopicPrefix + name }

// PartitionsFor returns the configured partition count of the topic name
// (without prefix), falling back to the default and then to 1.
func (c Config) PartitionsFor(name string) int {
	if n, ok := c.Partitions[name]; ok && n > 0 {
		return n
	}
	if n, ok := DefaultPartitions()[name]; ok {
		return n
	}
	return 1
}

// Validate reports every impossible value as a *schemas.FieldError, joined.
func (c Config) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, schemas.Fieldf(field, format, args...))
	}
	if len(c.Brokers) == 0 {
		add("brokers", "at least one broker address is required")
	}
	for i, b := range c.Brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			add(fmt.Sprintf("brokers[%d]", i), "%q is not a host:port address", b)
		}
	}
	if strings.ContainsAny(c.TopicPrefix, " /\\:,") || len(c.TopicPrefix) > 200 {
		add("topic_prefix", "%q is not usable in a topic name", c.TopicPrefix)
	}
	known := DefaultPartitions()
	names := make([]string, 0, len(c.Partitions))
	for name := range c.Partitions {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, ok := known[name]; !ok {
			add("partitions."+name, "unknown topic; known topics are %s", strings.Join(TopicNames, ", "))
			continue
		}
		if n := c.Partitions[name]; n < 1 || n > 10000 {
			add("partitions."+name, "partition count %d out of range 1..10000", n)
		}
	}
	if c.ReplicationFactor < 1 || c.ReplicationFactor > 32767 {
		add("replication_factor", "%d out of range 1..32767", c.ReplicationFactor)
	}
	if _, err := compressionCodec(c.Compression); err != nil {
		add("compression", "%v", err)
	}
	if c.MaxMessageBytes < 1024 || c.MaxMessageBytes > 64<<20 {
		add("max_message_bytes", "%d out of range 1 KiB..64 MiB", c.MaxMessageBytes)
	}
	if c.WriteTimeout <= 0 {
		add("write_timeout", "must be positive, got %s", c.WriteTimeout)
	}
	if c.SessionTimeout < 6*time.Second || c.SessionTimeout > 5*time.Minute {
		add("session_timeout", "%s out of range 6s..5m", c.SessionTimeout)
	}
	if c.BatchTimeout < 0 || c.BatchTimeout > time.Minute {
		add("batch_timeout", "%s out of range 0..1m", c.BatchTimeout)
	}
	if c.TLS.Enabled {
		errs = append(errs, c.TLS.check()...)
	} else if c.TLS.CAFile != "" || c.TLS.CertFile != "" || c.TLS.KeyFile != "" || c.TLS.ServerName != "" || c.TLS.InsecureSkipVerify {
		add("tls.enabled", "TLS settings are given but TLS is not enabled")
	}
	switch c.SASL.Mechanism {
	case "":
		if c.SASL.Username != "" || c.SASL.Password != "" {
			add("sasl.mechanism", "credentials are given but no mechanism")
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if c.SASL.Username == "" {
			add("sasl.username", "required for mechanism %s", c.SASL.Mechanism)
		} else if _, _, err := c.SASL.credentials(); err != nil {
			errs = append(errs, err)
		}
	default:
		add("sasl.mechanism", "unknown mechanism %q; use %s, %s or %s", c.SASL.Mechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
	}
	return errors.Join(errs...)
}

func compressionCodec(name string) (kafkago.Compression, error) {
	switch name {
	case CompressionNone:
		return 0, nil
	case CompressionGzip:
		return kafkago.Gzip, nil
	case CompressionSnappy:
		return kafkago.Snappy, nil
	case CompressionLZ4:
		return kafkago.Lz4, nil
	case CompressionZstd:
		return kafkago.Zstd, nil
	}
	return 0, fmt.Errorf("unknown compression %q; use none, gzip, snappy, lz4 or zstd", name)
}

// TLSClientConfig builds the client TLS configuration, or returns nil when
// TLS is disabled. Its errors are *schemas.FieldError values on the key
// whose file is wrong.
func (c Config) TLSClientConfig() (*tls.Config, error) {
	if !c.TLS.Enabled {
		return nil, nil
	}
	return c.TLS.build()
}

// check reports every problem of an enabled TLS section: a file that cannot
// be read or holds no usable PEM, a certificate without its key.
func (t TLSConfig) check() []error {
	var errs []error
	for _, f := range []struct{ field, path string }{
		{"tls.ca_file", t.CAFile}, {"tls.cert_file", t.CertFile}, {"tls.key_file", t.KeyFile},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			errs = append(errs, schemas.Fieldf(f.field, "cannot read %s: %v", f.path, errors.Unwrap(err)))
		}
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		errs = append(errs, schemas.Fieldf("tls", "cert_file and key_file must be set together"))
	}
	if len(errs) == 0 {
		if _, err := t.build(); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func (t TLSConfig) build() (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // explicit operator choice
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, schemas.Fieldf("tls.ca_file", "cannot read %s: %v", t.CAFile, errors.Unwrap(err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, schemas.Fieldf("tls.ca_file", "%s holds no PEM certificate", t.CAFile)
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, schemas.Fieldf("tls.cert_file", "cannot load the client certificate %s with key %s: %v", t.CertFile, t.KeyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// explain adds to an error of reaching the brokers what it most likely
// means for c's TLS and SASL keys, so that an operator knows which key to
// look at: a certificate from an unknown CA, a certificate for another
// name, or credentials the broker refused
// (Kafka brokers answer bad credentials with an error or by closing the
// connection).
func (c Config) explain(err error) error {
	if err == nil {
		return nil
	}
	var unknownCA x509.UnknownAuthorityError
	var badName x509.HostnameError
	hint := ""
	switch {
	case errors.As(err, &unknownCA):
		hint = "the brokers' certificate is not signed by a CA of kafka.tls.ca_file (or the system pool when it is empty)"
	case errors.As(err, &badName):
		hint = "the brokers' certificate does not carry the name dialled; set kafka.tls.server_name to a name it carries"
	case c.SASL.Mechanism != "" && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, kafkago.SASLAuthenticationFailed) || errors.Is(err, kerr.SaslAuthenticationFailed)):
		hint = fmt.Sprintf("SASL %s authentication as %q was refused or the broker closed the connection; check kafka.sasl.username and kafka.sasl.password", c.SASL.Mechanism, c.SASL.Username)
	default:
		return err
	}
	return fmt.Errorf("%w (%s)", err, hint)
}

// Transport builds the kafka-go transport (used by Writer and Client) with
// the configured TLS and SASL.
func (c Config) Transport() (*kafkago.Transport, error) {
	tc, err := c.TLSClientConfig()
	if err != nil {
		return nil, err
	}
	mech, err := c.SASLMechanism()
	if err != nil {
		return nil, err
	}
	return &kafkago.Transport{
		DialTimeout: 10 * time.Second,
		IdleTimeout: 30 * time.Second,
		MetadataTTL: 10 * time.Second,
		ClientID:    "tpflow",
		TLS:         tc,
		SASL:        mech,
	}, nil
}

// Dialer builds the kafka-go dialer (used by Reader and ConsumerGroup) with
// the configured TLS and SASL.
func (c Config) Dialer() (*kafkago.Dialer, error) {
	tc, err := c.TLSClientConfig()
	if err != nil {
		return nil, err
	}
	mech, err := c.SASLMechanism()
	if err != nil {
		return nil, err
	}
	return &kafkago.Dialer{
		ClientID:      "tpflow",
		Timeout:       10 * time.Second,
		DualStack:     true,
		TLS:           tc,
		SASLMechanism: mech,
	}, nil
}

// checked validates c and returns the first problem wrapped with what, so
// constructors refuse a configuration nobody validated.
func (c Config) checked(what string) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("cannot %s: invalid Kafka config: %w", what, err)
	}
	return nil
}

// client returns a kafka-go admin client for c.
func (c Config) client() (*kafkago.Client, error) {
	tr, err := c.Transport()
	if err != nil {
		return nil, err
	}
	return &kafkago.Client{Addr: kafkago.TCP(c.Brokers...), Timeout: c.WriteTimeout, Transport: tr}, nil
}

// EnsureTopics creates every tpflow topic (TopicNames, and the collectors'
// offsets topic TopicCollectOffsets, compacted) that does not exist yet, with the
// configured partition count and replication factor and a max.message.bytes
// large enough for MaxMessageBytes. Existing topics are left as they are: a
// topic with fewer partitions than configured is logged by the caller's
// check (see TopicPartitions), never silently repartitioned, because adding
// partitions moves keys between consumers. EnsureTopics is idempotent.
func EnsureTopics(ctx context.Context, cfg Config) error {
	if err := cfg.checked("ensure topics"); err != nil {
		return err
	}
	cl, err := cfg.client()
	if err != nil {
		return err
	}
	defer cl.Transport.(*kafkago.Transport).CloseIdleConnections()
	req := &kafkago.CreateTopicsRequest{}
	for _, name := range TopicNames {
		req.Topics = append(req.Topics, kafkago.TopicConfig{
			Topic:             cfg.Topic(name),
			NumPartitions:     cfg.PartitionsFor(name),
			ReplicationFactor: cfg.ReplicationFactor,
			ConfigEntries: []kafkago.ConfigEntry{
				{ConfigName: "max.message.bytes", ConfigValue: fmt.Sprint(cfg.MaxMessageBytes + messageOverhead)},
			},
		})
	}
	offsets := kafkago.TopicConfig{
		Topic:             cfg.Topic(TopicCollectOffsets),
		NumPartitions:     CollectOffsetsPartitions,
		ReplicationFactor: cfg.ReplicationFactor,
		ConfigEntries: []kafkago.ConfigEntry{
			{ConfigName: "max.message.bytes", ConfigValue: fmt.Sprint(cfg.MaxMessageBytes + messageOverhead)},
			{ConfigName: "cleanup.policy", ConfigValue: "compact"},
		},
	}
	req.Topics = append(req.Topics, offsets)
	resp, err := cl.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("cannot create topics: %w", cfg.explain(err))
	}
	var errs []error
	for topic, terr := range resp.Errors {
		if terr == nil || errors.Is(terr, kafkago.TopicAlreadyExists) {
			continue
		}
		if topic == offsets.Topic && errors.Is(terr, kafkago.InvalidConfiguration) {
			// A broker without compaction keeps the offsets topic
			// under its retention; a collector idle for longer than
			// that resumes from its state file.
			offsets.ConfigEntries = offsets.ConfigEntries[:1]
			r2, err := cl.CreateTopics(ctx, &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{offsets}})
			if err == nil {
				terr = r2.Errors[offsets.Topic]
			} else {
				terr = err
			}
			if terr == nil || errors.Is(terr, kafkago.TopicAlreadyExists) {
				continue
			}
		}
		errs = append(errs, fmt.Errorf("cannot create topic %s: %w", topic, terr))
	}
	return errors.Join(errs...)
}

// TopicPartitions returns the partition count of each named topic (full
// names) as the cluster reports it; a topic that does not exist is absent
// from the map.
func TopicPartitions(ctx context.Context, cfg Config, topics ...string) (map[string]int, error) {
	cl, err := cfg.client()
	if err != nil {
		return nil, err
	}
	defer cl.Transport.(*kafkago.Transport).CloseIdleConnections()
	resp, err := cl.Metadata(ctx, &kafkago.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("cannot read topic metadata: %w", cfg.explain(err))
	}
	out := make(map[string]int, len(resp.Topics))
	for _, t := range resp.Topics {
		if t.Error != nil {
			if errors.Is(t.Error, kafkago.UnknownTopicOrPartition) {
				continue
			}
			return nil, fmt.Errorf("cannot read metadata of topic %s: %w", t.Name, t.Error)
		}
		out[t.Name] = len(t.Partitions)
	}
	return out, nil
}
