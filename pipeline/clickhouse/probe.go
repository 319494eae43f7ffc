package clickhouse

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"time"
)

// Probe reports whether ClickHouse answers at cfg.DSN within a few
// seconds: a TCP dial first, so that a missing server costs no driver
// retries, then a real connection.
func Probe(ctx context.Context, cfg Config) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := Dial(ctx, cfg.DSN); err != nil {
		return err
	}
	conn, err := Open(ctx, cfg)
	if err != nil {
		return err
	}
	return conn.Close()
}

// Dial opens and closes a TCP connection to the DSN's host.
func Dial(ctx context.Context, dsn string) error {
	u, err := url.Parse(dsn)
	if err != nil {
		return fmt.Errorf("cannot parse ClickHouse DSN: %w", err)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return err
	}
	return c.Close()
}
