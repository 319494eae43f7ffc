package kafka

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/tpflow/tpflow/internal/config"
)

func TestDefaultConfig(t *testing.T) {
	cfg := DefaultConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	want := map[string]int{TopicCalls: 8, TopicLogs: 8, TopicMetrics: 4, TopicStats: 4, TopicAlerts: 1, TopicDLQ: 1, TopicLate: 4}
	for _, name := range TopicNames {
		if got := cfg.PartitionsFor(name); got != want[name] {
			t.Errorf("PartitionsFor(%s) = %d, want %d", name, got, want[name])
		}
		if got := cfg.Topic(name); got != "tpflow."+name {
			t.Errorf("Topic(%s) = %q", name, got)
		}
	}
	if len(TopicNames) != len(want) {
		t.Errorf("TopicNames has %d names, want %d", len(TopicNames), len(want))
	}
	// A partial partitions map falls back per topic.
	cfg.Partitions = map[string]int{TopicCalls: 3}
	if cfg.PartitionsFor(TopicCalls) != 3 || cfg.PartitionsFor(TopicLogs) != 8 {
		t.Errorf("partial map: calls=%d logs=%d", cfg.PartitionsFor(TopicCalls), cfg.PartitionsFor(TopicLogs))
	}
}

// loadConfig decodes YAML over the defaults and validates it with the
// config loader.
func loadConfig(data []byte) (Config, error) {
	cfg := DefaultConfig()
	err := config.Load("test.yaml", data, &cfg)
	return cfg, err
}

func TestConfigFiles(t *testing.T) {
	data, err := os.ReadFile("testdata/full.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(data)
	if err != nil {
		t.Fatalf("full.good.yaml: %v", err)
	}
	if cfg.PartitionsFor(TopicCalls) != 32 || cfg.PartitionsFor(TopicMetrics) != 4 {
		t.Errorf("partitions merged wrongly: %v", cfg.Partitions)
	}
	if cfg.WriteTimeout != 5*time.Second || cfg.BatchTimeout != 2*time.Millisecond || cfg.ReplicationFactor != 3 {
		t.Errorf("durations/replication decoded wrongly: %+v", cfg)
	}
	if cfg.Topic(TopicStats) != "prod.stats" {
		t.Errorf("Topic = %q", cfg.Topic(TopicStats))
	}
	for file, want := range map[string]string{
		"testdata/unknown-key.bad.yaml":     `unknown key "compresion" (did you mean "compression"?)`,
		"testdata/bad-compression.bad.yaml": `compression: unknown compression "brotli"`,
	} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		_, err = loadConfig(data)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to contain %q", file, err, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	present := filepath.Join(dir, "present.pem")
	if err := os.WriteFile(present, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []fieldCase[Config]{
		{"empty broker list", func(c *Config) { c.Brokers = nil }, "brokers"},
		{"broker without port", func(c *Config) { c.Brokers = []string{"kafka"} }, "brokers[0]"},
		{"second broker bad", func(c *Config) { c.Brokers = []string{"a:1", "b"} }, "brokers[1]"},
		{"prefix with slash", func(c *Config) { c.TopicPrefix = "a/b" }, "topic_prefix"},
		{"unknown topic partitions", func(c *Config) { c.Partitions = map[string]int{"spans": 3} }, "partitions.spans"},
		{"zero partitions", func(c *Config) { c.Partitions = map[string]int{TopicCalls: 0} }, "partitions.calls"},
		{"zero replication", func(c *Config) { c.ReplicationFactor = 0 }, "replication_factor"},
		{"bad compression", func(c *Config) { c.Compression = "brotli" }, "compression"},
		{"empty compression", func(c *Config) { c.Compression = "" }, "compression"},
		{"tiny max message", func(c *Config) { c.MaxMessageBytes = 100 }, "max_message_bytes"},
		{"huge max message", func(c *Config) { c.MaxMessageBytes = 1 << 30 }, "max_message_bytes"},
		{"zero write timeout", func(c *Config) { c.WriteTimeout = 0 }, "write_timeout"},
		{"negative batch timeout", func(c *Config) { c.BatchTimeout = -1 }, "batch_timeout"},
		{"session timeout below what brokers accept", func(c *Config) { c.SessionTimeout = time.Second }, "session_timeout"},
		{"session timeout too long", func(c *Config) { c.SessionTimeout = time.Hour }, "session_timeout"},
		{"tls ca missing", func(c *Config) { c.TLS = TLSConfig{Enabled: true, CAFile: missing} }, "tls.ca_file"},
		{"tls cert missing", func(c *Config) { c.TLS = TLSConfig{Enabled: true, CertFile: missing, KeyFile: present} }, "tls.cert_file"},
		{"tls key missing", func(c *Config) { c.TLS = TLSConfig{Enabled: true, CertFile: present, KeyFile: missing} }, "tls.key_file"},
		{"tls cert without key", func(c *Config) { c.TLS = TLSConfig{Enabled: true, CertFile: present} }, "tls"},
		{"tls files but disabled", func(c *Config) { c.TLS = TLSConfig{CAFile: present} }, "tls.enabled"},
		{"tls server name but disabled", func(c *Config) { c.TLS = TLSConfig{ServerName: "kafka"} }, "tls.enabled"},
		{"tls ca not PEM", func(c *Config) { c.TLS = TLSConfig{Enabled: true, CAFile: present} }, "tls.ca_file"},
		{"tls cert not PEM", func(c *Config) { c.TLS = TLSConfig{Enabled: true, CertFile: present, KeyFile: present} }, "tls.cert_file"},
		{"scram password SASLprep refuses", func(c *Config) {
			c.SASL = SASLConfig{Mechanism: SASLScramSHA512, Username: "u", Password: "p\u0000"}
		}, "sasl.password"},
		{"scram empty password", func(c *Config) { c.SASL = SASLConfig{Mechanism: SASLScramSHA512, Username: "u"} }, "sasl"},
		{"unknown sasl mechanism", func(c *Config) { c.SASL = SASLConfig{Mechanism: "gssapi", Username: "u"} }, "sasl.mechanism"},
		{"sasl upper case", func(c *Config) { c.SASL = SASLConfig{Mechanism: "PLAIN", Username: "u"} }, "sasl.mechanism"},
		{"sasl without user", func(c *Config) { c.SASL = SASLConfig{Mechanism: SASLPlain} }, "sasl.username"},
		{"sasl creds without mechanism", func(c *Config) { c.SASL = SASLConfig{Username: "u", Password: "p"} }, "sasl.mechanism"},
	}
	checkFieldErrors(t, DefaultConfig, cases)
	// Every problem is reported, not only the first.
	cfg := DefaultConfig()
	cfg.Brokers = nil
	cfg.Compression = "x"
	cfg.SASL.Mechanism = "y"
	if err := cfg.Validate(); err == nil || strings.Count(err.Error(), "\n") != 2 {
		t.Errorf("want three joined errors, got %v", err)
	}
	// Constructors refuse an invalid config.
	if _, err := NewProducer(cfg, "t", nil); err == nil {
		t.Error("NewProducer accepted an invalid config")
	}
	if _, err := NewConsumer(cfg, "t", "g", nil); err == nil {
		t.Error("NewConsumer accepted an invalid config")
	}
	if _, err := NewGroupConsumer(cfg, "t", "g", nil); err == nil {
		t.Error("NewGroupConsumer accepted an invalid config")
	}
	if err := EnsureTopics(context.Background(), cfg); err == nil {
		t.Error("EnsureTopics accepted an invalid config")
	}
	good := DefaultConfig()
	if _, err := NewProducer(good, "", nil); err == nil {
		t.Error("NewProducer accepted an empty topic")
	}
	if _, err := NewConsumer(good, "t", "", nil); err == nil {
		t.Error("NewConsumer accepted an empty group")
	}
}

// TestTLSFileErrorsAtTheirLine loads a configuration file whose TLS files
// are missing or not PEM: each problem is reported at its key's line with
// the path.
func TestTLSFileErrorsAtTheirLine(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "client.pem")
	yaml := "tls:\n  enabled: true\n  ca_file: " + notPEM + "\n  cert_file: " + missing + "\n  key_file: " + missing + "\n"
	_, err := loadConfig([]byte(yaml))
	for _, want := range []string{
		"test.yaml:4:", "tls.cert_file: cannot read " + missing, "test.yaml:5:", "tls.key_file: cannot read " + missing,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want it to contain %q", err, want)
		}
	}
	yaml = "tls:\n  enabled: true\n  ca_file: " + notPEM + "\n"
	if _, err := loadConfig([]byte(yaml)); err == nil || !strings.Contains(err.Error(), "test.yaml:3:") ||
		!strings.Contains(err.Error(), notPEM+" holds no PEM certificate") {
		t.Errorf("CA file without PEM: %v", err)
	}
}

func TestCompressionCodec(t *testing.T) {
	for name, want := range map[string]kafkago.Compression{
		CompressionNone: 0, CompressionGzip: kafkago.Gzip, CompressionSnappy: kafkago.Snappy,
		CompressionLZ4: kafkago.Lz4, CompressionZstd: kafkago.Zstd,
	} {
		got, err := compressionCodec(name)
		if err != nil || got != want {
			t.Errorf("compressionCodec(%q) = %v, %v; want %v", name, got, err, want)
		}
	}
	if _, err := compressionCodec("lz5"); err == nil {
		t.Error("compressionCodec accepted lz5")
	}
}

// writeCert writes a self-signed CA certificate and its key as PEM.
func writeCert(t *testing.T, dir string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tpflow-test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

func TestTLSTranslation(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, cert := writeCert(t, dir)

	cfg := DefaultConfig()
	if tc, err := cfg.TLSClientConfig(); tc != nil || err != nil {
		t.Fatalf("TLS disabled: got %v, %v; want nil, nil", tc, err)
	}
	cfg.TLS = TLSConfig{Enabled: true, CAFile: certFile, CertFile: certFile, KeyFile: keyFile, InsecureSkipVerify: true}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	tc, err := cfg.TLSClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	if !tc.InsecureSkipVerify || len(tc.Certificates) != 1 || tc.RootCAs == nil || tc.MinVersion != tls.VersionTLS12 {
		t.Fatalf("TLS config not translated: %+v", tc)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: tc.RootCAs}); err != nil {
		t.Fatalf("CA pool does not hold the CA file's certificate: %v", err)
	}
	tr, err := cfg.Transport()
	if err != nil || tr.TLS != tc && (tr.TLS == nil || len(tr.TLS.Certificates) != 1) {
		t.Fatalf("Transport TLS = %+v, %v", tr.TLS, err)
	}
	d, err := cfg.Dialer()
	if err != nil || d.TLS == nil || !d.TLS.InsecureSkipVerify {
		t.Fatalf("Dialer TLS = %+v, %v", d.TLS, err)
	}

	// Bad file contents are reported when building, even if the files exist.
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not pem"), 0o600)
	cfg.TLS = TLSConfig{Enabled: true, CAFile: bad}
	if _, err := cfg.TLSClientConfig(); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("bad CA file: %v", err)
	}
	cfg.TLS = TLSConfig{Enabled: true, CertFile: bad, KeyFile: keyFile}
	if _, err := cfg.Transport(); err == nil {
		t.Error("bad client certificate accepted")
	}
	if _, err := cfg.Dialer(); err == nil {
		t.Error("bad client certificate accepted by Dialer")
	}
}

// TestTLSAgainstBroker runs every client over TLS against a broker that
// serves it, verifying the broker's certificate with tls.ca_file and
// tls.server_name (insecure_skip_verify stays off, its default), and
// checks that the wrong CA and the wrong name fail with an error that
// names the key to fix.
func TestTLSAgainstBroker(t *testing.T) {
	certFile, keyFile, _ := writeCert(t, t.TempDir())
	otherCA, _, _ := writeCert(t, t.TempDir())
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(&tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}),
		kfake.SeedTopics(1, "tls-topic"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := testCtx(t, 30*time.Second)
	base := DefaultConfig()
	base.Brokers = c.ListenAddrs()
	if base.TLS.InsecureSkipVerify {
		t.Fatal("insecure_skip_verify is on by default")
	}

	// The certificate names localhost, the broker listens on 127.0.0.1.
	for name, tc := range map[string]struct {
		tls  TLSConfig
		want string
	}{
		"wrong CA":   {TLSConfig{Enabled: true, CAFile: otherCA, ServerName: "localhost"}, "kafka.tls.ca_file"},
		"no CA file": {TLSConfig{Enabled: true, ServerName: "localhost"}, "kafka.tls.ca_file"},
		"wrong name": {TLSConfig{Enabled: true, CAFile: certFile}, "kafka.tls.server_name"},
	} {
		cfg := base
		cfg.TLS = tc.tls
		_, err := TopicPartitions(ctx, cfg, "tls-topic")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: admin client error %v, want one that says %q", name, err, tc.want)
		}
		// The franz-go clients (consumers, transactional producers) refuse
		// it too.
		err = cfg.explain(kgoPing(t, ctx, cfg))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: franz-go client error %v, want one that says %q", name, err, tc.want)
		}
	}

	cfg := base
	cfg.TLS = TLSConfig{Enabled: true, CAFile: certFile, ServerName: "localhost"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	parts, err := TopicPartitions(ctx, cfg, "tls-topic")
	if err != nil || parts["tls-topic"] != 1 {
		t.Fatalf("TLS metadata: %v, %v", parts, err)
	}
	roundTrip(t, ctx, cfg, "tls-topic", 3)
}

// TestMutualTLSAgainstBroker runs against a broker that requires a client
// certificate: without cert_file and key_file both clients are refused,
// with them both are served.
func TestMutualTLSAgainstBroker(t *testing.T) {
	certFile, keyFile, cert := writeCert(t, t.TempDir())
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	clientCAs := x509.NewCertPool()
	clientCAs.AddCert(cert)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "mtls-topic"), kfake.TLS(&tls.Config{
		Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12,
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCAs,
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := testCtx(t, 30*time.Second)
	cfg := DefaultConfig()
	cfg.Brokers = c.ListenAddrs()
	cfg.TLS = TLSConfig{Enabled: true, CAFile: certFile, ServerName: "localhost"}
	bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := TopicPartitions(bctx, cfg, "mtls-topic"); err == nil {
		t.Error("admin client without a client certificate served")
	}
	if err := kgoPing(t, bctx, cfg); err == nil {
		t.Error("franz-go client without a client certificate served")
	}
	cfg.TLS.CertFile, cfg.TLS.KeyFile = certFile, keyFile
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if parts, err := TopicPartitions(ctx, cfg, "mtls-topic"); err != nil || parts["mtls-topic"] != 1 {
		t.Errorf("admin client with a client certificate: %v, %v", parts, err)
	}
	if err := kgoPing(t, ctx, cfg); err != nil {
		t.Errorf("franz-go client with a client certificate: %v", err)
	}
}

func TestSASLTranslation(t *testing.T) {
	cfg := DefaultConfig()
	if m, err := cfg.SASLMechanism(); m != nil || err != nil {
		t.Fatalf("no SASL: %v, %v", m, err)
	}
	for mech, name := range map[string]string{SASLPlain: "PLAIN", SASLScramSHA256: "SCRAM-SHA-256", SASLScramSHA512: "SCRAM-SHA-512"} {
		cfg.SASL = SASLConfig{Mechanism: mech, Username: "u", Password: "p"}
		m, err := cfg.SASLMechanism()
		if err != nil || m.Name() != name {
			t.Errorf("%s: mechanism %v, %v; want %s", mech, m, err, name)
			continue
		}
		tr, _ := cfg.Transport()
		d, _ := cfg.Dialer()
		if tr.SASL == nil || tr.SASL.Name() != name || d.SASLMechanism == nil || d.SASLMechanism.Name() != name {
			t.Errorf("%s not passed to Transport/Dialer", mech)
		}
	}
	cfg.SASL = SASLConfig{Mechanism: SASLPlain, Username: "user", Password: "pw"}
	m, _ := cfg.SASLMechanism()
	if pm, ok := m.(plain.Mechanism); !ok || pm.Username != "user" || pm.Password != "pw" {
		t.Errorf("plain mechanism = %#v", m)
	}
	cfg.SASL = SASLConfig{Mechanism: "kerberos"}
	if _, err := cfg.SASLMechanism(); err == nil {
		t.Error("unknown mechanism accepted")
	}
}

// TestSASLAgainstBroker authenticates with each mechanism against a
// Kafka-protocol broker that enforces SASL, and fails with a bad password.
func TestSASLAgainstBroker(t *testing.T) {
	for _, mech := range []struct{ ours, kfake string }{
		{SASLPlain, "PLAIN"}, {SASLScramSHA256, "SCRAM-SHA-256"}, {SASLScramSHA512, "SCRAM-SHA-512"},
	} {
		t.Run(mech.ours, func(t *testing.T) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(),
				kfake.Superuser(mech.kfake, "tpflow", "s3cIXret"), kfake.SeedTopics(2, "sasl-topic"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			cfg := DefaultConfig()
			cfg.Brokers = c.ListenAddrs()
			// SCRAM prepares the password with SASLprep: U+2168 (ROMAN
			// NUMERAL NINE) is IX, a soft hyphen is nothing.
			password := config.Secret("s3c\u2168r\u00adet")
			if mech.ours == SASLPlain {
				password = "s3cIXret"
			}
			cfg.SASL = SASLConfig{Mechanism: mech.ours, Username: "tpflow", Password: password}
			ctx := testCtx(t, 20*time.Second)
			parts, err := TopicPartitions(ctx, cfg, "sasl-topic")
			if err != nil || parts["sasl-topic"] != 2 {
				t.Fatalf("authenticated metadata: %v, %v", parts, err)
			}
			roundTrip(t, ctx, cfg, "sasl-topic", 5)

			cfg.SASL.Password = "wrong"
			bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_, err = TopicPartitions(bctx, cfg, "sasl-topic")
			if err == nil {
				t.Fatal("wrong password accepted")
			}
			if !strings.Contains(err.Error(), "check kafka.sasl.username and kafka.sasl.password") || strings.Contains(err.Error(), "wrong") {
				t.Errorf("wrong password: error %q, want one naming the keys and not the password", err)
			}
		})
	}
}

// roundTrip produces n messages with the producer and two in a committed
// transaction to topic, and checks that a consumer of cfg reads them all:
// every client kind over cfg's TLS and SASL.
func roundTrip(t *testing.T, ctx context.Context, cfg Config, topic string, n int) {
	t.Helper()
	if err := newProducer(t, cfg, topic).Produce(ctx, numbered(0, n, n)...); err != nil {
		t.Fatalf("Produce: %v", err)
	}
	tp, err := NewTxnProducer(cfg, topic+"-txn", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	commitTxn(t, ctx, tp, txnMessages(topic, "txn", 2, 1))
	cons, err := NewConsumer(cfg, topic, topic+"-group", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	got := map[string]bool{}
	for len(got) < n+2 {
		m, err := cons.Fetch(ctx)
		if err != nil {
			t.Fatalf("Fetch after %v: %v", got, err)
		}
		got[string(m.Value)] = true
	}
	for _, v := range []string{"v0", fmt.Sprintf("v%d", n-1), "txn0", "txn1"} {
		if !got[v] {
			t.Errorf("consumer read %v, want %s among them", got, v)
		}
	}
}

// kgoPing pings the brokers of cfg with a franz-go client of cfg.
func kgoPing(t *testing.T, ctx context.Context, cfg Config) error {
	t.Helper()
	opts, err := cfg.kgoOptions(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	return cl.Ping(ctx)
}
