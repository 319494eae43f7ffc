package parse

import (
	"errors"
	"fmt"
	"time"

	"github.com/tpflow/tpflow/schemas"
)

// Reasons a line that names a call (it has a method and a latency) yields
// no call. Each is a stable counter label and log event flag. The time
// reasons are the aggregator's names for the same faults.
const (
	ReasonNegativeLatency = "negative_latency" // latency below zero
	ReasonLatencyOverflow = "latency_overflow" // beyond float64 (1e400) or beyond 4294967295 µs
	ReasonNotANumber      = "not_a_number"     // latency NaN or ±Inf
	ReasonInvalidLatency  = "invalid_latency"  // latency neither a number nor a numeric string
	ReasonInvalidStatus   = "invalid_status"   // status not a code, or ok not a boolean
	ReasonMethodTooLong   = "method_too_long"  // method longer than MaxMethodBytes
	ReasonUnsafeLabel     = "unsafe_label"     // method, system, app, group or idc with a control character or a backslash (schemas.CheckKeyLabelValue)
	ReasonMissingTime     = "missing_time"     // the mapping names a timestamp field the line lacks
	ReasonInvalidTime     = "invalid_time"     // the timestamp does not parse
	ReasonTooOld          = "too_old"          // before TimeRange.MaxPast of the wall clock
	ReasonTooFarFuture    = "too_far_future"   // after TimeRange.MaxFuture of the wall clock
)

// MaxMethodBytes bounds a call's method name. A longer one is not a
// method but a payload: it would become a key of its own in every
// aggregator and table.
const MaxMethodBytes = 1024

// ErrorReason returns the Reason of err if it is an *Error that has one
// (a line naming a call with a value that cannot be right), else "".
func ErrorReason(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

// TimeRange is the event time a call may have, relative to the wall clock
// of the collector. A call outside it is not emitted (see DESIGN.md).
type TimeRange struct {
	// MaxPast is how far behind the wall clock a call may be.
	MaxPast time.Duration `yaml:"max_past"`
	// MaxFuture is how far ahead of the wall clock a call may be; it must
	// stay below the aggregator's clock skew tolerance.
	MaxFuture time.Duration `yaml:"max_future"`
}

// DefaultTimeRange accepts a week back (a collector catching up after an
// outage reads old files) and five minutes ahead (clock skew between
// nodes; the aggregator refuses more than ten).
func DefaultTimeRange() TimeRange {
	return TimeRange{MaxPast: 7 * 24 * time.Hour, MaxFuture: 5 * time.Minute}
}

// Validate reports every impossible value as a *schemas.FieldError.
func (r TimeRange) Validate() error {
	var errs []error
	if r.MaxPast < time.Minute || r.MaxPast > 366*24*time.Hour {
		errs = append(errs, schemas.Fieldf("max_past", "must be 1m to 8784h (a year), got %s", r.MaxPast))
	}
	if r.MaxFuture < time.Second || r.MaxFuture > time.Hour {
		errs = append(errs, schemas.Fieldf("max_future", "must be 1s to 1h, got %s", r.MaxFuture))
	}
	return errors.Join(errs...)
}

// Check returns "" when tsMs (Unix milliseconds) is within the range
// around nowMs, else ReasonTooOld or ReasonTooFarFuture. It saturates:
// no int64 input overflows.
func (r TimeRange) Check(tsMs, nowMs int64) string {
	if tsMs < nowMs && uint64(nowMs-tsMs) > uint64(r.MaxPast.Milliseconds()) {
		return ReasonTooOld
	}
	if tsMs > nowMs && uint64(tsMs-nowMs) > uint64(r.MaxFuture.Milliseconds()) {
		return ReasonTooFarFuture
	}
	return ""
}

// String implements fmt.Stringer.
func (r TimeRange) String() string { return fmt.Sprintf("[now-%s, now+%s]", r.MaxPast, r.MaxFuture) }
