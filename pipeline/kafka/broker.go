package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/tpflow/tpflow/schemas"
)

// BrokerConfig configures the embedded single-node Kafka-protocol broker
// (kfake) that `tpflow run` and `tpflow broker` start.
type BrokerConfig struct {
	// Listen is the host:port the broker accepts clients on; port 0 picks
	// a free port (see Broker.Addr).
	Listen string `yaml:"listen"`
	// Advertise is the host:port the broker tells clients to connect to;
	// empty means Listen (with an unspecified host replaced by 127.0.0.1).
	Advertise string `yaml:"advertise"`
	// DataDir keeps topics, offsets and groups on disk across restarts;
	// empty keeps everything in memory.
	DataDir string `yaml:"data_dir"`
	// Retention drops log segments whose newest record is older than this;
	// 0 keeps data forever.
	Retention time.Duration `yaml:"retention"`
	// RetentionBytes caps the size of each partition's log; 0 means no cap.
	RetentionBytes int64 `yaml:"retention_bytes"`
	// SyncWrites fsyncs every produced batch before acknowledging it.
	SyncWrites bool `yaml:"sync_writes"`
	// MaxMessageBytes is the largest record batch the broker accepts.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// HTTPListen is the host:port the broker role serves /metrics,
	// /healthz and /readyz on; port 0 picks a free port (logged at
	// start-up); empty serves none. It is apart from http.listen so that a
	// broker and a role can share one configuration file.
	HTTPListen string `yaml:"http_listen"`
	// SASL, when its mechanism is set, makes every client authenticate as
	// its one user (a superuser), with the clients' kafka.sasl keys.
	SASL SASLConfig `yaml:"sasl"`
}

// DefaultBrokerConfig returns an in-memory broker on 127.0.0.1:9092 that
// keeps data for 7 days.
func DefaultBrokerConfig() BrokerConfig {
	return BrokerConfig{
		Listen:          "127.0.0.1:9092",
		Retention:       7 * 24 * time.Hour,
		MaxMessageBytes: 8 << 20,
		HTTPListen:      "127.0.0.1:0",
	}
}

// Validate reports every impossible value as a *schemas.FieldError, joined.
func (c BrokerConfig) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, schemas.Fieldf(field, format, args...))
	}
	listen := func(field, addr string) {
		if _, port, err := net.SplitHostPort(addr); err != nil {
			add(field, "%q is not a host:port address", addr)
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			add(field, "port %q out of range 0..65535", port)
		}
	}
	listen("listen", c.Listen)
	if c.HTTPListen != "" {
		listen("http_listen", c.HTTPListen)
	}
	if c.Advertise != "" {
		if _, port, err := net.SplitHostPort(c.Advertise); err != nil {
			add("advertise", "%q is not a host:port address", c.Advertise)
		} else if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			add("advertise", "port %q out of range 1..65535", port)
		}
	}
	if c.DataDir != "" {
		if st, err := os.Stat(c.DataDir); err == nil && !st.IsDir() {
			add("data_dir", "%s exists and is not a directory", c.DataDir)
		}
	} else if c.SyncWrites {
		add("sync_writes", "needs data_dir: an in-memory broker has nothing to sync")
	}
	if c.Retention < 0 {
		add("retention", "must not be negative, got %s", c.Retention)
	} else if c.Retention > 0 && c.Retention < time.Millisecond {
		add("retention", "%s is below the 1ms resolution", c.Retention)
	}
	if c.RetentionBytes < 0 {
		add("retention_bytes", "must not be negative, got %d", c.RetentionBytes)
	}
	if c.MaxMessageBytes < 1024 || c.MaxMessageBytes > 256<<20 {
		add("max_message_bytes", "%d out of range 1 KiB..256 MiB", c.MaxMessageBytes)
	}
	switch c.SASL.Mechanism {
	case "":
		if c.SASL.Username != "" || c.SASL.Password != "" {
			add("sasl.mechanism", "credentials are given but no mechanism")
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if c.SASL.Username == "" || c.SASL.Password == "" {
			add("sasl", "the broker's user needs username and password (or password_file)")
		} else if _, _, err := c.SASL.credentials(); err != nil {
			errs = append(errs, err)
		}
	default:
		add("sasl.mechanism", "unknown mechanism %q; use %s, %s or %s", c.SASL.Mechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
	}
	return errors.Join(errs...)
}

// Broker is a running embedded broker. Close stops it; with a data dir,
// StartBroker on the same directory brings every topic, record and
// committed offset back.
type Broker struct {
	cluster *kfake.Cluster
	addr    string
	logger  *slog.Logger

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// retentionInterval is how often the broker enforces retention. kfake only
// runs its own cleaner for topics with explicit retention configs, so the
// broker applies the broker-wide limits itself on this tick.
func retentionInterval(cfg BrokerConfig) time.Duration {
	d := time.Minute
	if cfg.Retention > 0 && cfg.Retention/10 < d {
		d = cfg.Retention / 10
	}
	if d < 100*time.Millisecond {
		d = 100 * time.Millisecond
	}
	return d
}

// StartBroker starts the embedded broker and returns once it accepts
// connections. ctx bounds only the start-up (loading a data dir); use Close
// to stop the broker. A nil logger discards.
func StartBroker(ctx context.Context, cfg BrokerConfig, logger *slog.Logger) (*Broker, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot start broker: invalid config: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("cannot start broker: %w", err)
	}
	advertise := cfg.Advertise
	if advertise == "" {
		host, port, _ := net.SplitHostPort(ln.Addr().String())
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
			host = "127.0.0.1"
		}
		advertise = net.JoinHostPort(host, port)
	}
	advAddr, err := net.ResolveTCPAddr("tcp", advertise)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("cannot start broker: cannot resolve advertised address %s: %w", advertise, err)
	}
	used := false
	listenFn := func(string, string) (net.Listener, error) {
		if used {
			return nil, errors.New("BUG: embedded broker asked for a second listener")
		}
		used = true
		return advertisedListener{Listener: ln, addr: advAddr}, nil
	}

	retMs, retBytes := "-1", "-1"
	if cfg.Retention > 0 {
		retMs = strconv.FormatInt(cfg.Retention.Milliseconds(), 10)
	}
	if cfg.RetentionBytes > 0 {
		retBytes = strconv.FormatInt(cfg.RetentionBytes, 10)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.ListenFn(listenFn),
		kfake.ClusterID("tpflow"),
		kfake.WithLogger(kfakeLogger{logger}),
		kfake.DefaultNumPartitions(1),
		kfake.BrokerConfigs(map[string]string{
			"log.retention.ms":    retMs,
			"log.retention.bytes": retBytes,
			"message.max.bytes":   strconv.Itoa(cfg.MaxMessageBytes),
		}),
	}
	if cfg.DataDir != "" {
		dir, err := filepath.Abs(cfg.DataDir)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("cannot start broker: %w", err)
		}
		opts = append(opts, kfake.DataDir(dir))
		if cfg.SyncWrites {
			opts = append(opts, kfake.SyncWrites())
		}
	}
	if cfg.SASL.Mechanism != "" {
		// Prepared as the clients prepare theirs (SASLprep for SCRAM).
		user, pass, _ := cfg.SASL.credentials()
		opts = append(opts, kfake.EnableSASL(), kfake.Superuser(strings.ToUpper(cfg.SASL.Mechanism), user, pass))
	}
	cluster, err := kfake.NewCluster(opts...)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("cannot start broker on %s: %w", cfg.DataDir, err)
	}
	b := &Broker{cluster: cluster, addr: advertise, logger: logger, stop: make(chan struct{})}
	if cfg.Retention > 0 || cfg.RetentionBytes > 0 {
		cluster.ApplyRetention()
		b.wg.Add(1)
		go b.retentionLoop(retentionInterval(cfg))
	}
	logger.Info("kafka broker started", "addr", advertise, "listen", ln.Addr().String(),
		"data_dir", cfg.DataDir, "retention", cfg.Retention, "retention_bytes", cfg.RetentionBytes,
		"sync_writes", cfg.SyncWrites)
	return b, nil
}

func (b *Broker) retentionLoop(every time.Duration) {
	defer b.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.cluster.ApplyRetention()
		}
	}
}

// Addr returns the address clients should bootstrap from.
func (b *Broker) Addr() string { return b.addr }

// ApplyRetention enforces the retention limits now instead of on the next
// periodic pass.
func (b *Broker) ApplyRetention() { b.cluster.ApplyRetention() }

// Close stops the broker and, with a data dir, flushes it to disk. It is
// safe to call more than once.
func (b *Broker) Close() {
	b.closeOnce.Do(func() {
		close(b.stop)
		b.wg.Wait()
		b.cluster.Close()
		b.logger.Info("kafka broker stopped", "addr", b.addr)
	})
}

// RunBroker runs the embedded broker until ctx is done, then closes it. It
// is the body of the `tpflow broker` subcommand.
func RunBroker(ctx context.Context, cfg BrokerConfig, logger *slog.Logger) error {
	b, err := StartBroker(ctx, cfg, logger)
	if err != nil {
		return err
	}
	<-ctx.Done()
	b.Close()
	return nil
}

// advertisedListener reports the advertised address instead of the bound
// one, because kfake advertises whatever Addr returns in metadata.
type advertisedListener struct {
	net.Listener
	addr net.Addr
}

// Addr returns the advertised address.
func (l advertisedListener) Addr() net.Addr { return l.addr }

// kfakeLogger adapts slog to kfake's logger, keeping kfake's debug chatter
// at debug level.
type kfakeLogger struct{ l *slog.Logger }

// Logf implements kfake.Logger.
func (k kfakeLogger) Logf(level kfake.LogLevel, msg string, args ...any) {
	lvl := slog.LevelDebug
	switch level {
	case kfake.LogLevelError:
		lvl = slog.LevelError
	case kfake.LogLevelWarn:
		lvl = slog.LevelWarn
	}
	if !k.l.Enabled(context.Background(), lvl) {
		return
	}
	k.l.Log(context.Background(), lvl, "kfake: "+fmt.Sprintf(msg, args...))
}
