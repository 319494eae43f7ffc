package clickhouse

import (
	"context"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tpflow/tpflow/pipeline"
)

// OpenMigrated opens ClickHouse and applies the migrations, retrying with
// backoff (from 100 ms up to ccfg.MaxRetryBackoff) while the server is
// unreachable, so that a role may start before its database. Each retry is
// logged at WARN. It returns ctx's error when ctx ends first.
func OpenMigrated(ctx context.Context, ccfg Config, log *slog.Logger) (driver.Conn, error) {
	var c driver.Conn
	b := pipeline.Backoff{Min: 100 * time.Millisecond, Max: ccfg.MaxRetryBackoff}
	_, err := pipeline.Retry(ctx, &b, 0, func() error {
		var err error
		if c, err = Open(ctx, ccfg); err != nil {
			return err
		}
		if _, err = Migrate(ctx, c, ccfg); err != nil {
			c.Close()
		}
		return err
	}, func(_ int, pause time.Duration, err error) {
		log.Warn("cannot open ClickHouse, retrying", "err", err, "backoff", pause)
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}
