package clickhouse

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest"
)

func testReadOnlyUser() ReadOnlyUser {
	return ReadOnlyUser{
		Name: "grafana", Password: "reader-pa55word", Database: "tpflow",
		Limits: Limits{MaxExecutionTime: time.Second, MaxMemoryUsage: 64 << 20},
	}
}

// TestReadOnlyUserOnOldServer writes the users.d file for the server this
// machine has (18.16, no SQL access control) and checks what the user may
// do: SELECT from the tpflow database, nothing else, and no query beyond
// the profile's limits.
func TestReadOnlyUserOnOldServer(t *testing.T) {
	t.Parallel()
	s := chtest.Start(t)
	ctx := context.Background()
	cfg := DefaultConfig()
	cfg.DSN = s.DSN()
	admin, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := Migrate(ctx, admin, cfg); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"INSERT INTO tpflow.logs (ts, level, message) SELECT now(), 'info', 'hello'",
		"CREATE TABLE default.other (x UInt8) ENGINE = Memory",
	} {
		if err := admin.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}

	u := testReadOnlyUser()
	if err := CreateReadOnlyUser(ctx, admin, u); !errors.Is(err, ErrNoSQLAccessControl) {
		t.Fatalf("CreateReadOnlyUser on %s: %v, want ErrNoSQLAccessControl", chtest.Scalar[string](t, admin, "SELECT version()"), err)
	}
	file, err := u.UsersXML()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(file), u.Password) {
		t.Fatal("users.d file holds the password")
	}
	s.AddUsers("tpflow-readonly.xml", file, u.Name, u.Password)
	reader, err := ch.Open(&ch.Options{Addr: []string{s.Addr()}, Auth: ch.Auth{Database: "tpflow", Username: u.Name, Password: u.Password}})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()

	var n uint64
	if err := reader.QueryRow(ctx, "SELECT count() FROM tpflow.logs").Scan(&n); err != nil || n != 1 {
		t.Fatalf("read-only user SELECT: %d rows, %v", n, err)
	}
	for _, q := range []string{
		"INSERT INTO tpflow.logs (ts, level, message) SELECT now(), 'info', 'x'",
		"DROP TABLE tpflow.logs",
		"ALTER TABLE tpflow.logs DELETE WHERE 1",
		"CREATE TABLE tpflow.mine (x UInt8) ENGINE = Memory",
		"SELECT count() FROM default.other",
		"SET readonly = 0",
	} {
		if err := reader.Exec(ctx, q); err == nil {
			t.Errorf("read-only user ran %q", q)
		}
	}
	// readonly=0 as a query setting does not open writes either.
	wctx := ch.Context(ctx, ch.WithSettings(ch.Settings{"readonly": 0}))
	if err := reader.Exec(wctx, "INSERT INTO tpflow.logs (ts, level, message) SELECT now(), 'info', 'x'"); err == nil {
		t.Error("read-only user inserted with readonly=0 as a query setting")
	}
	if got := chtest.Scalar[uint64](t, admin, "SELECT count() FROM tpflow.logs"); got != 1 {
		t.Errorf("tpflow.logs has %d rows after the read-only user's attempts, want 1", got)
	}

	// The profile's limits stop a query that crosses them.
	t0 := time.Now()
	err = reader.QueryRow(ctx, "SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) = 0").Scan(&n)
	if which, ok := OverLimit(err); !ok || which != "max_execution_time" {
		t.Errorf("endless query as the read-only user: %v after %s, want it stopped at max_execution_time", err, time.Since(t0))
	} else if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("endless query stopped after %s, limit 1s", d)
	}
	err = reader.QueryRow(ctx, "SELECT length(groupArray(number)) FROM numbers(100000000)").Scan(&n)
	if which, ok := OverLimit(err); !ok || which != "max_memory_usage" {
		t.Errorf("query over 64 MiB as the read-only user: %v, want it stopped at max_memory_usage", err)
	}
}

// TestReadOnlyUserSQL checks the statements for servers with SQL access
// control: constraints that pin the limits, the hash and not the password,
// SELECT on the database only.
func TestReadOnlyUserSQL(t *testing.T) {
	u := testReadOnlyUser()
	u.Networks = []string{"10.0.0.0/8"}
	stmts, err := u.SQL()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"CREATE SETTINGS PROFILE OR REPLACE tpflow_readonly SETTINGS readonly = 2, max_execution_time = 1 MAX 1, max_memory_usage = 67108864 MAX 67108864",
		"CREATE USER OR REPLACE grafana IDENTIFIED WITH sha256_hash BY '" + u.passwordHash() + "' HOST IP '10.0.0.0/8' SETTINGS PROFILE 'tpflow_readonly'",
		"GRANT SELECT ON tpflow.* TO grafana",
	}
	if strings.Join(stmts, "\n") != strings.Join(want, "\n") {
		t.Errorf("SQL:\n%s\nwant:\n%s", strings.Join(stmts, "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(strings.Join(stmts, ""), u.Password) {
		t.Error("SQL holds the password")
	}
	for name, edit := range map[string]func(*ReadOnlyUser){
		"quote in name":     func(u *ReadOnlyUser) { u.Name = "a'b" },
		"default user":      func(u *ReadOnlyUser) { u.Name = "default" },
		"bad database":      func(u *ReadOnlyUser) { u.Database = "tp flow" },
		"short password":    func(u *ReadOnlyUser) { u.Password = "short" },
		"no time limit":     func(u *ReadOnlyUser) { u.Limits.MaxExecutionTime = 0 },
		"no memory limit":   func(u *ReadOnlyUser) { u.Limits.MaxMemoryUsage = 0 },
		"network injection": func(u *ReadOnlyUser) { u.Networks = []string{"1.2.3.4' OR '1"} },
	} {
		bad := testReadOnlyUser()
		edit(&bad)
		if _, err := bad.SQL(); err == nil {
			t.Errorf("%s: SQL accepted %+v", name, bad)
		}
		if _, err := bad.UsersXML(); err == nil {
			t.Errorf("%s: UsersXML accepted %+v", name, bad)
		}
	}
	for v, want := range map[string]bool{"18.16.1": false, "20.4.2": false, "20.5.1": true, "24.8.4.13": true} {
		pv, _ := ParseServerVersion(v)
		if pv.SQLAccessControl() != want {
			t.Errorf("SQLAccessControl(%s) = %v", v, !want)
		}
	}
}
