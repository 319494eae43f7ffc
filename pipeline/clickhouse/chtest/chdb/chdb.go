// Package chdb opens migrated tpflow databases on the test servers of
// chtest, for the tests of packages that read or write ClickHouse. (It is
// apart from chtest because pipeline/clickhouse's own tests use chtest.)
package chdb

import (
	"context"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest"
)

// Open connects to database on the server at dsn, applies the migrations
// and returns the connection, closed when the test ends, and its config
// (retry backoff capped at 500 ms, so a test does not wait long on a
// server it stopped).
func Open(tb testing.TB, dsn, database string) (driver.Conn, clickhouse.Config) {
	tb.Helper()
	cfg := clickhouse.DefaultConfig()
	cfg.DSN = dsn
	cfg.Database = database
	cfg.MaxRetryBackoff = 500 * time.Millisecond
	ctx := context.Background()
	conn, err := clickhouse.Open(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	if _, err := clickhouse.Migrate(ctx, conn, cfg); err != nil {
		tb.Fatal(err)
	}
	return conn, cfg
}

// Shared is Open on a fresh database of the package's shared server
// (chtest.Shared).
func Shared(tb testing.TB) (driver.Conn, clickhouse.Config) {
	tb.Helper()
	s := chtest.Shared(tb)
	return Open(tb, s.DSN(), s.Database())
}

// Config is the default config for s's database, not yet migrated: for a
// test whose code under test opens and migrates it.
func Config(s *chtest.Server) clickhouse.Config {
	cfg := clickhouse.DefaultConfig()
	cfg.DSN = s.DSN()
	cfg.Database = s.Database()
	return cfg
}
