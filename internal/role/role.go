// Package role is the contract every tpflow role implements: collect,
// aggregate, sink (with the late merger), alert, api and broker. A role is
// built by its package's New from its Config, the configurations of what it
// connects to (Kafka, ClickHouse, the aggregator section), in that order,
// and the shared Settings; internal/cli serves any Role on the one HTTP
// server (/metrics, /healthz, /readyz and the role's Routes) and `tpflow
// run` composes the same values.
package role

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
)

// Settings are what every role is handed besides its configuration.
type Settings struct {
	// Logger receives the role's logs; nil discards them.
	Logger *slog.Logger
	// Registerer receives the role's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Clock is the role's idea of now; nil is time.Now.
	Clock func() time.Time
}

// Log returns the logger, a discarding one when none is set.
func (s Settings) Log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// Now returns the clock, time.Now when none is set.
func (s Settings) Now() func() time.Time {
	if s.Clock == nil {
		return time.Now
	}
	return s.Clock
}

// With returns the settings with the logger's attributes extended by args
// (for a part of a composed process: "part", "sink").
func (s Settings) With(args ...any) Settings {
	s.Logger = s.Log().With(args...)
	return s
}

// Route is one path a role serves next to /metrics, /healthz and /readyz.
type Route struct {
	// Pattern is an http.ServeMux pattern.
	Pattern string
	Handler http.Handler
}

// Role is one tpflow role.
type Role interface {
	// Run does the role's work until ctx is done. A role never stops by
	// itself: returning before ctx is done means it failed.
	Run(ctx context.Context) error
	// Ready reports why the role cannot work yet: nil only once it has
	// reached its dependencies (Kafka, and ClickHouse where it reads or
	// writes).
	Ready(ctx context.Context) error
	// Routes are the role's own HTTP paths; most roles have none.
	Routes() []Route
}

// Reconfigurer is implemented by a role that can take a new configuration
// while it runs, for the control plane: cfg is the role's Config type,
// already validated; Reconfigure returns an error, leaving the running
// configuration in place, when the role cannot apply it live (then the
// role has to be restarted with it).
type Reconfigurer interface {
	Reconfigure(cfg any) error
}

// Group returns the roles as one role, skipping nil ones: Run runs every
// one until ctx is done or one fails, Ready is ready when every one is,
// and Routes are all their routes.
func Group(roles ...Role) Role {
	g := group{}
	for _, r := range roles {
		if r != nil {
			g = append(g, r)
		}
	}
	return g
}

type group []Role

func (g group) Run(ctx context.Context) error {
	eg, ctx := errgroup.WithContext(ctx)
	for _, r := range g {
		eg.Go(func() error { return r.Run(ctx) })
	}
	return eg.Wait()
}

func (g group) Ready(ctx context.Context) error {
	var errs []error
	for _, r := range g {
		errs = append(errs, r.Ready(ctx))
	}
	return errors.Join(errs...)
}

func (g group) Routes() []Route {
	var rs []Route
	for _, r := range g {
		rs = append(rs, r.Routes()...)
	}
	return rs
}
