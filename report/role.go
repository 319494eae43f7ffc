package report

import (
	"context"
	"sync"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tpflow/tpflow/internal/role"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
)

// APIRole is the api role (role.Role): the query API over the ClickHouse
// of its configuration.
type APIRole struct {
	conn  driver.Conn
	api   *API
	close sync.Once
}

// New connects to the ClickHouse of ccfg, within ctx, and returns the api
// role serving Paths over it with the limits of cfg. Unlike the other
// roles it connects at once: its routes need the connection. Close or Run
// closes it.
func New(ctx context.Context, cfg Config, ccfg clickhouse.Config, s role.Settings) (*APIRole, error) {
	conn, err := clickhouse.Open(ctx, ccfg)
	if err != nil {
		return nil, err
	}
	o := cfg.Options()
	o.Now, o.Logger = s.Clock, s.Log().With("part", "api")
	api := NewAPI(conn, ccfg.Database, o)
	return &APIRole{conn: conn, api: api}, nil
}

// Run serves until ctx is done, then closes the connection.
func (r *APIRole) Run(ctx context.Context) error {
	<-ctx.Done()
	r.Close()
	return nil
}

// Close closes the connection; the routes answer errors after it.
func (r *APIRole) Close() { r.close.Do(func() { _ = r.conn.Close() }) }

// Ready is nil while ClickHouse answers a ping.
func (r *APIRole) Ready(ctx context.Context) error { return r.conn.Ping(ctx) }

// Routes are Paths.
func (r *APIRole) Routes() []role.Route {
	h := r.api.Handler()
	routes := make([]role.Route, len(Paths))
	for i, p := range Paths {
		routes[i] = role.Route{Pattern: p, Handler: h}
	}
	return routes
}
