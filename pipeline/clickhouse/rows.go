package clickhouse

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tpflow/tpflow/pipeline"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
)

// PaneRow is one pane of one call key: a row of call_panes. Its identity is
// (System, App, Group, IDC, Method, PaneStart); a row with the same identity
// and a higher Version replaces it.
type PaneRow struct {
	PaneStart   time.Time
	PaneSeconds uint32
	System      string
	App         string
	Group       string
	IDC         string
	Method      string
	Count       uint64
	Errors      uint64
	SumUs       float64
	MinUs       float64
	MaxUs       float64
	P50Us       float64
	P90Us       float64
	P99Us       float64
	P999Us      float64
	// CentroidMeans and CentroidWeights are the pane's t-digest, as
	// parallel slices of equal length.
	CentroidMeans   []float64
	CentroidWeights []float64
	Version         uint64
}

// EventLabels are the labels a log line and a metric sample are stored
// with: the key labels without the method, and where the event comes from.
type EventLabels struct {
	System, App, Group, IDC string
	Env, Host               string
	Namespace, Pod          string
	Container               string
}

// LogRow is one log line: a row of logs. Its identity is (SourceID, Offset):
// a line sent again must carry the same labels and TS, and then collapses.
type LogRow struct {
	// TS keeps its nanoseconds: in ts on servers with DateTime64 and in
	// ts_ns on every server.
	TS time.Time
	EventLabels
	Stream    string
	Level     string
	Message   string
	Source    string
	SourceID  uint64
	Offset    uint64
	Unparsed  bool
	Truncated bool
	// Flags name what the collector dropped or altered in the line
	// (LogEvent.flags); the column comes with migration 9.
	Flags []string
}

// MetricRow is one sample: a row of metric_samples. A sample sent again
// (same labels, name and second) collapses.
type MetricRow struct {
	TS time.Time
	EventLabels
	Name  string
	Value float64
	Kind  string
}

// ResourcePaneRow is one pane of one resource metric of one container: a
// row of resource_panes, replaced by a row with the same identity and a
// higher Version.
type ResourcePaneRow struct {
	PaneStart   time.Time
	PaneSeconds uint32
	System      string
	App         string
	Group       string
	IDC         string
	Host        string
	Container   string
	Name        string
	Count       uint64
	Avg         float64
	Max         float64
	P95         float64
	Version     uint64
}

// AlertRow is one state change of one alert: a row of alerts. Zero times
// are stored as the Unix epoch.
type AlertRow struct {
	TS               time.Time
	Rule             string
	State            string
	Value            float64
	System           string
	App              string
	Group            string
	IDC              string
	LabelNames       []string
	LabelValues      []string
	AnnotationNames  []string
	AnnotationValues []string
	Fingerprint      uint64
	ActiveAt         time.Time
	FiredAt          time.Time
	ResolvedAt       time.Time
}

// ErrPermanent marks an error that retrying cannot fix: rows the schema
// cannot hold, or a schema that does not match. Callers route the rows to
// the dead-letter queue: errors.Is(err, ErrPermanent). It is
// pipeline.ErrPermanent.
var ErrPermanent = pipeline.ErrPermanent

// RowError says why one row of a batch was rejected.
type RowError struct {
	// Index is the row's position in the slice passed to the Write method.
	Index int
	Err   error
}

// InvalidRowsError reports rows rejected before they reached the server.
// When a Write method returns it, every other row of the call was written.
// It matches ErrPermanent.
type InvalidRowsError struct {
	Table string
	Rows  []RowError
}

// Error implements error.
func (e *InvalidRowsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d invalid %s rows", len(e.Rows), e.Table)
	for i, r := range e.Rows {
		if i == 3 {
			fmt.Fprintf(&b, "; ...")
			break
		}
		fmt.Fprintf(&b, "; row %d: %v", r.Index, r.Err)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrPermanent) true.
func (e *InvalidRowsError) Is(target error) bool { return target == ErrPermanent }

// DateTime holds whole seconds since the epoch in a UInt32.
var (
	minDateTime = time.Unix(0, 0)
	maxDateTime = time.Unix(math.MaxUint32, 0)
)

func checkTime(name string, t time.Time, zeroOK bool) error {
	if t.IsZero() {
		if zeroOK {
			return nil
		}
		return fmt.Errorf("%s is not set", name)
	}
	if t.Before(minDateTime) || !t.Before(maxDateTime) {
		return fmt.Errorf("%s %s is outside DateTime's range 1970..2106", name, t.UTC().Format(time.RFC3339))
	}
	return nil
}

func dateTime(t time.Time) time.Time {
	if t.IsZero() {
		return minDateTime
	}
	return t
}

func (r *PaneRow) check() error {
	if err := checkTime("pane_start", r.PaneStart, false); err != nil {
		return err
	}
	if r.PaneSeconds == 0 {
		return errors.New("pane_seconds is 0")
	}
	v := r.Values()
	return codec.CheckPane(&v)
}

// Values returns the pane statistics of r, for codec.CheckPane.
func (r *PaneRow) Values() codec.PaneValues {
	return codec.PaneValues{
		Count: r.Count, Errors: r.Errors, SumUs: r.SumUs, MinUs: r.MinUs, MaxUs: r.MaxUs,
		Quantiles:     [4]float64{r.P50Us, r.P90Us, r.P99Us, r.P999Us},
		CentroidMeans: r.CentroidMeans, CentroidWeights: r.CentroidWeights,
	}
}

func (r *LogRow) check() error {
	return checkTime("ts", r.TS, false)
}

func (r *MetricRow) check() error {
	if err := checkTime("ts", r.TS, false); err != nil {
		return err
	}
	if r.Name == "" {
		return errors.New("name is empty")
	}
	return nil
}

func (r *ResourcePaneRow) check() error {
	if err := checkTime("pane_start", r.PaneStart, false); err != nil {
		return err
	}
	if r.PaneSeconds == 0 {
		return errors.New("pane_seconds is 0")
	}
	if r.Name == "" {
		return errors.New("name is empty")
	}
	return nil
}

func (r *AlertRow) check() error {
	if err := checkTime("ts", r.TS, false); err != nil {
		return err
	}
	if r.Rule == "" {
		return errors.New("rule is empty")
	}
	if len(r.LabelNames) != len(r.LabelValues) {
		return fmt.Errorf("%d label names but %d values", len(r.LabelNames), len(r.LabelValues))
	}
	if len(r.AnnotationNames) != len(r.AnnotationValues) {
		return fmt.Errorf("%d annotation names but %d values", len(r.AnnotationNames), len(r.AnnotationValues))
	}
	for _, t := range []struct {
		n string
		t time.Time
	}{{"active_at", r.ActiveAt}, {"fired_at", r.FiredAt}, {"resolved_at", r.ResolvedAt}} {
		if err := checkTime(t.n, t.t, true); err != nil {
			return err
		}
	}
	return nil
}

// Column lists: inserts always name their columns (18.16 needs it, and it
// keeps old writers working when a migration adds a column with a default).
// The key columns come from the one key label table.
var (
	callKey     = schemas.KeyColumns(-1) // system, app, group_name, idc, method
	groupKey    = schemas.KeyColumns(4)  // the same without the method
	paneColumns = "pane_start, pane_seconds, " + callKey + ", count, errors, " +
		"sum_us, min_us, max_us, p50_us, p90_us, p99_us, p999_us, centroid_means, centroid_weights, version"
	logColumns = "ts, ts_ns, " + groupKey + ", env, host, namespace, pod, container, " +
		"stream, level, message, source, source_id, offset, unparsed, truncated, flags"
	metricColumns   = "ts, " + groupKey + ", env, host, namespace, pod, container, name, value, kind"
	resourceColumns = "pane_start, pane_seconds, " + groupKey + ", host, container, name, " +
		"count, avg, max, p95, version"
	alertColumns = "ts, rule, state, value, " + groupKey + ", label_names, label_values, " +
		"annotation_names, annotation_values, fingerprint, active_at, fired_at, resolved_at"
)

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func appendPane(b driver.Batch, r *PaneRow) error {
	return b.Append(r.PaneStart, r.PaneSeconds, r.System, r.App, r.Group, r.IDC, r.Method, r.Count, r.Errors,
		r.SumUs, r.MinUs, r.MaxUs, r.P50Us, r.P90Us, r.P99Us, r.P999Us, nonNilF(r.CentroidMeans), nonNilF(r.CentroidWeights), r.Version)
}

func appendLog(b driver.Batch, r *LogRow) error {
	return b.Append(r.TS, uint32(r.TS.Nanosecond()), r.System, r.App, r.Group, r.IDC, r.Env, r.Host, r.Namespace,
		r.Pod, r.Container, r.Stream, r.Level, r.Message, r.Source, r.SourceID, r.Offset, b2u(r.Unparsed), b2u(r.Truncated), nonNilS(r.Flags))
}

func appendMetric(b driver.Batch, r *MetricRow) error {
	return b.Append(r.TS, r.System, r.App, r.Group, r.IDC, r.Env, r.Host, r.Namespace, r.Pod, r.Container,
		r.Name, r.Value, r.Kind)
}

func appendResource(b driver.Batch, r *ResourcePaneRow) error {
	return b.Append(r.PaneStart, r.PaneSeconds, r.System, r.App, r.Group, r.IDC, r.Host, r.Container, r.Name,
		r.Count, r.Avg, r.Max, r.P95, r.Version)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilF(s []float64) []float64 {
	if s == nil {
		return []float64{}
	}
	return s
}

func appendAlert(b driver.Batch, r *AlertRow) error {
	return b.Append(r.TS, r.Rule, r.State, r.Value, r.System, r.App, r.Group, r.IDC,
		nonNil(r.LabelNames), nonNil(r.LabelValues), nonNil(r.AnnotationNames), nonNil(r.AnnotationValues),
		r.Fingerprint, dateTime(r.ActiveAt), dateTime(r.FiredAt), dateTime(r.ResolvedAt))
}

func nonNilS(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}
