package clickhouse

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
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

// TestFailedConnectionShowsNoPassword fails to reach ClickHouse in each
// way a role can (an unparsable DSN, a server that hangs up, none
// listening), with the password in the DSN and in clickhouse.password, and
// checks that neither the errors nor a log line of them and the config
// hold it.
func TestFailedConnectionShowsNoPassword(t *testing.T) {
	const pw = "ch-pw-9931"
	hangUp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hangUp.Close()
	go func() {
		for {
			c, err := hangUp.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()

	var logged bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logged, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range []Config{
		{DSN: "clickhouse://writer:" + pw + "@127.0.0.1:90x0"},
		{DSN: "clickhouse://writer:" + pw + "@" + hangUp.Addr().String() + "?dial_timeout=1s"},
		{DSN: "clickhouse://writer@" + hangUp.Addr().String() + "?dial_timeout=1s", Password: pw},
		{DSN: "clickhouse://writer@" + closedAddr + "?dial_timeout=1s", Password: pw},
	} {
		d := DefaultConfig()
		d.DSN, d.Password = c.DSN, c.Password
		errs := []error{d.Validate(), Ready(ctx, d)}
		if _, err := Open(ctx, d); err != nil {
			errs = append(errs, err)
		}
		failed := false
		for _, err := range errs {
			if err == nil {
				continue
			}
			failed = true
			log.Warn("cannot reach ClickHouse", "err", err, "config", d)
			if strings.Contains(err.Error(), pw) {
				t.Errorf("error for %s shows the password: %v", config.RedactURL(d.DSN), err)
			}
		}
		if !failed {
			t.Errorf("%s: no error, want a failed connection", config.RedactURL(d.DSN))
		}
	}
	if strings.Contains(logged.String(), pw) || !strings.Contains(logged.String(), "cannot reach ClickHouse") {
		t.Errorf("log shows the password or is empty:\n%s", logged.String())
	}
}

// TestPasswordInOnePlace checks that clickhouse.password is refused beside
// a DSN that holds a password, and that it reaches the driver's options.
func TestPasswordInOnePlace(t *testing.T) {
	c := DefaultConfig()
	c.DSN, c.Password = "clickhouse://u:a@ch:9000", "b"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "password: the DSN holds a password too") || strings.Contains(err.Error(), ":a@") {
		t.Errorf("Validate() = %v, want the password key refused without the DSN's password", err)
	}
	c.DSN = "clickhouse://u@ch:9000"
	opts, err := c.options("db")
	if err != nil || opts.Auth.Username != "u" || opts.Auth.Password != "b" || opts.Auth.Database != "db" {
		t.Errorf("options = %+v, %v; want user u, password b, database db", opts, err)
	}
}
