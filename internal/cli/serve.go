package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/tpflow/tpflow/internal/config/sections"
	"github.com/tpflow/tpflow/internal/role"
	"github.com/tpflow/tpflow/pipeline"
	"github.com/tpflow/tpflow/pipeline/httpserver"
)

// ServeOptions say how ServeRole serves a role.
type ServeOptions struct {
	// Name names the role in the error when it stops by itself.
	Name string
	// Check names the role's readiness in /readyz.
	Check string
	// Pprof is the loopback HOST:PORT (http.pprof_listen) the Go profiler
	// is served on, beside the role's server; empty serves none.
	Pprof string
	// Wait holds the role's work back until it is ready once, for roles
	// that would fail to start without their dependencies.
	Wait bool
	// HTTP gives the listener's TLS and authentication (http.tls,
	// http.auth); its addresses are not used.
	HTTP sections.HTTPConfig
}

// ListenHTTP listens on addr, with a hint at the flag that changes it.
func ListenHTTP(addr string) (net.Listener, error) {
	l, err := httpserver.Listen(addr)
	if err != nil {
		return nil, fmt.Errorf("%w (choose another address with --listen)", err)
	}
	return l, nil
}

// SecureHTTP returns l serving c's TLS and the authentication of c,
// counting its failures in reg. It warns when a listener that is not on
// loopback serves without authentication, or with it but without TLS.
func SecureHTTP(env *Env, l net.Listener, c sections.HTTPConfig, reg prometheus.Registerer) (net.Listener, *httpserver.Auth, error) {
	auth, err := httpserver.NewAuth(c.Auth, reg, nil)
	if err != nil {
		return nil, nil, err
	}
	tl, err := httpserver.TLSListener(l, c.TLS)
	if err != nil {
		return nil, nil, err
	}
	if a, ok := l.Addr().(*net.TCPAddr); ok && !a.IP.IsLoopback() {
		switch {
		case !auth.Enabled():
			env.Logger.Warn("serving HTTP without authentication on a non-loopback address; set http.auth (see SECURITY.md)", "addr", l.Addr().String())
		case !c.TLS.Enabled():
			env.Logger.Warn("serving HTTP with authentication but without TLS on a non-loopback address: tokens and passwords cross the network in clear text; set http.tls (see SECURITY.md)", "addr", l.Addr().String())
		}
	}
	return tl, auth, nil
}

// RoleSettings are the settings of a role of this process: its logger and
// the registry it serves.
func RoleSettings(env *Env, reg prometheus.Registerer) role.Settings {
	return role.Settings{Logger: env.Logger, Registerer: reg}
}

// HTTPRoutes are the routes of a role for the HTTP server.
func HTTPRoutes(rs []role.Route) []httpserver.Route {
	out := make([]httpserver.Route, len(rs))
	for i, r := range rs {
		out[i] = httpserver.Route(r)
	}
	return out
}

// ServeRole runs r next to its HTTP server on addr (/metrics of reg,
// /healthz, /readyz of r.Ready and r's routes) until ctx is done. The
// address is taken before r starts, so that a taken port fails first. r
// returning before ctx is done is an error: a role never stops by itself.
func ServeRole(ctx context.Context, env *Env, addr string, reg *prometheus.Registry, r role.Role, o ServeOptions) error {
	l, err := ListenHTTP(addr)
	if err != nil {
		return err
	}
	defer l.Close()
	l, auth, err := SecureHTTP(env, l, o.HTTP, reg)
	if err != nil {
		return err
	}
	env.Logger.Info("serving HTTP", "addr", l.Addr().String(), "tls", o.HTTP.TLS.Enabled(), "auth", auth.Enabled())
	h := httpserver.Handler(httpserver.Options{
		Gatherer: reg,
		Checks:   map[string]httpserver.Check{o.Check: r.Ready},
		Routes:   HTTPRoutes(r.Routes()),
		Auth:     auth,
	})
	grp, gctx := errgroup.WithContext(ctx)
	if err := ServeProfiler(gctx, grp, env, o.Pprof); err != nil {
		return err
	}
	grp.Go(func() error { return httpserver.ServeLogged(gctx, l, h, env.Logger) })
	grp.Go(func() error {
		if o.Wait {
			if err := waitReady(gctx, env, o.Check, r.Ready); err != nil {
				return err
			}
		}
		err := r.Run(gctx)
		if err == nil && gctx.Err() == nil {
			err = errors.New(o.Name + " stopped")
		}
		return err
	})
	err = grp.Wait()
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		return nil
	}
	return err
}

// ServeProfiler listens on addr and serves the Go profiler there in grp
// until ctx is done; an empty addr serves nothing. The configuration has
// checked that addr is a loopback address.
func ServeProfiler(ctx context.Context, grp *errgroup.Group, env *Env, addr string) error {
	if addr == "" {
		return nil
	}
	l, err := httpserver.Listen(addr)
	if err != nil {
		return fmt.Errorf("profiler: %w (choose another address with http.pprof_listen)", err)
	}
	env.Logger.Info("serving the profiler", "addr", l.Addr().String())
	grp.Go(func() error {
		defer l.Close()
		return httpserver.Serve(ctx, l, httpserver.ProfilerHandler())
	})
	return nil
}

// waitReady returns once ready passes, polling with a backoff of up to
// 5 s and logging each new reason (prefixed with name), or ctx's error
// when it is done first.
func waitReady(ctx context.Context, env *Env, name string, ready httpserver.Check) error {
	b, last := pipeline.Backoff{Min: 200 * time.Millisecond, Max: 5 * time.Second}, ""
	for {
		err := ready(ctx)
		if err == nil {
			if last != "" {
				env.Logger.Info("dependencies reached")
			}
			return nil
		}
		if reason := name + ": " + err.Error(); reason != last {
			env.Logger.Warn("waiting for dependencies", "reason", reason)
			last = reason
		}
		if err := b.Wait(ctx, b.Next()); err != nil {
			return err
		}
	}
}

// NewRoleRegistry returns a registry with the Go and process collectors.
func NewRoleRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}
