package report

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/schemas"
)

// MaxRange is the longest time range a query may cover.
const MaxRange = 31 * 24 * time.Hour

// MaxPoints bounds the buckets of one series: (to − from) / step.
const MaxPoints = 10000

// MaxLabelLen bounds a label value in a selector, in bytes.
const MaxLabelLen = 256

// ErrBadRequest marks an error in what a caller asked (a selector, a range,
// a level); the API answers it with 400 and the CLI as a usage error.
var ErrBadRequest = errors.New("bad request")

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
}

// Levels are the labels a capacity report nests by, outermost first: the
// key labels without method.
var Levels = schemas.KeyLabelNames(4)

// ParseLevel checks a --by or by= value and returns its depth in Levels
// (0 for system).
func ParseLevel(s string) (int, error) {
	for i, l := range Levels {
		if s == l {
			return i, nil
		}
	}
	return 0, badRequest("by: %q is not a level; use one of %s", s, strings.Join(Levels, ", "))
}

// CheckLabel reports whether v may be a label value in a selector: valid
// UTF-8, at most MaxLabelLen bytes, not empty and without control
// characters. Quotes, backslashes and SQL are valid: values are bound as
// query arguments, never spliced into SQL.
func CheckLabel(name, v string) error {
	switch {
	case v == "":
		return badRequest("%s: empty value; leave the parameter out to match every %s", name, name)
	case len(v) > MaxLabelLen:
		return badRequest("%s: value is %d bytes long, more than %d", name, len(v), MaxLabelLen)
	case !utf8.ValidString(v):
		return badRequest("%s: value is not valid UTF-8", name)
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return badRequest("%s: value holds control character %U", name, r)
		}
	}
	return nil
}

// SelectorFrom builds a selector from label values by name (system, app,
// group, idc, method); names absent or mapped to "" match every value.
func SelectorFrom(get func(name string) (string, bool), withMethod bool) (clickhouse.Selector, error) {
	var s clickhouse.Selector
	names := Levels
	if withMethod {
		names = schemas.KeyLabelNames(-1)
	}
	for _, name := range names {
		v, ok := get(name)
		if !ok {
			continue
		}
		if err := CheckLabel(name, v); err != nil {
			return s, err
		}
		s.Set(name, v)
	}
	return s, nil
}

// ParseTime reads a time as the API and the CLI accept it: RFC 3339
// (2026-11-27T08:00:00Z), a date (2026-11-27, midnight UTC), a date and
// minute in UTC (2026-11-27T08:00 or "2026-11-27 08:00"), Unix seconds,
// "now", or "now" minus a duration (now-24h, now-90m).
func ParseTime(name, s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "now" {
		return now, nil
	}
	if rest, ok := strings.CutPrefix(s, "now-"); ok {
		d, err := time.ParseDuration(rest)
		if err != nil || d < 0 {
			return time.Time{}, badRequest("%s: cannot parse %q: after now- comes a duration such as 24h", name, s)
		}
		return now.Add(-d), nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && len(s) >= 9 {
		if n < 0 || n > 4102444800 { // 2100-01-01, inside DateTime's range
			return time.Time{}, badRequest("%s: Unix time %d is out of range", name, n)
		}
		return time.Unix(n, 0).UTC(), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			if t.Year() < 1971 || t.Year() >= 2100 {
				return time.Time{}, badRequest("%s: %s is out of range (1971 to 2099)", name, s)
			}
			return t.UTC(), nil
		}
	}
	return time.Time{}, badRequest("%s: cannot parse %q as a time; use RFC 3339 (2026-11-27T08:00:00Z), a date (2026-11-27), Unix seconds, now or now-24h", name, s)
}

// ParseRange reads from and to ("" takes the default: the last def before
// now) and checks that from is before to and the range at most MaxRange.
func ParseRange(from, to string, def time.Duration, now time.Time) (time.Time, time.Time, error) {
	t1 := now
	if to != "" {
		var err error
		if t1, err = ParseTime("to", to, now); err != nil {
			return time.Time{}, time.Time{}, err
		}
	}
	t0 := t1.Add(-def)
	if from != "" {
		var err error
		if t0, err = ParseTime("from", from, now); err != nil {
			return time.Time{}, time.Time{}, err
		}
	}
	t0, t1 = t0.Truncate(time.Second), t1.Truncate(time.Second)
	if !t0.Before(t1) {
		return time.Time{}, time.Time{}, badRequest("from %s is not before to %s", t0.Format(time.RFC3339), t1.Format(time.RFC3339))
	}
	if t1.Sub(t0) > MaxRange {
		return time.Time{}, time.Time{}, badRequest("range %s is longer than %s", t1.Sub(t0), MaxRange)
	}
	return t0, t1, nil
}

// ParseQuantiles reads a comma-separated list of levels in (0, 1], such as
// 0.5,0.99, or percent-style names tp50, tp99, tp999.
func ParseQuantiles(s string) ([]float64, error) {
	var out []float64
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		var q float64
		if rest, ok := strings.CutPrefix(strings.ToLower(p), "tp"); ok && rest != "" {
			n, err := strconv.ParseUint(rest, 10, 32)
			if err != nil {
				return nil, badRequest("q: cannot parse %q (use 0.99 or tp99)", p)
			}
			// tp99 → 0.99, tp999 → 0.999, tp50 → 0.5.
			q = float64(n) / pow10(len(rest))
		} else {
			var err error
			if q, err = strconv.ParseFloat(p, 64); err != nil {
				return nil, badRequest("q: cannot parse %q (use 0.99 or tp99)", p)
			}
		}
		if !(q > 0 && q <= 1) {
			return nil, badRequest("q: %s is outside (0, 1]", p)
		}
		out = append(out, q)
	}
	if len(out) > 8 {
		return nil, badRequest("q: at most 8 quantiles, got %d", len(out))
	}
	return out, nil
}

func pow10(n int) float64 {
	f := 1.0
	for range n {
		f *= 10
	}
	return f
}

// ParseStep reads a step (a duration of whole seconds, at least 1s) and
// checks that [from, to) holds at most MaxPoints of them; "" means one
// bucket over the whole range (0).
func ParseStep(s string, from, to time.Time) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		if n, err2 := strconv.ParseUint(s, 10, 32); err2 == nil {
			d = time.Duration(n) * time.Second
		} else {
			return 0, badRequest("step: cannot parse %q as a duration (for example 1m)", s)
		}
	}
	if d < time.Second || d%time.Second != 0 {
		return 0, badRequest("step: %s must be a whole number of seconds, at least 1s", s)
	}
	if n := (to.Sub(from) + d - 1) / d; n > MaxPoints {
		return 0, badRequest("step: %s makes %d points over the range, more than %d", s, n, MaxPoints)
	}
	return d, nil
}
