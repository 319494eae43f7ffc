package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/tpflow/tpflow/pipeline/httpserver"
)

// roleHTTP is what a role serves on its HTTP server besides /metrics and
// /healthz.
type roleHTTP struct {
	// checks are the role's readiness: /readyz answers 200 only when every
	// one passes.
	checks map[string]httpserver.Check
	// routes are the role's own paths.
	routes []httpserver.Route
	// pprof is the loopback HOST:PORT (http.pprof_listen) the Go profiler
	// is served on, beside the role's server; empty serves none.
	pprof string
	// wait holds the role's work back until every check passes once, for
	// roles that would fail to start without their dependencies.
	wait bool
}

// handler returns the role's HTTP handler, serving the metrics of g.
func (h roleHTTP) handler(g prometheus.Gatherer) http.Handler {
	return httpserver.Handler(httpserver.Options{Gatherer: g, Checks: h.checks, Routes: h.routes})
}

// listenHTTP listens on addr, with a hint at the flag that changes it.
func listenHTTP(addr string) (net.Listener, error) {
	l, err := httpserver.Listen(addr)
	if err != nil {
		return nil, fmt.Errorf("%w (choose another address with --listen)", err)
	}
	return l, nil
}

// serveRole runs part, one role's work, next to the role's HTTP server on
// addr until ctx is done. The address is taken before part starts, so that
// a taken port fails first. part returning before ctx is done is an error:
// a role never stops by itself.
func serveRole(ctx context.Context, env *Env, addr string, g prometheus.Gatherer, name string, part func(context.Context) error, h roleHTTP) error {
	l, err := listenHTTP(addr)
	if err != nil {
		return err
	}
	defer l.Close()
	env.Logger.Info("serving HTTP", "addr", l.Addr().String())
	grp, gctx := errgroup.WithContext(ctx)
	if err := serveProfiler(gctx, grp, env, h.pprof); err != nil {
		return err
	}
	grp.Go(func() error { return httpserver.Serve(gctx, l, h.handler(g)) })
	grp.Go(func() error {
		if h.wait {
			if err := waitReady(gctx, env, h.checks); err != nil {
				return err
			}
		}
		err := part(gctx)
		if err == nil && gctx.Err() == nil {
			err = errors.New(name + " stopped")
		}
		return err
	})
	err = grp.Wait()
	if ctx.Err() != nil && (err == nil || errors.Is(err, context.Canceled)) {
		return nil
	}
	return err
}

// serveProfiler listens on addr and serves the Go profiler there in grp
// until ctx is done; an empty addr serves nothing. The configuration has
// checked that addr is a loopback address.
func serveProfiler(ctx context.Context, grp *errgroup.Group, env *Env, addr string) error {
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

// waitReady returns once every check passes, polling with a backoff of
// up to 5 s and logging each new reason, or ctx's error when it is done
// first.
func waitReady(ctx context.Context, env *Env, checks map[string]httpserver.Check) error {
	delay, last := 200*time.Millisecond, ""
	for {
		var errs []error
		for name, c := range checks {
			if err := c(ctx); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
		if len(errs) == 0 {
			if last != "" {
				env.Logger.Info("dependencies reached")
			}
			return nil
		}
		if reason := errors.Join(errs...).Error(); reason != last {
			env.Logger.Warn("waiting for dependencies", "reason", reason)
			last = reason
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// newRoleRegistry returns a registry with the Go and process collectors.
func newRoleRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// untilDone is the work of a role that only serves HTTP: it waits for ctx.
func untilDone(ctx context.Context) error {
	<-ctx.Done()
	return nil
}
