package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tpflow/tpflow/internal/promreg"
	"github.com/tpflow/tpflow/schemas"
)

// LogConfig configures the demo's log writer: the calls of a few apps of
// their own, written as perf-json log lines for a node collector to tail.
type LogConfig struct {
	// Dir holds one file per app, <app>.log, and its rotated copies.
	Dir string
	// Rate is the number of log lines (calls) written per second, over
	// all log apps.
	Rate int
	// Rotate is how often each file is renamed to <app>.log.1 (the older
	// ones shifted to .2) and a new one started.
	Rotate time.Duration
	// Keep is how many rotated files are kept per app; older ones are
	// deleted.
	Keep int
	// Tick is how often lines are written.
	Tick time.Duration
	// Seed fixes the latency sequence.
	Seed uint64
}

// DefaultLogConfig returns the defaults in dir: 100 lines/s, rotated every
// 3 minutes, 2 rotated files kept, written every 250ms.
func DefaultLogConfig(dir string) LogConfig {
	return LogConfig{Dir: dir, Rate: 100, Rotate: 3 * time.Minute, Keep: 2, Tick: 250 * time.Millisecond, Seed: 1}
}

// Validate reports every impossible value as a *schemas.FieldError.
func (c LogConfig) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, schemas.Fieldf(field, format, args...))
	}
	if c.Dir == "" {
		add("dir", "must be set")
	}
	if c.Rate < 1 || c.Rate > 1_000_000 {
		add("rate", "must be between 1 and 1000000, got %d", c.Rate)
	}
	if c.Rotate < 100*time.Millisecond {
		add("rotate", "must be at least 100ms, got %s", c.Rotate)
	}
	if c.Keep < 0 || c.Keep > 100 {
		add("keep", "must be between 0 and 100, got %d", c.Keep)
	}
	if c.Tick < time.Millisecond || c.Tick > 10*time.Second {
		add("tick", "must be between 1ms and 10s, got %s", c.Tick)
	}
	return errors.Join(errs...)
}

// LogSystem, LogIDC and LogEnv are the labels the demo topology file gives
// every line of the log apps; the lines carry app, group and method.
const (
	LogSystem = "edge"
	LogIDC    = "bj-yz"
	LogEnv    = "prod"
)

// logMethod is one method of a log app.
type logMethod struct {
	name     string
	medianMs float64
	sigma    float64
	weight   float64
	errRate  float64
}

// logApp is an app whose calls only the log writer produces: the direct
// generator's apps are in other systems, so no call is counted twice.
type logApp struct {
	app     string
	methods []logMethod
}

var logApps = []logApp{
	{app: "gateway-edge", methods: []logMethod{
		{"GET /api/cart", 8, 0.4, 5, 0.002},
		{"POST /api/order", 35, 0.5, 2, 0.01},
		{"GET /api/item", 4, 0.3, 8, 0.001},
	}},
	{app: "login-edge", methods: []logMethod{
		{"POST /login", 60, 0.4, 1, 0.02},
		{"GET /session", 2, 0.3, 4, 0.001},
	}},
}

// LogApps returns the apps of the log writer, in system LogSystem.
func LogApps() []string {
	out := make([]string, len(logApps))
	for i, a := range logApps {
		out[i] = a.app
	}
	return out
}

// LogGroup is the group label of a log app's lines.
func LogGroup(app string) string { return app + "-" + LogEnv + "-" + LogIDC }

// LogTopology returns a collector topology file for the log writer's
// files: its default gives system, idc and env, and a rule per app matches
// the app's file (and its rotated copies) by name, so that the lines' log
// events carry app and group too (calls take them from the lines).
func LogTopology() []byte {
	var b strings.Builder
	b.WriteString("# The topology of `tpflow run --demo`'s node collector: the demo log\n" +
		"# files are plain files, labelled by their names.\n" +
		"default: {system: " + LogSystem + ", idc: " + LogIDC + ", env: " + LogEnv + "}\n" +
		"rules:\n")
	for _, app := range LogApps() {
		fmt.Fprintf(&b, "  - match: {file: %q}\n    labels: {app: %s, group: %s}\n", app+".log*", app, LogGroup(app))
	}
	return []byte(b.String())
}

// LogWriter writes the log apps' calls as perf-json lines, one file per
// app, rotating them by rename. It is not safe for concurrent use.
type LogWriter struct {
	cfg     LogConfig
	rng     *rand.Rand
	files   []*os.File // by logApps index
	rotated time.Time
	cum     [][]float64 // per app, the methods' cumulative weights
	lines   *prometheus.CounterVec
	rotates prometheus.Counter
}

// NewLogWriter removes what an earlier run left in cfg.Dir (its <app>.log
// files and their rotated copies) and opens a new file per app; the
// rotation clock starts at start.
func NewLogWriter(cfg LogConfig, start time.Time) (*LogWriter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid demo log config: %w", err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create the demo log directory: %w", err)
	}
	w := &LogWriter{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 7)), rotated: start,
		lines: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tpflow_demo_log_lines_total", Help: "Log lines the demo wrote for the node collector, by app.",
		}, []string{"app"}),
		rotates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tpflow_demo_log_rotations_total", Help: "Rotations of the demo log files.",
		}),
	}
	for _, a := range logApps {
		old, _ := filepath.Glob(filepath.Join(cfg.Dir, a.app+".log*"))
		for _, f := range old {
			if err := os.Remove(f); err != nil {
				return nil, fmt.Errorf("cannot remove an old demo log: %w", err)
			}
		}
		f, err := os.OpenFile(w.path(a.app, 0), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("cannot open a demo log: %w", err)
		}
		w.files = append(w.files, f)
		cum := make([]float64, len(a.methods))
		total := 0.0
		for i, m := range a.methods {
			total += m.weight
			cum[i] = total
		}
		for i := range cum {
			cum[i] /= total
		}
		w.cum = append(w.cum, cum)
	}
	return w, nil
}

// Glob matches the files the log writer writes and rotates.
func (w *LogWriter) Glob() string { return filepath.Join(w.cfg.Dir, "*.log") }

// path is the file of app, or its n-th rotated copy.
func (w *LogWriter) path(app string, n int) string {
	p := filepath.Join(w.cfg.Dir, app+".log")
	if n > 0 {
		p += "." + strconv.Itoa(n)
	}
	return p
}

// Close closes the files.
func (w *LogWriter) Close() error {
	var errs []error
	for _, f := range w.files {
		errs = append(errs, f.Close())
	}
	w.files = nil
	return errors.Join(errs...)
}

// Write writes n calls with event times spread evenly over [from, to),
// each app's lines in one write so that a reader never sees half a line,
// and rotates the files first when Rotate has passed from the last
// rotation to from. It returns the number of lines written per app.
func (w *LogWriter) Write(from, to time.Time, n int) (map[string]int, error) {
	if from.Sub(w.rotated) >= w.cfg.Rotate {
		if err := w.rotate(); err != nil {
			return nil, err
		}
		w.rotated = from
	}
	perApp := make([][]byte, len(logApps))
	counts := map[string]int{}
	span := to.Sub(from)
	for k := 0; k < n; k++ {
		t := from.Add(span * time.Duration(k) / time.Duration(n))
		ai := w.rng.IntN(len(logApps))
		a := &logApps[ai]
		mi := 0
		for u := w.rng.Float64(); mi < len(a.methods)-1 && u > w.cum[ai][mi]; mi++ {
		}
		m := &a.methods[mi]
		lat := math.Min(m.medianMs*math.Exp(m.sigma*w.rng.NormFloat64()), 60000)
		status, ok := 200, true
		if w.rng.Float64() < m.errRate {
			status, ok = 500, false
		}
		perApp[ai] = appendLine(perApp[ai], t, a.app, m.name, lat, status, ok)
		counts[a.app]++
	}
	for ai, b := range perApp {
		if len(b) == 0 {
			continue
		}
		if _, err := w.files[ai].Write(b); err != nil {
			return nil, fmt.Errorf("cannot write a demo log: %w", err)
		}
		w.lines.WithLabelValues(logApps[ai].app).Add(float64(counts[logApps[ai].app]))
	}
	return counts, nil
}

// appendLine appends one perf-json line (see parse.PerfJSONMapping).
func appendLine(b []byte, t time.Time, app, method string, latMs float64, status int, ok bool) []byte {
	b = append(b, `{"ts":`...)
	b = strconv.AppendInt(b, t.UnixMilli(), 10)
	b = append(b, `,"app":`...)
	b = strconv.AppendQuote(b, app)
	b = append(b, `,"group":`...)
	b = strconv.AppendQuote(b, LogGroup(app))
	b = append(b, `,"method":`...)
	b = strconv.AppendQuote(b, method)
	b = append(b, `,"latency_ms":`...)
	b = strconv.AppendFloat(b, latMs, 'f', 3, 64)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"ok":`...)
	b = strconv.AppendBool(b, ok)
	b = append(b, `,"msg":"`...)
	if ok {
		b = append(b, "served"...)
	} else {
		b = append(b, "failed"...)
	}
	return append(b, "\"}\n"...)
}

// rotate renames every <app>.log to <app>.log.1, shifting older copies up
// and deleting those beyond Keep, and opens new files.
func (w *LogWriter) rotate() error {
	for ai, a := range logApps {
		if err := w.files[ai].Close(); err != nil {
			return fmt.Errorf("cannot rotate a demo log: %w", err)
		}
		if err := os.Remove(w.path(a.app, w.cfg.Keep)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("cannot rotate a demo log: %w", err)
		}
		for n := w.cfg.Keep - 1; n >= 0; n-- {
			if err := os.Rename(w.path(a.app, n), w.path(a.app, n+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("cannot rotate a demo log: %w", err)
			}
		}
		f, err := os.OpenFile(w.path(a.app, 0), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("cannot rotate a demo log: %w", err)
		}
		w.files[ai] = f
	}
	w.rotates.Inc()
	return nil
}

// Describe returns a one-line summary of the log apps and files.
func (w *LogWriter) Describe() string {
	return fmt.Sprintf("%d lines/s of apps %s (system %s) to %s, rotated every %s, %d rotated kept",
		w.cfg.Rate, strings.Join(LogApps(), ", "), LogSystem, w.Glob(), w.cfg.Rotate, w.cfg.Keep)
}

// RunLogs writes w's lines at the configured rate until ctx is done, with
// event time = now, and closes w. A write error stops it.
func RunLogs(ctx context.Context, w *LogWriter, now func() time.Time, reg prometheus.Registerer, log *slog.Logger) error {
	defer w.Close()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	if err := errors.Join(promreg.RegisterAll(reg, &w.lines), promreg.RegisterAll(reg, &w.rotates)); err != nil {
		return fmt.Errorf("cannot start demo log writer: %w", err)
	}
	log.Info("demo log lines for the node collector", "logs", w.Describe())
	return paced(ctx, w.cfg.Tick, w.cfg.Rate, 0, now, func(from, to time.Time, n int) error {
		_, err := w.Write(from, to, n)
		return err
	})
}
