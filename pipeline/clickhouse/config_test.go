package clickhouse

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tpflow/tpflow/internal/config"
	"github.com/tpflow/tpflow/schemas"
)

func TestDefaultConfigIsValid(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.DSN != "clickhouse://127.0.0.1:9000" || c.Database != "tpflow" || c.BatchRows != 5000 ||
		c.BatchAge != 2*time.Second || c.MaxRetryBackoff != 30*time.Second || c.RetentionDays != (Retention{}) {
		t.Fatalf("DefaultConfig() = %+v", c)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		name   string
		mod    func(*Config)
		fields []string // every field that must be reported, in order
	}{
		{"empty dsn", func(c *Config) { c.DSN = "" }, []string{"dsn"}},
		{"http dsn", func(c *Config) { c.DSN = "http://127.0.0.1:8123" }, []string{"dsn"}},
		{"garbage dsn", func(c *Config) { c.DSN = "clickhouse://127.0.0.1:9000?dial_timeout=soon" }, []string{"dsn"}},
		{"empty database", func(c *Config) { c.Database = "" }, []string{"database"}},
		{"database with dash", func(c *Config) { c.Database = "tp-flow" }, []string{"database"}},
		{"database injection", func(c *Config) { c.Database = "x; DROP DATABASE y" }, []string{"database"}},
		{"zero batch", func(c *Config) { c.BatchRows = 0 }, []string{"batch_rows"}},
		{"huge batch", func(c *Config) { c.BatchRows = 2_000_000 }, []string{"batch_rows"}},
		{"zero age", func(c *Config) { c.BatchAge = 0 }, []string{"batch_age"}},
		{"negative age", func(c *Config) { c.BatchAge = -time.Second }, []string{"batch_age"}},
		{"tiny backoff", func(c *Config) { c.MaxRetryBackoff = time.Millisecond }, []string{"max_retry_backoff"}},
		{"negative retention", func(c *Config) { c.RetentionDays.Logs = -1 }, []string{"retention_days.logs"}},
		{"huge retention", func(c *Config) { c.RetentionDays.Alerts = 40000 }, []string{"retention_days.alerts"}},
		{"several", func(c *Config) { c.Database = ""; c.BatchRows = -1; c.RetentionDays.CallPanes = -5 },
			[]string{"database", "batch_rows", "retention_days.call_panes"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			c.mod(&cfg)
			err := cfg.Validate()
			if err == nil {
				t.Fatal("Validate accepted a bad config")
			}
			var got []string
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var fe *schemas.FieldError
				if !errors.As(e, &fe) {
					t.Fatalf("%v is not a *schemas.FieldError", e)
				}
				got = append(got, fe.Field)
			}
			if strings.Join(got, ",") != strings.Join(c.fields, ",") {
				t.Fatalf("fields %v, want %v (%v)", got, c.fields, err)
			}
		})
	}
}

func TestConfigYAML(t *testing.T) {
	good := `
dsn: clickhouse://ch.example:9000?dial_timeout=3s
database: obs
batch_rows: 1000
batch_age: 500ms
max_retry_backoff: 1m
retention_days:
  logs: 7
  call_panes: 400
`
	cfg := DefaultConfig()
	if err := config.Load("ch.yaml", []byte(good), &cfg); err != nil {
		t.Fatal(err)
	}
	want := Config{DSN: "clickhouse://ch.example:9000?dial_timeout=3s", Database: "obs", BatchRows: 1000,
		BatchAge: 500 * time.Millisecond, MaxRetryBackoff: time.Minute, RetentionDays: Retention{Logs: 7, CallPanes: 400}}
	if cfg != want {
		t.Fatalf("decoded %+v, want %+v", cfg, want)
	}

	for _, bad := range []struct{ doc, want string }{
		{"batchrows: 5", `ch.yaml:1:1: unknown key "batchrows" (did you mean "batch_rows"?)`},
		{"retention_days: {log: 3}", `ch.yaml:1:18: retention_days: unknown key "log" (did you mean "logs"?)`},
		{"batch_age: soon", `ch.yaml:1:12: batch_age: cannot parse "soon" as a duration`},
	} {
		cfg := DefaultConfig()
		err := config.Load("ch.yaml", []byte(bad.doc), &cfg)
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("decoding %q: error %v, want it to contain %q", bad.doc, err, bad.want)
		}
	}
}
