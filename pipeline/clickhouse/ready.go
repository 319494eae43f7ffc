package clickhouse

import (
	"context"
	"fmt"

	ch "github.com/ClickHouse/clickhouse-go/v2"
)

// Ready reports whether the server of cfg answers a ping: nil once it did,
// else the reason. Like Open, it talks to the database "default", since
// cfg.Database may not exist before a role's start-up created it. It opens
// and closes one connection. Roles use it as their ClickHouse readiness
// check.
func Ready(ctx context.Context, cfg Config) error {
	opts, err := cfg.options("default")
	if err != nil {
		return err
	}
	conn, err := ch.Open(opts)
	if err != nil {
		return fmt.Errorf("cannot connect to ClickHouse at %v: %w", opts.Addr, err)
	}
	defer conn.Close()
	if err := conn.Ping(ctx); err != nil {
		return fmt.Errorf("cannot reach ClickHouse at %v: %w", opts.Addr, err)
	}
	return nil
}
