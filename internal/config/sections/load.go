package sections

import (
	"github.com/tpflow/tpflow/internal/config"
)

// Load decodes data (the contents of the file called name) onto the
// defaults, lets override change the result (the command-line overrides,
// each recorded with src.SetBy), and validates it. On failure the error is
// a *config.Error listing every problem. An empty name with nil data means
// no file: the defaults.
func Load(name string, data []byte, override func(cfg *Config, src *config.Source)) (*Config, error) {
	cfg := DefaultConfig()
	src, err := config.Decode(name, data, &cfg)
	if err != nil {
		return nil, err
	}
	databaseFromDSN(&cfg, src)
	if override != nil {
		override(&cfg, src)
	}
	if err := src.Check(&cfg); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// databaseFromDSN keeps the older form of the clickhouse section working:
// a file that gives the database only as the path of clickhouse.dsn
// (clickhouse://HOST:PORT/DB) has it moved to clickhouse.database, which is
// where clickhouse.Config reads it.
func databaseFromDSN(cfg *Config, src *config.Source) {
	if src.Has("clickhouse.database") || !src.Has("clickhouse.dsn") {
		return
	}
	if WithClickHouseDSN(&cfg.ClickHouse, cfg.ClickHouse.DSN) {
		src.TakenFrom("clickhouse.database", "clickhouse.dsn")
	}
}
