package sections

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tpflow/tpflow/alerting/alert"
	"github.com/tpflow/tpflow/alerting/notify"
	"github.com/tpflow/tpflow/internal/config"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/pipeline/sink"
	"github.com/tpflow/tpflow/schemas"
)

func loadFile(t *testing.T, path string) (*Config, error) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return Load(path, data, nil)
}

func TestBadConfigs(t *testing.T) {
	// want lists every line of the error, in order. Messages from
	// aggregator.Config.Validate are included verbatim: a change there shows
	// up here as the user would see it.
	tests := []struct {
		file string
		want []string
	}{
		{"unknown_top", []string{
			`:4:1: unknown key "aggregater" (did you mean "aggregator"?)`,
		}},
		{"unknown_nested", []string{
			`:3:5: kafka.tls: unknown key "enable" (did you mean "enabled"?)`,
			`:5:5: kafka.partitions.trace: unknown topic; known topics are logs, calls, metrics, stats, alerts, dlq, late`,
		}},
		{"wrong_type", []string{
			`:4:9: aggregator.pane: cannot parse "ten" as a duration`,
		}},
		{"wrong_kind", []string{
			`:2:12: kafka.brokers: expected a list, got "127.0.0.1:9092"`,
			`:3:15: kafka.partitions: expected a mapping of keys, got "8"`,
			`:5:14: kafka.tls.enabled: cannot parse "yes" as a boolean (true or false)`,
			`:7:17: aggregator.windows[1]: cannot parse "5" as a duration (add a unit, as in "5s")`,
			`:8:13: aggregator.max_keys: cannot parse "1.5" as an integer`,
			`:9:16: aggregator.compression: cannot parse "lots" as a number`,
		}},
		{"window_shorter", []string{
			`:4:7: aggregator.windows[0]: window 10s is shorter than pane 30s`,
		}},
		{"negative_lateness", []string{
			`:2:3: aggregator.allowed_lateness: must not be negative, got -5s`,
		}},
		{"empty_brokers", []string{
			`:2:3: kafka.brokers: at least one broker address is required`,
		}},
		{"bad_compression", []string{
			`:2:3: kafka.compression: unknown compression "brotli"; use none, gzip, snappy, lz4 or zstd`,
		}},
		{"malformed", []string{
			`:4: malformed YAML: mapping values are not allowed in this context`,
		}},
		{"tab_indent", []string{
			`:2: malformed YAML: found character that cannot start any token`,
		}},
		{"duplicate", []string{
			`:3:3: log: duplicate key "level" (first on line 2)`,
		}},
		{"two_documents", []string{
			`:3:1: only one YAML document is allowed`,
		}},
		{"not_mapping", []string{
			`:1:1: expected a mapping of keys, got a list`,
		}},
		{"several", []string{
			`:5:3: aggregator.grace: must not be negative, got -1s`,
			`:6:17: aggregator.idle_timeout: cannot parse "soon" as a duration`,
			`:8:3: kafka: unknown key "brokerz" (did you mean "brokers"?)`,
			`:9:3: kafka.compression: unknown compression "lzo"; use none, gzip, snappy, lz4 or zstd`,
			`:11:3: log.format: must be text or json, got "xml"`,
			`: aggregator.windows[0]: window 1m0s is shorter than pane 2m0s (default)`,
			`: aggregator.windows[1]: window 5m0s is not a multiple of pane 2m0s (default)`,
			`: aggregator.rollup: the pane 2m0s does not divide the rollup 5m0s; pick a pane that does, or set rollup: 0 (default)`,
		}},
		{"sections", []string{
			`:2:3: aggregate.group_id: must not be empty`,
			`:3:3: aggregate.flush_interval: must be between 10ms and 1h, got 1ms`,
			`:5:13: kafka.brokers[0]: "kafka-1" is not a host:port address`,
			`:6:3: kafka.topic_prefix: "tp flow" is not usable in a topic name`,
			`:8:5: kafka.partitions.calls: partition count 0 out of range 1..10000`,
			`:9:3: kafka.replication_factor: 0 out of range 1..32767`,
			`:10:3: kafka.max_message_bytes: 100 out of range 1 KiB..64 MiB`,
			`:11:3: kafka.write_timeout: must be positive, got 0s`,
			`:15:5: kafka.sasl.mechanism: unknown mechanism "gssapi"; use plain, scram-sha-256 or scram-sha-512`,
			`:17:3: clickhouse.dsn: must use the native protocol (clickhouse://host:9000), got http`,
			`:18:3: clickhouse.database: must match ^[A-Za-z_][A-Za-z0-9_]{0,63}$, got "tp-flow"`,
			`:19:3: clickhouse.batch_rows: must be between 1 and 1000000, got 0`,
			`:20:3: clickhouse.batch_age: must be positive, got 0s`,
			`:22:5: clickhouse.retention_days.logs: must be between 0 and 36500, got -1`,
			`:24:19: sink.topics[1]: must be stats, logs, metrics or alerts, got "calls"`,
			`:24:26: sink.topics[2]: "stats" is listed twice`,
			`:26:3: broker.listen: "localhost" is not a host:port address`,
			`:27:3: broker.advertise: "broker-1" is not a host:port address`,
			`:28:3: broker.retention: must not be negative, got -30s`,
			`:29:3: broker.sync_writes: needs data_dir: an in-memory broker has nothing to sync`,
			`:30:3: broker.max_message_bytes: 10 out of range 1 KiB..256 MiB`,
			`:32:3: http.listen: "127.0.0.1:http" has an invalid port (want 1-65535)`,
			`:34:3: log.level: must be debug, info, warn or error, got "verbose"`,
			// The file sets tls.cert_file, but kafka.Config blames the
			// absent tls.enabled, so the issue has no line.
			`: kafka.tls.enabled: TLS settings are given but TLS is not enabled (default)`,
		}},
		{"dsn_database", []string{
			`:4:3: clickhouse.dsn: names database "observability" in its path, but clickhouse.database is "tpflow"; set the database in clickhouse.database only`,
		}},
		{"alert", []string{
			`:3:29: alert.rules_files[1]: must not be empty`,
			`:4:3: alert.eval_interval: must be between 10ms and 1h, got 0s`,
			`:5:19: alert.alertmanagers[0]: "am-0:9093" is not an http or https URL`,
			`:9:7: alert.webhooks[1].url: "hooks.example.net" is not an http or https URL`,
			`:10:3: alert.resend_interval: must be positive, got -1m0s`,
			`:11:3: alert.group_id: must not be empty`,
		}},
		{"pprof_public", []string{
			`:2:3: http.pprof_listen: "0.0.0.0:6060" is not a loopback address: the profiler is served on 127.0.0.1, ::1 or localhost only`,
		}},
		{"http_auth", []string{
			`:3:5: http.tls.key_file: needs cert_file, the certificate of this key`,
			`:4:5: http.tls.min_version: must be TLS12 or TLS13, got "TLS11"`,
			`:6:5: http.auth.metrics: must be authenticated or open, got "public"`,
			`:9:9: http.auth.users[0].role: must be viewer, operator or admin, got "reader"`,
			`:10:9: http.auth.users[0].password_bcrypt: is not a bcrypt hash: crypto/bcrypt: hashedSecret too short to be a bcrypted password`,
			`:14:9: http.auth.tokens[0].sha256: must be 64 hexadecimal digits (printf %s TOKEN | sha256sum)`,
			`:17:9: http.auth.tokens[1].token_file: cannot read the secret: open testdata/no-such-token: no such file or directory`,
		}},
		{"dsn_path_bad_name", []string{
			`:5:3: clickhouse.database: must match ^[A-Za-z_][A-Za-z0-9_]{0,63}$, got "tp-flow"`,
		}},
	}
	files, _ := filepath.Glob("testdata/*.bad.yaml")
	if len(files) != len(tests) {
		t.Errorf("testdata has %d .bad.yaml files, the table %d cases: every bad file needs its expected errors", len(files), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			path := "testdata/" + tt.file + ".bad.yaml"
			cfg, err := loadFile(t, path)
			if err == nil {
				t.Fatalf("loaded without error: %+v", cfg)
			}
			var ce *config.Error
			if !errors.As(err, &ce) {
				t.Fatalf("error is %T, want *config.Error: %v", err, err)
			}
			want := make([]string, len(tt.want))
			for i, w := range tt.want {
				want[i] = path + w
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, want) {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func TestGoodConfigs(t *testing.T) {
	full := DefaultConfig()
	full.Aggregator.Pane = 5 * time.Second
	full.Aggregator.Windows = []time.Duration{30 * time.Second, time.Minute, 15 * time.Minute}
	full.Aggregator.AllowedLateness = time.Minute
	full.Aggregator.MaxKeys = 200000
	full.Aggregator.Compression = 300
	full.Aggregate.GroupID = "prod-aggregate"
	full.Aggregate.FlushInterval = 500 * time.Millisecond
	full.Kafka.Brokers = []string{"kafka-1.example.net:9093", "kafka-2.example.net:9093"}
	full.Kafka.TopicPrefix = "prod.tpflow."
	full.Kafka.Partitions[kafka.TopicCalls] = 32
	full.Kafka.Partitions[kafka.TopicDLQ] = 2
	full.Kafka.ReplicationFactor = 3
	full.Kafka.Compression = "zstd"
	full.Kafka.MaxMessageBytes = 2 << 20
	full.Kafka.WriteTimeout = 30 * time.Second
	full.Kafka.BatchTimeout = 10 * time.Millisecond
	full.Kafka.TLS = kafka.TLSConfig{Enabled: true, CAFile: "testdata/ca.pem"}
	full.Kafka.SASL = kafka.SASLConfig{Mechanism: "scram-sha-512", Username: "tpflow", Password: "123456"}
	full.ClickHouse.DSN = "clickhouse://tpflow:secret@ch-1.example.net:9000?dial_timeout=5s"
	full.ClickHouse.Database = "observability"
	full.ClickHouse.BatchRows = 20000
	full.ClickHouse.BatchAge = 500 * time.Millisecond
	full.ClickHouse.RetentionDays = clickhouse.Retention{Logs: 14, MetricSamples: 30}
	full.Sink = sink.Config{GroupID: "prod-sink", Topics: []string{"stats", "alerts"}}
	full.Alert = alert.Config{
		RulesFiles: []string{"/etc/tpflow/rules.yaml"}, StateFile: "/var/lib/tpflow/alerts.json",
		EvalInterval: 15 * time.Second, Alertmanagers: []string{"http://am-0:9093", "http://am-1:9093"},
		Webhooks:       []notify.WebhookConfig{{URL: "https://hooks.example.net/tpflow", Secret: "s3cret"}},
		ResendInterval: 2 * time.Minute, GroupID: "prod-alert",
	}
	full.Broker = kafka.BrokerConfig{
		Listen: "0.0.0.0:19092", Advertise: "broker-1.example.net:19092", DataDir: "/var/lib/tpflow/broker",
		Retention: 72 * time.Hour, RetentionBytes: 10 << 30, SyncWrites: true, MaxMessageBytes: 4 << 20, HTTPListen: "0.0.0.0:9190",
	}
	full.HTTP.Listen = ":9100"
	full.Log = LogConfig{Level: "debug", Format: "json"}

	dsnPath := DefaultConfig()
	dsnPath.ClickHouse.DSN = "clickhouse://ch-1.example.net:9000?dial_timeout=5s"
	dsnPath.ClickHouse.Database = "observability"

	tests := map[string]Config{
		"dsn_path":      dsnPath,
		"empty":         DefaultConfig(),
		"comments_only": DefaultConfig(),
		"full":          full,
	}
	files, _ := filepath.Glob("testdata/*.good.yaml")
	if len(files) != len(tests) {
		t.Errorf("testdata has %d .good.yaml files, the table %d cases", len(files), len(tests))
	}
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			cfg, err := loadFile(t, "testdata/"+name+".good.yaml")
			if err != nil {
				t.Fatalf("unexpected error:\n%v", err)
			}
			if !reflect.DeepEqual(*cfg, want) {
				t.Errorf("got  %+v\nwant %+v", *cfg, want)
			}
		})
	}
}

func TestExampleConfigIsValid(t *testing.T) {
	cfg, err := loadFile(t, "../../../tpflow.example.yaml")
	if err != nil {
		t.Fatalf("tpflow.example.yaml:\n%v", err)
	}
	if reflect.DeepEqual(*cfg, DefaultConfig()) {
		t.Error("tpflow.example.yaml sets nothing; it should show keys that differ from the defaults")
	}
}

func TestPrintDefaultsRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteDefaults(&buf, DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load("defaults.yaml", buf.Bytes(), nil)
	if err != nil {
		t.Fatalf("print-defaults output does not load:\n%v\n%s", err, buf.String())
	}
	if !reflect.DeepEqual(*cfg, DefaultConfig()) {
		t.Errorf("print-defaults loads back as\n%+v\nwant\n%+v", *cfg, DefaultConfig())
	}
	// Every key line has a comment line right above it.
	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	keys := 0
	for i, l := range lines {
		s := strings.TrimSpace(l)
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		keys++
		if i == 0 || !strings.HasPrefix(strings.TrimSpace(lines[i-1]), "# ") {
			t.Errorf("line %d %q has no comment above it", i+1, l)
		}
		if !strings.Contains(l, ":") {
			t.Errorf("line %d %q is not a key", i+1, l)
		}
	}
	if keys != len(keyDocs) {
		t.Errorf("print-defaults printed %d keys, keyDocs describes %d: a description is stale", keys, len(keyDocs))
	}
}

func TestPrintDefaultsShowsChangedDefaults(t *testing.T) {
	// The printer reads values from the Config it is given, not from
	// a copy of today's defaults.
	cfg := DefaultConfig()
	cfg.Aggregator.Pane = 5 * time.Second
	cfg.Kafka.Brokers = []string{"a:1", "b:2"}
	cfg.Broker.DataDir = "/data/x y"
	var buf bytes.Buffer
	if err := WriteDefaults(&buf, cfg); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"  pane: 5s\n", "Default: 5s\n",
		"  brokers: [a:1, b:2]\n",
		"  data_dir: /data/x y\n", `Default: "/data/x y"` + "\n",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	got, err := Load("x.yaml", buf.Bytes(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*got, cfg) {
		t.Errorf("loads back as %+v, want %+v", *got, cfg)
	}
}

func TestWriteDefaultsNeedsEveryKeyDocumented(t *testing.T) {
	saved := keyDocs["kafka.sasl.password"]
	delete(keyDocs, "kafka.sasl.password")
	defer func() { keyDocs["kafka.sasl.password"] = saved }()
	err := WriteDefaults(&bytes.Buffer{}, DefaultConfig())
	if err == nil || !strings.Contains(err.Error(), "kafka.sasl.password") {
		t.Errorf("got %v, want an error naming kafka.sasl.password", err)
	}
}

func TestDefaultConfigIsValid(t *testing.T) {
	if err := config.Validate(DefaultConfig()); err != nil {
		t.Fatal(err)
	}
}

func TestValidateFieldErrors(t *testing.T) {
	// Every section reports *schemas.FieldError with its prefix, so the
	// loader can find the line.
	cfg := DefaultConfig()
	cfg.Aggregator.MaxKeys = 0
	cfg.Kafka.Compression = "x"
	cfg.ClickHouse.BatchAge = -1
	cfg.Aggregate.GroupID = ""
	cfg.Sink.Topics = nil
	cfg.Broker.RetentionBytes = -1
	cfg.HTTP.Listen = "x"
	cfg.Log.Format = "x"
	var fields []string
	for _, e := range config.Flatten(config.Validate(cfg)) {
		var fe *schemas.FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%T is not a *schemas.FieldError: %v", e, e)
		}
		fields = append(fields, fe.Field)
	}
	want := []string{"aggregator.max_keys", "aggregate.group_id", "kafka.compression", "clickhouse.batch_age", "sink.topics", "broker.retention_bytes", "http.listen", "log.format"}
	if !reflect.DeepEqual(fields, want) {
		t.Errorf("fields %v, want %v", fields, want)
	}
}

func TestCheckHostPort(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"127.0.0.1:9092", ""},
		{"kafka-1.example.net:9093", ""},
		{":8080", ""},
		{"[::1]:9092", ""},
		{"127.0.0.1", `"127.0.0.1" is not HOST:PORT`},
		{"::1:9092", `"::1:9092" is not HOST:PORT`},
		{"host:0", `"host:0" has an invalid port (want 1-65535)`},
		{"host:65536", `"host:65536" has an invalid port (want 1-65535)`},
		{"host:-1", `"host:-1" has an invalid port (want 1-65535)`},
		{"a b:1", `"a b:1" has an invalid host`},
		{"", `"" is not HOST:PORT`},
	}
	for _, tt := range tests {
		got := ""
		if err := checkHostPort(tt.in); err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("checkHostPort(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestLookupLineFollowsAliases(t *testing.T) {
	data := []byte("common: &w [30s, 4m]\naggregator:\n  pane: 1m\n  windows: *w\n")
	cfg, err := Load("alias.yaml", data, nil)
	if err == nil {
		t.Fatalf("loaded %+v; want the unknown key and the bad window", cfg)
	}
	want := "alias.yaml:1:1: unknown key \"common\"\n" +
		"alias.yaml:1:13: aggregator.windows[0]: window 30s is shorter than pane 1m0s"
	if err.Error() != want {
		t.Errorf("got\n%s\nwant\n%s", err, want)
	}
}

func TestOutOfRangeInteger(t *testing.T) {
	_, err := Load("big.yaml", []byte("kafka:\n  partitions:\n    calls: 99999999999999999999\n"), nil)
	want := `big.yaml:3:12: kafka.partitions.calls: cannot parse "99999999999999999999" as an integer`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestClickHouseFlagDSN(t *testing.T) {
	f := func(dsn, wantDSN, wantDB string, wantSet bool) {
		t.Helper()
		c := clickhouse.DefaultConfig()
		set := WithClickHouseDSN(&c, dsn)
		if c.DSN != wantDSN || c.Database != wantDB || set != wantSet {
			t.Errorf("WithClickHouseDSN(%q) = %q, %q, %v; want %q, %q, %v", dsn, c.DSN, c.Database, set, wantDSN, wantDB, wantSet)
		}
	}
	f("clickhouse://ch:9000/obs", "clickhouse://ch:9000", "obs", true)
	f("clickhouse://u:p@ch:9000/obs?dial_timeout=5s", "clickhouse://u:p@ch:9000?dial_timeout=5s", "obs", true)
	f("clickhouse://ch:9000", "clickhouse://ch:9000", "tpflow", false)
	f("clickhouse://ch:9000/", "clickhouse://ch:9000/", "tpflow", false)
	f("clickhouse://ch:9000/a/b", "clickhouse://ch:9000/a/b", "tpflow", false)

	if got, want := ClickHouseURL(clickhouse.DefaultConfig()), "clickhouse://127.0.0.1:9000/tpflow"; got != want {
		t.Errorf("ClickHouseURL(defaults) = %q, want %q", got, want)
	}
	c := clickhouse.DefaultConfig()
	c.DSN = "clickhouse://u:p@ch:9000?dial_timeout=5s"
	if got, want := ClickHouseURL(c), "clickhouse://u:p@ch:9000/tpflow?dial_timeout=5s"; got != want {
		t.Errorf("ClickHouseURL = %q, want %q", got, want)
	}
}

func TestReadmeListsEverySection(t *testing.T) {
	// The README's configuration section names every top-level section
	// print-defaults prints.
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, conf, ok := strings.Cut(string(readme), "\n## Configuration\n")
	if !ok {
		t.Fatal("README has no Configuration section")
	}
	conf, _, _ = strings.Cut(conf, "\n## ")
	var buf bytes.Buffer
	if err := WriteDefaults(&buf, DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	sections := 0
	for _, l := range strings.Split(buf.String(), "\n") {
		if l == "" || l[0] == ' ' || l[0] == '#' {
			continue
		}
		sections++
		name, _, _ := strings.Cut(l, ":")
		if !strings.Contains(conf, "`"+name+"`") {
			t.Errorf("README's Configuration section does not name the section `%s`", name)
		}
	}
	if sections < 10 {
		t.Errorf("print-defaults printed %d top-level sections, want at least 10", sections)
	}
}

// TestPprofListenLoopbackOnly checks that the profiler's listener takes a
// loopback address and refuses every other one, all interfaces included.
func TestPprofListenLoopbackOnly(t *testing.T) {
	for addr, ok := range map[string]bool{
		"":               true, // no profiler
		"127.0.0.1:6060": true,
		"127.0.0.2:6060": true,
		"[::1]:6060":     true,
		"localhost:6060": true,
		":6060":          false,
		"0.0.0.0:6060":   false,
		"[::]:6060":      false,
		"10.0.0.7:6060":  false,
		"node-7:6060":    false,
		"127.0.0.1":      false,
	} {
		c := DefaultHTTPConfig()
		c.PprofListen = addr
		err := c.Validate()
		if (err == nil) != ok {
			t.Errorf("pprof_listen %q: Validate() = %v, want ok=%v", addr, err, ok)
		}
		if err != nil && !strings.Contains(err.Error(), "pprof_listen") {
			t.Errorf("pprof_listen %q: error %q does not name the key", addr, err)
		}
	}
}
