// Package demo is the built-in traffic generator of `tpflow run --demo`: call
// events of a synthetic platform (systems, apps, groups in IDCs, methods)
// with heavy-tailed latencies, plus two scripted faults that repeat on a
// fixed schedule so that a new user sees something happen within minutes:
//
//   - a latency incident: one method of one app answers IncidentFactor times
//     slower for IncidentFor, starting IncidentAfter the generator started
//     and again every Every;
//   - an error burst: every method of another app fails with probability
//     ErrorBurstRate for ErrorFor, starting ErrorAfter the start and again
//     every Every.
//
// The topology, which method and app the faults hit, and the latency
// sequence are deterministic functions of Seed.
package demo

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
)

// Config configures the generator. Every field has a default in
// DefaultConfig.
type Config struct {
	// Rate is the number of call events generated per second.
	Rate int `yaml:"rate"`
	// Seed fixes the topology, the fault targets and the latency sequence.
	Seed uint64 `yaml:"seed"`
	// Apps is the number of applications, spread over the systems.
	Apps int `yaml:"apps"`
	// MethodsPerApp is the mean number of methods of an application.
	MethodsPerApp int `yaml:"methods_per_app"`
	// Tick is how often a batch of events is produced; the events of one
	// tick carry event times spread over it.
	Tick time.Duration `yaml:"tick"`
	// BaseErrorRate is the probability that a call fails outside an error
	// burst.
	BaseErrorRate float64 `yaml:"base_error_rate"`
	// IncidentAfter is when the first latency incident starts, counted
	// from the generator's start.
	IncidentAfter time.Duration `yaml:"incident_after"`
	// IncidentFor is how long one latency incident lasts.
	IncidentFor time.Duration `yaml:"incident_for"`
	// IncidentFactor multiplies the incident method's latencies.
	IncidentFactor float64 `yaml:"incident_factor"`
	// ErrorAfter is when the first error burst starts, counted from the
	// generator's start.
	ErrorAfter time.Duration `yaml:"error_after"`
	// ErrorFor is how long one error burst lasts.
	ErrorFor time.Duration `yaml:"error_for"`
	// ErrorBurstRate is the probability that a call of the burst app fails
	// during a burst.
	ErrorBurstRate float64 `yaml:"error_burst_rate"`
	// Every is the period after which both faults repeat.
	Every time.Duration `yaml:"every"`
}

// DefaultConfig returns the documented defaults: 10 000 events/s over 40
// apps with about 10 methods each; an incident (×20 latency) 90 s after the
// start for 60 s and an error burst (30 %) 4 min after the start for 45 s,
// both every 10 min.
func DefaultConfig() Config {
	return Config{
		Rate:           10000,
		Seed:           1,
		Apps:           40,
		MethodsPerApp:  10,
		Tick:           250 * time.Millisecond,
		BaseErrorRate:  0.002,
		IncidentAfter:  90 * time.Second,
		IncidentFor:    60 * time.Second,
		IncidentFactor: 20,
		ErrorAfter:     4 * time.Minute,
		ErrorFor:       45 * time.Second,
		ErrorBurstRate: 0.3,
		Every:          10 * time.Minute,
	}
}

// Validate reports every impossible value as a *schemas.FieldError, joined.
func (c Config) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, schemas.Fieldf(field, format, args...))
	}
	if c.Rate < 1 || c.Rate > 10_000_000 {
		add("rate", "must be between 1 and 10000000, got %d", c.Rate)
	}
	if c.Apps < 2 || c.Apps > 10000 {
		add("apps", "must be between 2 and 10000, got %d", c.Apps)
	}
	if c.MethodsPerApp < 1 || c.MethodsPerApp > 1000 {
		add("methods_per_app", "must be between 1 and 1000, got %d", c.MethodsPerApp)
	}
	if c.Tick < time.Millisecond || c.Tick > 10*time.Second {
		add("tick", "must be between 1ms and 10s, got %s", c.Tick)
	}
	if c.BaseErrorRate < 0 || c.BaseErrorRate > 1 {
		add("base_error_rate", "must be between 0 and 1, got %g", c.BaseErrorRate)
	}
	if c.ErrorBurstRate < 0 || c.ErrorBurstRate > 1 {
		add("error_burst_rate", "must be between 0 and 1, got %g", c.ErrorBurstRate)
	}
	if c.IncidentFactor < 1 {
		add("incident_factor", "must be at least 1, got %g", c.IncidentFactor)
	}
	if c.Every <= 0 {
		add("every", "must be positive, got %s", c.Every)
	}
	for _, f := range []struct {
		name     string
		after, d time.Duration
	}{{"incident", c.IncidentAfter, c.IncidentFor}, {"error", c.ErrorAfter, c.ErrorFor}} {
		if f.after < 0 {
			add(f.name+"_after", "must not be negative, got %s", f.after)
		}
		if f.d < 0 || (c.Every > 0 && f.d > c.Every) {
			add(f.name+"_for", "must be between 0 and every (%s), got %s", c.Every, f.d)
		}
	}
	return errors.Join(errs...)
}

// Schedule describes the faults cfg scripts, for --help and the start-up
// log.
func (c Config) Schedule() string {
	return fmt.Sprintf("latency incident: one method ×%g for %s starting %s after start; "+
		"error burst: one app %.0f%% errors for %s starting %s after start; both repeat every %s",
		c.IncidentFactor, c.IncidentFor, c.IncidentAfter, c.ErrorBurstRate*100, c.ErrorFor, c.ErrorAfter, c.Every)
}

// Method is one generated series: a method of an app in one group.
type Method struct {
	System, App, Group, IDC, Env, Host, Method string

	medianUs float64 // median latency
	sigma    float64 // lognormal shape
	weight   float64 // share of the traffic
}

// Generator produces call events. It is not safe for concurrent use.
type Generator struct {
	cfg   Config
	start time.Time
	rng   *rand.Rand

	series   []Method
	cum      []float64 // cumulative weights of series
	incident Method    // System, App and Method of the incident target
	errApp   [2]string // system, app of the error burst

	b codec.Builder
}

var (
	systems  = []string{"trade", "search", "payment", "logistics", "member", "ads"}
	appWords = []string{"order", "cart", "price", "stock", "coupon", "user", "auth", "item", "review", "ship",
		"route", "bill", "refund", "promo", "rank", "query", "index", "media", "notify", "risk"}
	verbs = []string{"get", "list", "create", "update", "delete", "query", "check", "sync", "apply", "calc"}
	nouns = []string{"Order", "Item", "User", "Price", "Stock", "Coupon", "Address", "Session", "Token", "Detail",
		"Status", "Batch", "Rule", "Quota", "Route"}
	idcs = []string{"bj-yz", "bj-lf", "sh-jq", "gz-hy"}
	envs = []string{"prod", "pre"}
)

// New returns a generator whose schedule starts at start.
func New(cfg Config, start time.Time) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid demo config: %w", err)
	}
	g := &Generator{cfg: cfg, start: start, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))}
	topo := rand.New(rand.NewPCG(cfg.Seed, 42))
	type appMethods struct{ first, n int }
	var apps []appMethods
	for a := 0; a < cfg.Apps; a++ {
		sys := systems[a%len(systems)]
		app := fmt.Sprintf("%s-%s", appWords[(a/len(systems)+a)%len(appWords)], sys)
		if a >= len(appWords) {
			app = fmt.Sprintf("%s%d", app, a/len(appWords))
		}
		ngroups := 1 + topo.IntN(3)
		nmethods := max(1, cfg.MethodsPerApp/2+topo.IntN(cfg.MethodsPerApp+1))
		first := len(g.series)
		seen := map[string]bool{}
		for m := 0; m < nmethods; m++ {
			name := verbs[topo.IntN(len(verbs))] + nouns[topo.IntN(len(nouns))]
			for seen[name] {
				name += "V2"
			}
			seen[name] = true
			median := 500 * math.Exp(topo.Float64()*math.Log(100)) // 0.5–50 ms
			sigma := 0.3 + 0.5*topo.Float64()
			weight := 1 / float64(1+topo.IntN(50)) // a few hot methods
			for gi := 0; gi < ngroups; gi++ {
				idc := idcs[(a+gi)%len(idcs)]
				env := envs[0]
				if gi == 2 {
					env = envs[1]
				}
				g.series = append(g.series, Method{
					System: sys, App: app, Group: fmt.Sprintf("%s-%s-%s", app, env, idc), IDC: idc, Env: env,
					Host: fmt.Sprintf("10.%d.%d.%d", a%250, gi, 10+m%200), Method: name,
					medianUs: median, sigma: sigma, weight: weight / float64(ngroups),
				})
			}
		}
		apps = append(apps, appMethods{first, len(g.series) - first})
	}
	total := 0.0
	g.cum = make([]float64, len(g.series))
	for i, s := range g.series {
		total += s.weight
		g.cum[i] = total
	}
	for i := range g.cum {
		g.cum[i] /= total
	}
	// The incident hits the busiest method of a random app, so that its
	// percentiles rest on many calls; the error burst hits another app.
	ia := topo.IntN(len(apps))
	target := g.series[apps[ia].first]
	for _, s := range g.series[apps[ia].first : apps[ia].first+apps[ia].n] {
		if s.weight > target.weight {
			target = s
		}
	}
	g.incident = Method{System: target.System, App: target.App, Method: target.Method}
	ea := (ia + 1 + topo.IntN(len(apps)-1)) % len(apps)
	s := g.series[apps[ea].first]
	g.errApp = [2]string{s.System, s.App}
	return g, nil
}

// Series returns every generated series. The slice must not be modified.
func (g *Generator) Series() []Method { return g.series }

// IncidentTarget returns the system, app and method of the latency incident.
func (g *Generator) IncidentTarget() (system, app, method string) {
	return g.incident.System, g.incident.App, g.incident.Method
}

// ErrorTarget returns the system and app of the error burst.
func (g *Generator) ErrorTarget() (system, app string) { return g.errApp[0], g.errApp[1] }

// active reports whether t lies in a repetition of [after, after+d) with
// period every, counted from start.
func (g *Generator) active(t time.Time, after, d time.Duration) bool {
	off := t.Sub(g.start) - after
	if off < 0 || d <= 0 {
		return false
	}
	return off%g.cfg.Every < d
}

// IncidentActive reports whether the latency incident is on at t.
func (g *Generator) IncidentActive(t time.Time) bool {
	return g.active(t, g.cfg.IncidentAfter, g.cfg.IncidentFor)
}

// ErrorBurstActive reports whether the error burst is on at t.
func (g *Generator) ErrorBurstActive(t time.Time) bool {
	return g.active(t, g.cfg.ErrorAfter, g.cfg.ErrorFor)
}

// sample draws one call of series i at t.
func (g *Generator) sample(i int, incident, burst bool) (latencyUs uint32, ok bool) {
	s := &g.series[i]
	lat := s.medianUs * math.Exp(s.sigma*g.rng.NormFloat64())
	errRate := g.cfg.BaseErrorRate
	if incident && s.Method == g.incident.Method && s.App == g.incident.App && s.System == g.incident.System {
		lat *= g.cfg.IncidentFactor
	}
	if burst && s.App == g.errApp[1] && s.System == g.errApp[0] {
		errRate = g.cfg.ErrorBurstRate
	}
	lat = math.Min(math.Max(lat, 1), 60e6)
	return uint32(lat), g.rng.Float64() >= errRate
}

// pick draws a series index by traffic weight.
func (g *Generator) pick() int {
	return min(sort.SearchFloat64s(g.cum, g.rng.Float64()), len(g.cum)-1)
}

// Call is one generated call event, for callers that consume events
// directly rather than as Kafka messages.
type Call struct {
	Series    int // index into Series()
	TsUnixMs  int64
	LatencyUs uint32
	OK        bool
}

// Calls appends n calls with event times spread evenly over [from, to) to
// dst and returns it. Whether a fault applies is decided per event by its
// event time.
func (g *Generator) Calls(dst []Call, from, to time.Time, n int) []Call {
	span := to.Sub(from)
	for k := 0; k < n; k++ {
		t := from.Add(span * time.Duration(k) / time.Duration(n))
		i := g.pick()
		lat, ok := g.sample(i, g.IncidentActive(t), g.ErrorBurstActive(t))
		dst = append(dst, Call{Series: i, TsUnixMs: t.UnixMilli(), LatencyUs: lat, OK: ok})
	}
	return dst
}

// Messages encodes calls as Kafka messages: one EventBatch per (system,
// app, method), keyed by kafka.CallKey so that one aggregator owns each
// method, cut at maxBytes. The messages own their values.
func (g *Generator) Messages(calls []Call, maxBytes int) []kafkago.Message {
	// Group by method: series of the same method (different groups) are
	// adjacent in g.series, so sort by (method key, time) through series
	// index order.
	sorted := make([]Call, len(calls))
	copy(sorted, calls)
	sort.SliceStable(sorted, func(a, b int) bool { return sorted[a].Series < sorted[b].Series })
	var out []kafkago.Message
	var key Method
	labels := make([]schemas.Label, 0, 6)
	flush := func() {
		if g.b.Len() == 0 {
			return
		}
		out = append(out, kafkago.Message{
			Key:   kafka.CallKey(key.System, key.App, key.Method),
			Value: g.b.AppendTo(nil),
		})
		g.b.Reset()
	}
	g.b.Reset()
	g.b.SetProducer("tpflow-demo")
	lastSeries := -1
	var ser uint32
	for _, c := range sorted {
		s := &g.series[c.Series]
		if s.System != key.System || s.App != key.App || s.Method != key.Method || g.b.Size() > maxBytes-256 {
			flush()
			key = *s
			g.b.SetProducer("tpflow-demo")
			lastSeries = -1
		}
		if c.Series != lastSeries {
			labels = append(labels[:0],
				schemas.Label{Name: schemas.LabelSystem, Value: s.System},
				schemas.Label{Name: schemas.LabelApp, Value: s.App},
				schemas.Label{Name: schemas.LabelGroup, Value: s.Group},
				schemas.Label{Name: schemas.LabelIDC, Value: s.IDC},
				schemas.Label{Name: schemas.LabelEnv, Value: s.Env},
				schemas.Label{Name: schemas.LabelHost, Value: s.Host},
			)
			ser = g.b.Series(g.b.LabelSet(labels), s.Method)
			lastSeries = c.Series
		}
		status := uint32(200)
		if !c.OK {
			status = 500
		}
		g.b.AddCall(codec.Call{TsUnixMs: c.TsUnixMs, Series: ser, LatencyUs: c.LatencyUs, Status: status, OK: c.OK})
	}
	flush()
	return out
}

// Describe returns a one-line summary of the topology and the fault targets.
func (g *Generator) Describe() string {
	return fmt.Sprintf("%d series over %d apps; incident method %s/%s/%s; error burst app %s/%s",
		len(g.series), g.cfg.Apps, g.incident.System, g.incident.App, g.incident.Method, g.errApp[0], g.errApp[1])
}

// State names the fault that is on at now ("incident:APP/METHOD",
// "errors:APP", both, or "normal"), for a status line.
func (g *Generator) State(now time.Time) string {
	var s string
	if g.IncidentActive(now) {
		_, app, method := g.IncidentTarget()
		s = "incident:" + app + "/" + method
	}
	if g.ErrorBurstActive(now) {
		_, app := g.ErrorTarget()
		if s != "" {
			s += ","
		}
		s += "errors:" + app
	}
	if s == "" {
		s = "normal"
	}
	return s
}
