package aggregator

import (
	"encoding/json"
	"time"

	"github.com/tpflow/tpflow/internal/config"
)

// windowJSON is a Window as /api/v1/windows serves it: the key's labels,
// the window's length ("1m"), latencies in microseconds, and [start, end)
// as times.
type windowJSON struct {
	System    string    `json:"system"`
	App       string    `json:"app"`
	Group     string    `json:"group"`
	IDC       string    `json:"idc"`
	Method    string    `json:"method"`
	Window    string    `json:"window"`
	Count     uint64    `json:"count"`
	Errors    uint64    `json:"errors"`
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

// MarshalJSON writes w in the form /api/v1/windows serves.
func (w Window) MarshalJSON() ([]byte, error) {
	return json.Marshal(windowJSON{
		System: w.Key.System, App: w.Key.App, Group: w.Key.Group, IDC: w.Key.IDC, Method: w.Key.Method,
		Window: config.FormatDuration(w.Length()), Count: w.Count, Errors: w.Errors, QPS: w.QPS, ErrorRate: w.ErrorRate, AvgUs: w.AvgUs,
		P50Us: w.P50, P90Us: w.P90, P99Us: w.P99, P999Us: w.P999,
		Start: time.UnixMilli(w.Start).UTC(), End: time.UnixMilli(w.End).UTC(),
	})
}

// UnmarshalJSON reads the form MarshalJSON writes; what that form leaves
// out (sum, min, max, panes) stays zero.
func (w *Window) UnmarshalJSON(b []byte) error {
	var j windowJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*w = Window{
		Key:   Key{System: j.System, App: j.App, Group: j.Group, IDC: j.IDC, Method: j.Method},
		Start: j.Start.UnixMilli(), End: j.End.UnixMilli(),
		Count: j.Count, Errors: j.Errors,
		QPS: j.QPS, ErrorRate: j.ErrorRate, AvgUs: j.AvgUs,
		P50: j.P50Us, P90: j.P90Us, P99: j.P99Us, P999: j.P999Us, Keys: 1,
	}
	return nil
}
