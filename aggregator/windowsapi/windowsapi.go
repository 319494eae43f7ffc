// Package windowsapi serves the aggregation engine's current sliding
// windows as JSON on /api/v1/windows, for the role that holds an engine.
package windowsapi

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/internal/config"
	"github.com/tpflow/tpflow/pipeline/httpserver"
)

// Path is the pattern the handler is served under.
const Path = "GET /api/v1/windows"

// WindowSource is what /api/v1/windows reads: the window of length d of
// every key for which match returns true. *aggregator.Engine implements it.
type WindowSource interface {
	Windows(match func(aggregator.Key) bool, d time.Duration) []aggregator.Window
}

// WindowsResponse is the body of a successful /api/v1/windows answer.
type WindowsResponse struct {
	Window string `json:"window"`
	// Total is how many keys matched; Windows holds the Limit slowest.
	Total   int                 `json:"total"`
	Limit   int                 `json:"limit"`
	Windows []aggregator.Window `json:"windows"`
}

// The limit parameter's default and bound: an answer never holds more
// windows than MaxLimit, however many keys the engine has.
const (
	DefaultLimit = 1000
	MaxLimit     = 10000
)

// errorResponse is the body of every 4xx answer of the API.
type errorResponse struct {
	Error string `json:"error"`
}

// defaultWindow is the window parameter's default when the source keeps it.
const defaultWindow = time.Minute

// Handler serves GET /api/v1/windows from src, which keeps the windows of
// lengths: the first is the default of the window parameter unless one of
// them is 1m. The answer holds the limit (default DefaultLimit, at most
// MaxLimit) slowest keys by TP99 and the number of keys that matched, so
// that its size is bounded however many keys the engine holds; the engine
// copies the keys in chunks and computes their quantiles without its lock
// (aggregator.Engine.Windows).
func Handler(src WindowSource, lengths []time.Duration) http.Handler {
	return httpserver.Bounded(MaxConcurrent, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { windows(w, r, src, lengths) }),
		func(w http.ResponseWriter, r *http.Request) {
			httpserver.WriteJSON(w, http.StatusServiceUnavailable, errorResponse{Error: fmt.Sprintf("%s is serving its limit of %d requests; retry later", r.URL.Path, MaxConcurrent)})
		})
}

// MaxConcurrent is how many /api/v1/windows requests are served at a
// time: each computes the quantiles of every matching key, so more would
// take the cores the engine needs; the next ones are answered 503 with
// Retry-After.
const MaxConcurrent = 2

func windows(w http.ResponseWriter, r *http.Request, src WindowSource, lengths []time.Duration) {
	q := r.URL.Query()
	d := defaultWindow
	if !slices.Contains(lengths, d) && len(lengths) > 0 {
		d = lengths[0]
	}
	if s := q.Get("window"); s != "" {
		v, err := time.ParseDuration(s)
		if err != nil {
			httpserver.WriteJSON(w, http.StatusBadRequest, errorResponse{Error: fmt.Sprintf("window: cannot parse %q as a duration (for example 1m)", s)})
			return
		}
		d = v
	}
	if !slices.Contains(lengths, d) {
		names := make([]string, len(lengths))
		for i, l := range lengths {
			names[i] = config.FormatDuration(l)
		}
		httpserver.WriteJSON(w, http.StatusBadRequest, errorResponse{Error: fmt.Sprintf("window: %s is not a configured window; use one of %s",
			config.FormatDuration(d), strings.Join(names, ", "))})
		return
	}
	limit := DefaultLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxLimit {
			httpserver.WriteJSON(w, http.StatusBadRequest, errorResponse{Error: fmt.Sprintf("limit: want a whole number from 1 to %d, got %q", MaxLimit, s)})
			return
		}
		limit = n
	}
	app, method := q.Get("app"), q.Get("method")
	var match func(aggregator.Key) bool
	if app != "" || method != "" {
		match = func(k aggregator.Key) bool {
			return (app == "" || k.App == app) && (method == "" || k.Method == method)
		}
	}
	kws := src.Windows(match, d)
	if kws == nil {
		kws = []aggregator.Window{} // [] in the answer, not null
	}
	SortByP99(kws)
	out := WindowsResponse{Window: config.FormatDuration(d), Total: len(kws), Limit: limit, Windows: kws}
	out.Windows = out.Windows[:min(len(out.Windows), limit)]
	httpserver.WriteJSON(w, http.StatusOK, out)
}

// SortByP99 sorts ws by TP99, slowest first; ties keep a stable key order so
// that a refreshed view does not jump.
func SortByP99(ws []aggregator.Window) {
	slices.SortStableFunc(ws, func(a, b aggregator.Window) int {
		switch {
		case a.P99 > b.P99:
			return -1
		case a.P99 < b.P99:
			return 1
		}
		ka, kb := a.Key, b.Key
		return strings.Compare(ka.System+"\x00"+ka.App+"\x00"+ka.Method+"\x00"+ka.Group+"\x00"+ka.IDC,
			kb.System+"\x00"+kb.App+"\x00"+kb.Method+"\x00"+kb.Group+"\x00"+kb.IDC)
	})
}
