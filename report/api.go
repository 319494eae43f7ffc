package report

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/httpserver"
	"github.com/tpflow/tpflow/schemas"
)

// API serves the query API over ClickHouse:
//
//	GET /api/v1/tp        calls, errors, QPS and latency quantiles of a selector, per step
//	GET /api/v1/capacity  the rows of a capacity report
//	GET /api/v1/topology  systems → apps → groups → IDCs seen in a range
//
// /api/v1/tp cuts the range into steps. A step that is a multiple of 5
// minutes is aligned to its multiples since the Unix epoch, as Grafana's
// are (from=now-24h&step=5m gives points at :00, :05, …; the first point
// starts before from and holds what lies from from on). Such a query, or
// one without a step, reads the 5-minute rollups (call_rollups) for the
// buckets that lie wholly in the range, each key's bucket from its rollup
// where there is one and from its 10-s panes where there is none yet;
// other steps read the 10-s panes (call_panes). Its "source" says which:
// "call_rollups", "call_panes" or "call_rollups+call_panes" (call_panes
// when there are no points).
//
// A malformed parameter is answered 400 with {"error": reason}. A failed
// query is answered 502 with a reason that speaks of the request only (the
// query ran past its time or memory limit, or "query failed") and a
// request id; the server's own error is logged with that id, never sent.
// Each path serves at most MaxConcurrent requests at a time and answers
// the next ones 503 with Retry-After. Every query carries the limits of
// APIOptions.Limits. API is safe for concurrent use.
type API struct {
	conn     driver.Conn
	database string
	now      func() time.Time
	log      *slog.Logger
	timeout  time.Duration
	limits   clickhouse.Limits
	inFlight int
}

// APIOptions are the optional parts of an API.
type APIOptions struct {
	// Now is the clock for defaults such as "the last hour"; nil is
	// time.Now.
	Now func() time.Time
	// Logger logs failed queries; nil discards.
	Logger *slog.Logger
	// Timeout bounds one request's queries; 0 means 30s.
	Timeout time.Duration
	// MaxConcurrent is how many requests each path serves at a time; 0
	// means DefaultMaxConcurrent.
	MaxConcurrent int
	// Limits bound every query on the server. A zero MaxExecutionTime is
	// Timeout; a zero MaxMemoryUsage is DefaultMaxMemoryUsage.
	Limits clickhouse.Limits
}

// The defaults of APIOptions.
const (
	DefaultMaxConcurrent        = 8
	DefaultMaxMemoryUsage int64 = 4 << 30
)

// DefaultLimits are the limits of a query of API when nothing else is
// given: 30s and DefaultMaxMemoryUsage.
var DefaultLimits = clickhouse.Limits{MaxExecutionTime: 30 * time.Second, MaxMemoryUsage: DefaultMaxMemoryUsage}

// ReportLimits are the limits of each query of a capacity report run
// from the command line, which waits longer than an API client.
var ReportLimits = clickhouse.Limits{MaxExecutionTime: 5 * time.Minute, MaxMemoryUsage: DefaultMaxMemoryUsage}

// NewAPI returns an API reading the tables of database over conn. The
// caller keeps conn open while the API serves.
func NewAPI(conn driver.Conn, database string, o APIOptions) *API {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultLimits.MaxExecutionTime
	}
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = DefaultMaxConcurrent
	}
	if o.Limits.MaxExecutionTime <= 0 {
		o.Limits.MaxExecutionTime = o.Timeout
	}
	if o.Limits.MaxMemoryUsage <= 0 {
		o.Limits.MaxMemoryUsage = DefaultLimits.MaxMemoryUsage
	}
	return &API{conn: conn, database: database, now: o.Now, log: o.Logger, timeout: o.Timeout,
		limits: o.Limits, inFlight: o.MaxConcurrent}
}

// Paths are the paths API serves.
var Paths = []string{"/api/v1/tp", "/api/v1/capacity", "/api/v1/topology"}

// Handler returns the handler of Paths.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/tp", a.bounded(a.serveTP))
	mux.Handle("GET /api/v1/capacity", a.bounded(a.serveCapacity))
	mux.Handle("GET /api/v1/topology", a.bounded(a.serveTopology))
	return mux
}

// bounded serves h at most a.inFlight requests at a time and answers the
// others 503 at once.
func (a *API) bounded(h http.HandlerFunc) http.Handler {
	return httpserver.Bounded(a.inFlight, h, func(w http.ResponseWriter, r *http.Request) {
		httpserver.WriteJSON(w, http.StatusServiceUnavailable, errorResponse{
			Error: fmt.Sprintf("%s is serving its limit of %d requests; retry later", r.URL.Path, a.inFlight)})
	})
}

// queryContext is the context of a request's queries: its timeout and the
// server limits.
func (a *API) queryContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
	return a.limits.Context(ctx), cancel
}

// Mount returns a handler that serves Paths with api and everything else
// with base.
func Mount(base, api http.Handler) http.Handler {
	mux := http.NewServeMux()
	for _, p := range Paths {
		mux.Handle(p, api)
	}
	mux.Handle("/", base)
	return mux
}

// errorResponse is the body of every 4xx and 5xx answer.
type errorResponse struct {
	Error string `json:"error"`
	// RequestID names a failed query in the server's log.
	RequestID string `json:"request_id,omitempty"`
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, ErrBadRequest) {
		httpserver.WriteJSON(w, http.StatusBadRequest, errorResponse{Error: strings.TrimPrefix(err.Error(), ErrBadRequest.Error()+": ")})
		return
	}
	id := requestID()
	a.log.Warn("query failed", "path", r.URL.Path, "request_id", id, "err", err)
	msg := "query failed"
	switch which, _ := clickhouse.OverLimit(err); {
	case which == "max_execution_time":
		msg = fmt.Sprintf("the query ran longer than its limit of %s; narrow the range or the selector", a.limits.MaxExecutionTime)
	case errors.Is(err, context.DeadlineExceeded):
		msg = fmt.Sprintf("the request took longer than its limit of %s; narrow the range or the selector", a.timeout)
	case which == "max_memory_usage":
		msg = fmt.Sprintf("the query needed more than its memory limit of %d bytes; narrow the range or the selector", a.limits.MaxMemoryUsage)
	}
	httpserver.WriteJSON(w, http.StatusBadGateway, errorResponse{Error: msg, RequestID: id})
}

// requestID returns a random name for one failed request.
func requestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// params reads a query string strictly: every name must be in allowed
// and appear once.
type params struct{ v url.Values }

func parseParams(r *http.Request, allowed ...string) (params, error) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return params{}, badRequest("cannot parse the query string: %v", err)
	}
	names := make([]string, 0, len(v))
	for n := range v {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if !slices.Contains(allowed, n) {
			return params{}, badRequest("unknown parameter %q; this endpoint takes %s", n, strings.Join(allowed, ", "))
		}
		if len(v[n]) > 1 {
			return params{}, badRequest("parameter %q is given %d times; give it once", n, len(v[n]))
		}
	}
	return params{v}, nil
}

func (p params) get(n string) (string, bool) {
	vs, ok := p.v[n]
	if !ok {
		return "", false
	}
	return vs[0], true
}

func (p params) str(n string) string { s, _ := p.get(n); return s }

// TPResponse is the answer of /api/v1/tp.
type TPResponse struct {
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	StepSeconds int64     `json:"step_seconds"`
	Quantiles   []float64 `json:"quantiles"`
	By          []string  `json:"by"`
	// Source is the tables the points were read from; see API.
	Source string     `json:"source"`
	Series []TPSeries `json:"series"`
}

// TPSeries is the points of one value of the by labels.
type TPSeries struct {
	Labels map[string]string `json:"labels"`
	Points []TPPoint         `json:"points"`
}

// TPPoint is one step of a TPSeries. QuantilesUs are in µs, in the order of
// TPResponse.Quantiles, merged from the stored centroids of the step's
// panes; null without calls. QPS divides by the part of the step inside
// the range.
type TPPoint struct {
	Start       time.Time  `json:"start"`
	Calls       uint64     `json:"calls"`
	Errors      uint64     `json:"errors"`
	QPS         float64    `json:"qps"`
	ErrorRatio  float64    `json:"error_ratio"`
	QuantilesUs []*float64 `json:"quantiles_us"`
}

func (a *API) serveTP(w http.ResponseWriter, r *http.Request) {
	res, err := a.tp(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpserver.WriteJSON(w, http.StatusOK, res)
}

func (a *API) tp(r *http.Request) (TPResponse, error) {
	p, err := parseParams(r, append(schemas.KeyLabelNames(-1), "from", "to", "step", "q", "by")...)
	if err != nil {
		return TPResponse{}, err
	}
	sel, err := SelectorFrom(p.get, true)
	if err != nil {
		return TPResponse{}, err
	}
	from, to, err := ParseRange(p.str("from"), p.str("to"), time.Hour, a.now())
	if err != nil {
		return TPResponse{}, err
	}
	step, err := ParseStep(p.str("step"), from, to)
	if err != nil {
		return TPResponse{}, err
	}
	qs := []float64{0.5, 0.9, 0.99, 0.999}
	if s, ok := p.get("q"); ok {
		if qs, err = ParseQuantiles(s); err != nil {
			return TPResponse{}, err
		}
	}
	by := []string{}
	if s, ok := p.get("by"); ok && s != "" {
		for _, l := range strings.Split(s, ",") {
			if _, ok := schemas.KeyColumn(l); !ok {
				return TPResponse{}, badRequest("by: %q is not a label; use %s", l, schemas.KeyLabelList())
			}
			if slices.Contains(by, l) {
				return TPResponse{}, badRequest("by: %q is given twice", l)
			}
			by = append(by, l)
		}
	}
	ctx, cancel := a.queryContext(r)
	defer cancel()
	stats, err := clickhouse.QueryCallStats(ctx, a.conn, clickhouse.CallStatsQuery{
		Database: a.database, Selector: sel, From: from, To: to, Step: step, By: by, Quantiles: qs,
	})
	if err != nil {
		return TPResponse{}, err
	}
	res := TPResponse{From: from, To: to, StepSeconds: int64(step / time.Second), Quantiles: qs, By: by, Series: []TPSeries{},
		Source: clickhouse.SourceOf(stats).String()}
	if res.Source == "" {
		res.Source = clickhouse.SourcePanes.String()
	}
	if step == 0 {
		res.StepSeconds = int64(to.Sub(from) / time.Second)
	}
	for _, s := range stats {
		n := len(res.Series)
		if n == 0 || !slices.Equal(labelValues(res.Series[n-1].Labels, by), s.Labels) {
			l := map[string]string{}
			for i, name := range by {
				l[name] = s.Labels[i]
			}
			res.Series = append(res.Series, TPSeries{Labels: l})
			n++
		}
		end := s.Start.Add(time.Duration(res.StepSeconds) * time.Second)
		if end.After(to) {
			end = to
		}
		begin := s.Start
		if begin.Before(from) {
			begin = from
		}
		pt := TPPoint{Start: s.Start, Calls: s.Count, Errors: s.Errors, QPS: float64(s.Count) / end.Sub(begin).Seconds()}
		if s.Count > 0 {
			pt.ErrorRatio = float64(s.Errors) / float64(s.Count)
		}
		for _, q := range s.Quantiles {
			if math.IsNaN(q) {
				pt.QuantilesUs = append(pt.QuantilesUs, nil)
			} else {
				pt.QuantilesUs = append(pt.QuantilesUs, &q)
			}
		}
		res.Series[n-1].Points = append(res.Series[n-1].Points, pt)
	}
	return res, nil
}

func labelValues(m map[string]string, by []string) []string {
	out := make([]string, len(by))
	for i, n := range by {
		out[i] = m[n]
	}
	return out
}

// CapacityResponse is the answer of /api/v1/capacity.
type CapacityResponse struct {
	From   time.Time `json:"from"`
	To     time.Time `json:"to"`
	By     string    `json:"by"`
	Target float64   `json:"target"`
	Rows   []JSONRow `json:"rows"`
}

func (a *API) serveCapacity(w http.ResponseWriter, r *http.Request) {
	p, err := parseParams(r, append(slices.Clone(Levels), "from", "to", "by", "target")...)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	q, err := a.capacityQuery(p)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ctx, cancel := a.queryContext(r)
	defer cancel()
	rows, err := Capacity(ctx, a.conn, q)
	if err != nil && !errors.Is(err, ErrEmpty) {
		a.fail(w, r, err)
		return
	}
	res := CapacityResponse{From: q.From, To: q.To, By: Levels[q.Depth], Target: q.Target, Rows: []JSONRow{}}
	for _, row := range rows {
		res.Rows = append(res.Rows, row.JSON())
	}
	httpserver.WriteJSON(w, http.StatusOK, res)
}

func (a *API) capacityQuery(p params) (CapacityQuery, error) {
	sel, err := SelectorFrom(p.get, false)
	if err != nil {
		return CapacityQuery{}, err
	}
	from, to, err := ParseRange(p.str("from"), p.str("to"), 24*time.Hour, a.now())
	if err != nil {
		return CapacityQuery{}, err
	}
	depth := 2
	if s, ok := p.get("by"); ok {
		if depth, err = ParseLevel(s); err != nil {
			return CapacityQuery{}, err
		}
	}
	target := DefaultTarget
	if s, ok := p.get("target"); ok {
		if target, err = ParseTarget(s); err != nil {
			return CapacityQuery{}, err
		}
	}
	return CapacityQuery{Database: a.database, Selector: sel, From: from, To: to, Depth: depth, Target: target}, nil
}

// ParseTarget reads a target utilisation: a ratio in (0, 1] or a
// percentage such as 70%.
func ParseTarget(s string) (float64, error) {
	pct := strings.HasSuffix(s, "%")
	f, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil {
		return 0, badRequest("target: cannot parse %q (use 0.7 or 70%%)", s)
	}
	if pct {
		f /= 100
	}
	if !(f > 0 && f <= 1) {
		return 0, badRequest("target: %s is outside (0, 1]", s)
	}
	return f, nil
}

func (a *API) serveTopology(w http.ResponseWriter, r *http.Request) {
	p, err := parseParams(r, append(slices.Clone(Levels), "from", "to")...)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	sel, err := SelectorFrom(p.get, false)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	from, to, err := ParseRange(p.str("from"), p.str("to"), 24*time.Hour, a.now())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ctx, cancel := a.queryContext(r)
	defer cancel()
	t, err := Topology(ctx, a.conn, TopologyQuery{Database: a.database, Selector: sel, From: from, To: to})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	httpserver.WriteJSON(w, http.StatusOK, t)
}

// JSONRow is a Row as the API sends it: unknown numbers are null.
type JSONRow struct {
	Level          string             `json:"level"`
	System         string             `json:"system"`
	App            string             `json:"app,omitempty"`
	Group          string             `json:"group,omitempty"`
	IDC            string             `json:"idc,omitempty"`
	IDCs           []string           `json:"idcs"`
	Instances      int                `json:"instances"`
	CPU            JSONResource       `json:"cpu_cores"`
	Memory         JSONResource       `json:"memory_bytes"`
	Calls          uint64             `json:"calls"`
	Errors         uint64             `json:"errors"`
	QPS            float64            `json:"qps"`
	TP99Us         *float64           `json:"tp99_us"`
	Trend          []JSONTrendPoint   `json:"trend"`
	Recommendation JSONRecommendation `json:"recommendation"`
}

// JSONResource is a Resource with null for unknown values.
type JSONResource struct {
	Avg      *float64 `json:"avg"`
	P95      *float64 `json:"p95"`
	Peak     *float64 `json:"peak"`
	Limit    *float64 `json:"limit"`
	UtilAvg  *float64 `json:"util_avg"`
	UtilPeak *float64 `json:"util_peak"`
}

// JSONTrendPoint is a TrendPoint with null for unknown values.
type JSONTrendPoint struct {
	Start  time.Time `json:"start"`
	QPS    float64   `json:"qps"`
	TP99Us *float64  `json:"tp99_us"`
	CPU    *float64  `json:"cpu_cores"`
	Memory *float64  `json:"memory_bytes"`
}

// JSONRecommendation is a Recommendation; replicas is null when unknown.
type JSONRecommendation struct {
	Replicas *int     `json:"replicas"`
	Basis    string   `json:"basis,omitempty"`
	PeakUtil *float64 `json:"peak_util"`
	Target   float64  `json:"target"`
	Formula  string   `json:"formula,omitempty"`
}

func num(f float64) *float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return &f
}

func (r Resource) json() JSONResource {
	j := JSONResource{Avg: num(r.Avg), P95: num(r.P95), Peak: num(r.Peak), UtilAvg: num(r.UtilAvg), UtilPeak: num(r.UtilPeak)}
	if r.Limit > 0 {
		j.Limit = num(r.Limit)
	}
	return j
}

// JSON returns the row as the API sends it.
func (r Row) JSON() JSONRow {
	j := JSONRow{
		Level: Levels[r.Depth], System: r.System, App: r.App, Group: r.Group, IDC: r.IDC, IDCs: r.IDCs,
		Instances: r.Instances, CPU: r.CPU.json(), Memory: r.Memory.json(),
		Calls: r.Calls, Errors: r.Errors, QPS: r.QPS, TP99Us: num(r.TP99Us),
		Recommendation: JSONRecommendation{Target: r.Recommendation.Target},
	}
	if j.IDCs == nil {
		j.IDCs = []string{}
	}
	for _, p := range r.Trend {
		j.Trend = append(j.Trend, JSONTrendPoint{Start: p.Start, QPS: p.QPS, TP99Us: num(p.TP99Us), CPU: num(p.CPU), Memory: num(p.Memory)})
	}
	if rec := r.Recommendation; rec.OK {
		n := rec.Replicas
		j.Recommendation = JSONRecommendation{Replicas: &n, Basis: rec.Basis, PeakUtil: num(rec.PeakUtil), Target: rec.Target, Formula: rec.Formula}
	}
	return j
}
