// Package httpapi is the HTTP surface every tpflow role serves: Prometheus
// metrics, liveness, readiness, the Go profiler and, where the role holds an
// aggregation engine, its current sliding windows as JSON.
package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tpflow/tpflow/aggregator"
)

// WindowSource is what /api/v1/windows reads: the window of length d of
// every key for which match returns true. *aggregator.Engine implements it.
type WindowSource interface {
	Windows(match func(aggregator.Key) bool, d time.Duration) []aggregator.KeyWindow
}

// Check is one readiness check: nil when the part it checks is ready, else
// the reason it is not.
type Check func(ctx context.Context) error

// Options configures Handler. Every field is optional.
type Options struct {
	// Gatherer serves /metrics; nil serves prometheus.DefaultGatherer.
	Gatherer prometheus.Gatherer
	// Checks are run by /readyz, by name; all must pass.
	Checks map[string]Check
	// Windows serves /api/v1/windows; nil answers 404 there.
	Windows WindowSource
	// WindowLengths are the windows the source keeps; the first is the
	// default of the window parameter unless one of them is 1m.
	WindowLengths []time.Duration
	// CheckTimeout bounds all readiness checks together; 0 means 2s.
	CheckTimeout time.Duration
}

// Handler returns the handler of /metrics, /healthz, /readyz,
// /api/v1/windows and the Go profiler under /debug/pprof/ (as Prometheus
// serves it: the listen address decides who may reach it).
func Handler(o Options) http.Handler {
	if o.Gatherer == nil {
		o.Gatherer = prometheus.DefaultGatherer
	}
	if o.CheckTimeout <= 0 {
		o.CheckTimeout = 2 * time.Second
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { ready(w, r, o) })
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	if o.Windows != nil {
		mux.HandleFunc("GET /api/v1/windows", func(w http.ResponseWriter, r *http.Request) { windows(w, r, o) })
	}
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

// Window is one key's window in the /api/v1/windows answer. Latencies are
// in microseconds; start and end bound the window as [start, end).
type Window struct {
	System    string    `json:"system"`
	App       string    `json:"app"`
	Group     string    `json:"group"`
	IDC       string    `json:"idc"`
	Method    string    `json:"method"`
	Window    string    `json:"window"`
	Count     uint64    `json:"count"`
	QPS       float64   `json:"qps"`
	ErrorRate float64   `json:"error_rate"`
	AvgUs     float64   `json:"avg_us"`
	P50Us     float64   `json:"p50_us"`
	P90Us     float64   `json:"p90_us"`
	P99Us     float64   `json:"p99_us"`
	P999Us    float64   `json:"p999_us"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
}

// WindowsResponse is the body of a successful /api/v1/windows answer.
type WindowsResponse struct {
	Window  string   `json:"window"`
	Windows []Window `json:"windows"`
}

// errorResponse is the body of every 4xx answer of the API.
type errorResponse struct {
	Error string `json:"error"`
}

// defaultWindow is the window parameter's default when the source keeps it.
const defaultWindow = time.Minute

func windows(w http.ResponseWriter, r *http.Request, o Options) {
	q := r.URL.Query()
	d := defaultWindow
	if !slices.Contains(o.WindowLengths, d) && len(o.WindowLengths) > 0 {
		d = o.WindowLengths[0]
	}
	if s := q.Get("window"); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errorResponse{Error: fmt.Sprintf("window: cannot parse %q as a duration (for example 1m)", s)})
			return
		}
		d = v
	}
	if !slices.Contains(o.WindowLengths, d) {
		names := make([]string, len(o.WindowLengths))
		for i, l := range o.WindowLengths {
			names[i] = formatDuration(l)
		}
		writeJSON(w, http.StatusBadRequest, errorResponse{Error: fmt.Sprintf("window: %s is not a configured window; use one of %s",
			formatDuration(d), strings.Join(names, ", "))})
		return
	}
	app, method := q.Get("app"), q.Get("method")
	var match func(aggregator.Key) bool
	if app != "" || method != "" {
		match = func(k aggregator.Key) bool {
			return (app == "" || k.App == app) && (method == "" || k.Method == method)
		}
	}
	kws := o.Windows.Windows(match, d)
	out := WindowsResponse{Window: formatDuration(d), Windows: make([]Window, 0, len(kws))}
	for _, kw := range kws {
		out.Windows = append(out.Windows, FromKeyWindow(kw, d))
	}
	SortByP99(out.Windows)
	writeJSON(w, http.StatusOK, out)
}

// FromKeyWindow converts one engine window of length d to its JSON form.
func FromKeyWindow(kw aggregator.KeyWindow, d time.Duration) Window {
	return Window{
		System: kw.Key.System, App: kw.Key.App, Group: kw.Key.Group, IDC: kw.Key.IDC, Method: kw.Key.Method,
		Window: formatDuration(d), Count: kw.Count, QPS: kw.QPS, ErrorRate: kw.ErrorRate, AvgUs: kw.AvgUs,
		P50Us: kw.P50, P90Us: kw.P90, P99Us: kw.P99, P999Us: kw.P999,
		Start: time.UnixMilli(kw.Start).UTC(), End: time.UnixMilli(kw.End).UTC(),
	}
}

// SortByP99 sorts ws by TP99, slowest first; ties keep a stable key order so
// that a refreshed view does not jump.
func SortByP99(ws []Window) {
	slices.SortStableFunc(ws, func(a, b Window) int {
		switch {
		case a.P99Us > b.P99Us:
			return -1
		case a.P99Us < b.P99Us:
			return 1
		}
		return strings.Compare(a.System+"\x00"+a.App+"\x00"+a.Method+"\x00"+a.Group+"\x00"+a.IDC,
			b.System+"\x00"+b.App+"\x00"+b.Method+"\x00"+b.Group+"\x00"+b.IDC)
	})
}

// formatDuration prints 1m rather than 1m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing to do
}

// Serve serves h on l until ctx is done, then shuts down, giving open
// requests up to 5 s. It returns nil after a shutdown caused by ctx.
func Serve(ctx context.Context, l net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("cannot serve HTTP on %s: %w", l.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("cannot shut down HTTP on %s: %w", l.Addr(), err)
	}
	<-errc
	return nil
}
