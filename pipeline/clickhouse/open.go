package clickhouse

import (
	"context"
	"fmt"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Open connects to cfg.DSN over the native protocol (the only one that works
// with every supported server: the HTTP mode of clickhouse-go sends a
// setting 18.16 rejects), creates cfg.Database when missing and returns a
// pool whose default database is cfg.Database. It does not migrate; call
// Migrate for that. The caller closes the connection.
func Open(ctx context.Context, cfg Config) (driver.Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot open ClickHouse: invalid config: %w", err)
	}
	opts, err := cfg.options(cfg.Database)
	if err != nil {
		return nil, err
	}
	// The database may not exist yet, and a session bound to a missing
	// database fails its handshake: create it over a pool on "default".
	boot := *opts
	boot.Auth.Database = "default"
	c, err := ch.Open(&boot)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to ClickHouse at %v: %w", opts.Addr, err)
	}
	err = c.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+cfg.Database)
	_ = c.Close()
	if err != nil {
		return nil, fmt.Errorf("cannot create database %s at %v: %w", cfg.Database, opts.Addr, err)
	}
	conn, err := ch.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to ClickHouse at %v: %w", opts.Addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("cannot reach ClickHouse at %v: %w", opts.Addr, err)
	}
	return conn, nil
}
