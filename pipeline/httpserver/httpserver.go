// Package httpserver is the one HTTP server every tpflow role serves, and
// tpflow run with them: Prometheus metrics on /metrics, liveness on
// /healthz (the process answers), readiness on /readyz (the role has
// reached its dependencies) and the role's own routes. The Go profiler
// under /debug/pprof/ is never on that server: ProfilerHandler serves it
// on a listener of its own, which the configuration keeps on loopback. It
// is transport only: the routes are handed in, and the package imports no
// domain package.
//
// The server's TLS (TLSConfig, TLSListener) and authentication
// (AuthConfig, Auth) are configured as in the Prometheus web
// configuration file, plus bearer tokens with a Role: /healthz is always
// open, /metrics and /readyz open or not by configuration, reads need
// RoleViewer and every other method RoleOperator. Handlers of other
// packages refine it with RequireRole and learn the caller with
// PrincipalFrom.
//
// Every server has the same timeouts (ReadHeaderTimeout, ReadTimeout,
// WriteTimeout, IdleTimeout) and the same graceful shutdown: when the
// context is done, open requests get ShutdownTimeout to finish.
package httpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The timeouts of every tpflow HTTP server.
const (
	// ReadHeaderTimeout bounds reading a request's headers.
	ReadHeaderTimeout = 10 * time.Second
	// ReadTimeout bounds reading a whole request, body included.
	ReadTimeout = 30 * time.Second
	// WriteTimeout bounds writing a response from the end of the request
	// headers; it leaves room for a 30 s CPU profile (the profiler's
	// default) and for slow queries of the query API.
	WriteTimeout = 90 * time.Second
	// IdleTimeout bounds how long a keep-alive connection waits for the
	// next request.
	IdleTimeout = 2 * time.Minute
	// ShutdownTimeout is how long open requests may run on after the
	// server was told to stop.
	ShutdownTimeout = 5 * time.Second
	// CheckTimeout bounds all readiness checks of one /readyz together
	// when Options.CheckTimeout is 0.
	CheckTimeout = 2 * time.Second
)

// Check is one readiness check: nil when the part it checks has reached
// its dependencies, else the reason it has not.
type Check func(ctx context.Context) error

// Route is one of a role's own routes.
type Route struct {
	// Pattern is a http.ServeMux pattern, such as "GET /api/v1/windows".
	Pattern string
	Handler http.Handler
}

// Options configures Handler. Every field is optional.
type Options struct {
	// Gatherer serves /metrics; nil serves prometheus.DefaultGatherer.
	Gatherer prometheus.Gatherer
	// Checks are run by /readyz, by name; all must pass.
	Checks map[string]Check
	// CheckTimeout bounds all readiness checks together; 0 means
	// CheckTimeout.
	CheckTimeout time.Duration
	// Routes are the role's own paths, served next to the common ones.
	Routes []Route
	// Auth, when not nil, authenticates every request but /healthz
	// (Auth.Wrap).
	Auth *Auth
}

// Handler returns the handler of /metrics, /healthz, /readyz and o.Routes.
func Handler(o Options) http.Handler {
	if o.Gatherer == nil {
		o.Gatherer = prometheus.DefaultGatherer
	}
	if o.CheckTimeout <= 0 {
		o.CheckTimeout = CheckTimeout
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { ready(w, r, o) })
	for _, rt := range o.Routes {
		mux.Handle(rt.Pattern, rt.Handler)
	}
	if o.Auth != nil {
		return o.Auth.Wrap(mux)
	}
	return mux
}

// Bounded serves h at most n requests at a time and answers the others at
// once, with Retry-After: 1 and refuse (nil: 503 and a line of text), so
// that a burst of expensive requests cannot take every core or
// connection.
func Bounded(n int, h http.Handler, refuse http.HandlerFunc) http.Handler {
	if refuse == nil {
		refuse = func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, fmt.Sprintf("%s is serving its limit of %d requests; retry later", r.URL.Path, n), http.StatusServiceUnavailable)
		}
	}
	slots := make(chan struct{}, max(n, 1))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case slots <- struct{}{}:
			defer func() { <-slots }()
			h.ServeHTTP(w, r)
		default:
			w.Header().Set("Retry-After", "1")
			refuse(w, r)
		}
	})
}

// ProfilerHandler serves the Go profiler under /debug/pprof/ and nothing
// else. Its /debug/pprof/cmdline shows the process's arguments, so it is
// served only on a loopback listener of its own, never beside Handler.
func ProfilerHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return mux
}

func ready(w http.ResponseWriter, r *http.Request, o Options) {
	ctx, cancel := context.WithTimeout(r.Context(), o.CheckTimeout)
	defer cancel()
	names := make([]string, 0, len(o.Checks))
	for n := range o.Checks {
		names = append(names, n)
	}
	slices.Sort(names)
	var failed []string
	for _, n := range names {
		if err := o.Checks[n](ctx); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", n, err))
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if len(failed) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready\n%s\n", strings.Join(failed, "\n"))
		return
	}
	fmt.Fprintln(w, "ready")
}

// Listen listens on the TCP address addr (HOST:PORT; port 0 picks one).
func Listen(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen for HTTP: %w", err)
	}
	return l, nil
}

// NewServer returns the http.Server of h with tpflow's timeouts.
func NewServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
	}
}

// Serve serves h on l until ctx is done, then shuts down, giving open
// requests up to ShutdownTimeout. It returns nil after a shutdown caused by
// ctx, and an error when serving fails before.
func Serve(ctx context.Context, l net.Listener, h http.Handler) error {
	return ServeLogged(ctx, l, h, nil)
}

// ServeLogged is Serve with the server's own errors (a refused TLS
// handshake, a panic in a handler) logged to log at warning level; nil
// leaves them to the standard logger.
func ServeLogged(ctx context.Context, l net.Listener, h http.Handler, log *slog.Logger) error {
	srv := NewServer(h)
	if log != nil {
		srv.ErrorLog = slog.NewLogLogger(log.With("part", "http").Handler(), slog.LevelWarn)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("cannot serve HTTP on %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("cannot shut down HTTP on %s: %w", l.Addr(), err)
	}
	<-errc
	return nil
}

// WriteJSON answers status with v as indented JSON, the form every API of
// tpflow answers in. An error writing it means the client went away:
// there is nothing left to tell it.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
