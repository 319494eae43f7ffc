package chtest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

func TestMain(m *testing.M) { os.Exit(RunMain(m)) }

// openDSN connects to dsn; a DSN that does not parse fails the test.
func openDSN(t *testing.T, dsn string) (driver.Conn, error) {
	t.Helper()
	opts, err := ch.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return ch.Open(opts)
}

func query(t *testing.T, dsn, q string) (uint64, error) {
	t.Helper()
	conn, err := openDSN(t, dsn)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n uint64
	err = conn.QueryRow(ctx, q).Scan(&n)
	return n, err
}

func execSQL(t *testing.T, dsn, q string) {
	t.Helper()
	conn, err := openDSN(t, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Exec(context.Background(), q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func TestStartStopRestartKeepsData(t *testing.T) {
	t0 := time.Now()
	s := Start(t)
	t.Logf("server up in %s at %s", time.Since(t0).Round(time.Millisecond), s.Addr())
	if !strings.HasPrefix(s.DSN(), "clickhouse://127.0.0.1:") {
		t.Fatalf("DSN %q is not a loopback native URL", s.DSN())
	}
	execSQL(t, s.DSN(), "CREATE TABLE keep (x UInt64) ENGINE = MergeTree ORDER BY x")
	execSQL(t, s.DSN(), "INSERT INTO keep SELECT number FROM system.numbers LIMIT 1000")

	s.Stop()
	if s.Running() {
		t.Fatal("server still running after Stop")
	}
	if _, err := query(t, s.DSN(), "SELECT count() FROM keep"); err == nil {
		t.Fatal("query succeeded against a stopped server")
	}
	s.Stop() // idempotent

	t0 = time.Now()
	s.Start()
	t.Logf("restarted in %s", time.Since(t0).Round(time.Millisecond))
	n, err := query(t, s.DSN(), "SELECT count() FROM keep")
	if err != nil || n != 1000 {
		t.Fatalf("after restart: count = %d, %v; want 1000", n, err)
	}
	s.Restart()
	n, err = query(t, s.DSN(), "SELECT sum(x) FROM keep")
	if err != nil || n != 999*1000/2 {
		t.Fatalf("after Restart: sum = %d, %v; want %d", n, err, 999*1000/2)
	}
}

func TestSharedGivesEachTestItsOwnDatabase(t *testing.T) {
	var dbs []string
	for i := range 2 {
		t.Run("sub", func(t *testing.T) {
			s := Shared(t)
			dbs = append(dbs, s.Database())
			execSQL(t, s.DSN(), "CREATE TABLE mine (x UInt8) ENGINE = Memory")
			execSQL(t, s.DSN(), "INSERT INTO mine SELECT 1")
			n, err := query(t, s.DSN(), "SELECT count() FROM system.tables WHERE database = currentDatabase()")
			if err != nil || n != 1 {
				t.Fatalf("run %d: %d tables in %s, %v; want 1", i, n, s.Database(), err)
			}
		})
	}
	if len(dbs) != 2 || dbs[0] == dbs[1] {
		t.Fatalf("databases %v are not distinct", dbs)
	}
	s := Shared(t)
	n, err := query(t, s.DSN(), "SELECT count() FROM system.databases WHERE name IN ('"+dbs[0]+"', '"+dbs[1]+"')")
	if err != nil || n != 0 {
		t.Fatalf("%d databases of finished tests left, %v; want 0", n, err)
	}
}

func TestStartFailureShowsLog(t *testing.T) {
	requireBin(t)
	dir := t.TempDir()
	s := &Server{dir: dir}
	var err error
	if s.tcp, err = freePort(); err != nil {
		t.Fatal(err)
	}
	s.web = s.tcp // both listeners on one port: the server must fail to start
	if err := s.writeConfig(); err != nil {
		t.Fatal(err)
	}
	err = s.start(Bin())
	if err == nil {
		_ = s.kill()
		t.Fatal("a server with a port clash started")
	}
	if !strings.Contains(err.Error(), "log tail") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("error does not show the directory and log tail: %v", err)
	}
	if s.Running() {
		t.Fatal("failed server still running")
	}
}
