package parse

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tpflow/tpflow/schemas"
)

// Call is one method call taken from a log line: what the collect role
// encodes as a CallEvent. Empty label strings mean the line did not carry
// them; the role fills them from the topology.
type Call struct {
	TS        int64  // event time, Unix milliseconds; valid only when HasTS
	HasTS     bool   // the line carried a valid time (1970-01-01T00:00:00Z is TS 0 with HasTS)
	Method    string // application method, e.g. "CartService.add"
	LatencyUS uint32 // latency in microseconds, saturated at math.MaxUint32
	Status    uint32 // application or HTTP-style status code, 0 if unknown
	OK        bool
	System    string
	App       string
	Group     string
	IDC       string
}

// LatencyField names a field holding a latency and its unit.
type LatencyField struct {
	Field string `yaml:"field"`
	// Unit is one of ns, us, ms, s.
	Unit string `yaml:"unit"`
}

// Mapping says which fields of a Record make a Call.
type Mapping struct {
	// Method lists the fields whose values, joined by a blank, are the
	// method (for access logs: method and path).
	Method []string `yaml:"method"`
	// Latency lists candidate latency fields; the first present one wins.
	Latency []LatencyField `yaml:"latency"`
	// Status is the field holding a numeric status code ("" for none).
	Status string `yaml:"status"`
	// OK is the field holding a boolean success flag ("" for none). When
	// the line has it, it decides OK; otherwise Status >= ErrorStatus means
	// failure; a line with neither is OK.
	OK string `yaml:"ok"`
	// ErrorStatus is the lowest status code that counts as a failure.
	ErrorStatus uint32 `yaml:"error_status"`
	// Timestamp is the field holding the event time; a line without it is
	// refused (ReasonMissingTime). Empty means lines carry no time: Call.HasTS
	// stays false for the caller to fill with the container runtime's time
	// or the arrival time.
	Timestamp string `yaml:"timestamp"`
	// TimestampFormat is one of auto (RFC 3339 text, or a Unix number whose
	// unit is guessed from its magnitude), rfc3339, unix_s, unix_ms,
	// unix_us, unix_ns, clf (02/Jan/2006:15:04:05 -0700) or a Go time
	// layout containing "2006".
	TimestampFormat string `yaml:"timestamp_format"`
	// System, App, Group and IDC name fields copied to the Call's labels
	// when the line carries them ("" for never).
	System string `yaml:"system"`
	App    string `yaml:"app"`
	Group  string `yaml:"group"`
	IDC    string `yaml:"idc"`
}

// PerfJSONMapping is the mapping of the perf-json format:
//
//	{"ts":"2026-11-27T10:00:00.123Z","app":"cart","method":"CartService.add","latency_ms":12.5,"ok":true}
//
// ts may also be Unix milliseconds, latency_us may replace latency_ms,
// status may carry an HTTP-style code, and system, group and idc are read
// when present.
func PerfJSONMapping() Mapping {
	return Mapping{
		Method:          []string{"method"},
		Latency:         []LatencyField{{Field: "latency_ms", Unit: "ms"}, {Field: "latency_us", Unit: "us"}},
		Status:          "status",
		OK:              "ok",
		ErrorStatus:     500,
		Timestamp:       "ts",
		TimestampFormat: "auto",
		System:          "system",
		App:             "app",
		Group:           "group",
		IDC:             "idc",
	}
}

// AccessLogMapping is the mapping of the nginx and Apache presets: the
// method is "GET /path", the status decides OK, time is $time_local.
func AccessLogMapping(latencyField, unit string) Mapping {
	return Mapping{
		Method:          []string{"method", "path"},
		Latency:         []LatencyField{{Field: latencyField, Unit: unit}},
		Status:          "status",
		ErrorStatus:     500,
		Timestamp:       "time",
		TimestampFormat: "clf",
	}
}

var unitToMicros = map[string]float64{"ns": 1e-3, "us": 1, "ms": 1e3, "s": 1e6}

// tsFormat is a compiled TimestampFormat.
type tsFormat struct {
	kind   string // auto, rfc3339, unix, layout
	scale  int64  // nanoseconds per unit for unix
	layout string
}

func compileTSFormat(f string) (tsFormat, bool) {
	switch f {
	case "auto", "rfc3339":
		return tsFormat{kind: f}, true
	case "unix_s":
		return tsFormat{kind: "unix", scale: 1e9}, true
	case "unix_ms":
		return tsFormat{kind: "unix", scale: 1e6}, true
	case "unix_us":
		return tsFormat{kind: "unix", scale: 1e3}, true
	case "unix_ns":
		return tsFormat{kind: "unix", scale: 1}, true
	case "clf":
		return tsFormat{kind: "layout", layout: TimeCLF}, true
	}
	if strings.Contains(f, "2006") {
		return tsFormat{kind: "layout", layout: f}, true
	}
	return tsFormat{}, false
}

// Mapper turns Records into Calls. It interns method and label strings so
// that repeated values do not allocate. A Mapper is not safe for concurrent
// use; use one per goroutine.
type Mapper struct {
	m       Mapping
	units   []float64
	ts      tsFormat
	intern  map[string]string
	scratch []byte
}

// maxInterned bounds the intern table; when full it is emptied, so a line
// with ever-new values costs an allocation but never unbounded memory.
const maxInterned = 4096

// NewMapper checks m and returns a Mapper for it.
func NewMapper(m Mapping) (*Mapper, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	x := &Mapper{m: m, intern: make(map[string]string)}
	for _, l := range m.Latency {
		x.units = append(x.units, unitToMicros[l.Unit])
	}
	x.ts, _ = compileTSFormat(m.TimestampFormat)
	return x, nil
}

func mapErr(err error, detail string) error {
	return &Error{Format: "mapping", Offset: -1, Err: err, Detail: detail}
}

// badCall is the error of a line that names a call (it has a method and a
// latency field) with a value that cannot be right; reason says which.
func badCall(err error, reason, detail string) error {
	return &Error{Format: "mapping", Offset: -1, Err: err, Detail: detail, Reason: reason}
}

func (x *Mapper) str(b []byte) string {
	if s, ok := x.intern[string(b)]; ok {
		return s
	}
	if len(x.intern) >= maxInterned {
		clear(x.intern)
	}
	s := string(b)
	x.intern[s] = s
	return s
}

// Map fills c from r or returns an *Error wrapping ErrMissingField or
// ErrBadValue. c is overwritten entirely.
func (x *Mapper) Map(r *Record, c *Call) error {
	*c = Call{}
	m := &x.m
	// Method.
	if len(m.Method) == 1 {
		f, ok := r.Get(m.Method[0])
		if !ok || len(f.Value) == 0 {
			return mapErr(ErrMissingField, "no method field "+strconv.Quote(m.Method[0]))
		}
		c.Method = x.str(f.Value)
	} else {
		x.scratch = x.scratch[:0]
		for i, name := range m.Method {
			f, ok := r.Get(name)
			if !ok {
				return mapErr(ErrMissingField, "no method field "+strconv.Quote(name))
			}
			if i > 0 {
				x.scratch = append(x.scratch, ' ')
			}
			x.scratch = append(x.scratch, f.Value...)
		}
		c.Method = x.str(x.scratch)
	}
	// Latency.
	found := false
	for i, l := range m.Latency {
		f, ok := r.Get(l.Field)
		if !ok {
			continue
		}
		if len(c.Method) > MaxMethodBytes {
			return badCall(ErrBadValue, ReasonMethodTooLong, "method is "+strconv.Itoa(len(c.Method))+" bytes, limit "+strconv.Itoa(MaxMethodBytes))
		}
		v, st := readFloat(f)
		switch {
		case st == numNaN:
			return badCall(ErrBadValue, ReasonNotANumber, "latency field "+strconv.Quote(l.Field)+" is NaN or infinite")
		case st == numOverflow:
			return badCall(ErrBadValue, ReasonLatencyOverflow, "latency field "+strconv.Quote(l.Field)+" overflows a float64")
		case st != numOK:
			return badCall(ErrBadValue, ReasonInvalidLatency, "latency field "+strconv.Quote(l.Field)+" is not a number")
		case v < 0:
			return badCall(ErrBadValue, ReasonNegativeLatency, "latency field "+strconv.Quote(l.Field)+" is negative")
		}
		us := math.Round(v * x.units[i])
		if us > math.MaxUint32 {
			// A call cannot last 71 minutes in a µs uint32: saturating
			// would put a made-up value into the tail percentiles.
			return badCall(ErrBadValue, ReasonLatencyOverflow, "latency field "+strconv.Quote(l.Field)+" exceeds 4294967295 µs")
		}
		c.LatencyUS = uint32(us)
		found = true
		break
	}
	if !found {
		return mapErr(ErrMissingField, "no latency field")
	}
	// Status and ok.
	c.OK = true
	if m.Status != "" {
		if f, ok := r.Get(m.Status); ok && f.Kind != KindNull {
			n, ok := parseUint(f.Value)
			if !ok || n > math.MaxUint32 {
				return badCall(ErrBadValue, ReasonInvalidStatus, "status field "+strconv.Quote(m.Status)+" is not a status code")
			}
			c.Status = uint32(n)
			c.OK = c.Status < m.ErrorStatus
		}
	}
	if m.OK != "" {
		if f, ok := r.Get(m.OK); ok && f.Kind != KindNull {
			b, ok := parseBool(f.Value)
			if !ok {
				return badCall(ErrBadValue, ReasonInvalidStatus, "ok field "+strconv.Quote(m.OK)+" is not a boolean")
			}
			c.OK = b
		}
	}
	// Timestamp.
	if m.Timestamp != "" {
		f, ok := r.Get(m.Timestamp)
		if !ok || f.Kind == KindNull {
			return badCall(ErrMissingField, ReasonMissingTime, "no timestamp field "+strconv.Quote(m.Timestamp))
		}
		ts, ok := x.parseTS(f)
		if !ok {
			return badCall(ErrBadValue, ReasonInvalidTime, "timestamp field "+strconv.Quote(m.Timestamp)+" does not match format "+strconv.Quote(m.TimestampFormat))
		}
		c.TS, c.HasTS = ts, true
	}
	// Labels.
	c.System = x.label(r, m.System)
	c.App = x.label(r, m.App)
	c.Group = x.label(r, m.Group)
	c.IDC = x.label(r, m.IDC)
	for _, l := range [...]struct{ name, v string }{
		{schemas.LabelMethod, c.Method}, {schemas.LabelSystem, c.System}, {schemas.LabelApp, c.App}, {schemas.LabelGroup, c.Group}, {schemas.LabelIDC, c.IDC},
	} {
		if err := schemas.CheckKeyLabelValue(l.v); err != nil {
			return badCall(ErrBadValue, ReasonUnsafeLabel, l.name+" "+strconv.Quote(l.v)+": "+err.Error())
		}
	}
	return nil
}

func (x *Mapper) label(r *Record, name string) string {
	if name == "" {
		return ""
	}
	f, ok := r.Get(name)
	if !ok || f.Kind == KindRaw || f.Kind == KindNull {
		return ""
	}
	return x.str(f.Value)
}

func (x *Mapper) parseTS(f Field) (int64, bool) {
	switch x.ts.kind {
	case "auto":
		if f.Kind == KindNumber {
			return unixAuto(f.Value)
		}
		if t, ok := parseRFC3339(f.Value); ok {
			return t, true
		}
		return unixAuto(f.Value)
	case "rfc3339":
		return parseRFC3339(f.Value)
	case "unix":
		v, ok := parseFloat(f)
		if !ok {
			return 0, false
		}
		ms := math.Round(v * float64(x.ts.scale) / 1e6)
		if math.IsNaN(ms) || math.Abs(ms) > 9e15 {
			return 0, false
		}
		return int64(ms), true
	default:
		t, err := time.Parse(x.ts.layout, string(f.Value))
		if err != nil {
			return 0, false
		}
		return t.UnixMilli(), true
	}
}

// unixAuto reads a Unix time whose unit is guessed from its magnitude:
// seconds below 1e11 (until year 5138), milliseconds below 1e14,
// microseconds below 1e17, nanoseconds above.
func unixAuto(b []byte) (int64, bool) {
	v, ok := parseFloat(Field{Value: b, Kind: KindNumber})
	if !ok || v < 0 || math.IsNaN(v) || v > 9e18 {
		return 0, false
	}
	switch {
	case v < 1e11:
		return int64(math.Round(v * 1e3)), true
	case v < 1e14:
		return int64(v), true
	case v < 1e17:
		return int64(v / 1e3), true
	default:
		return int64(v / 1e6), true
	}
}

// numStatus says why readFloat could not return a finite number.
type numStatus uint8

const (
	numOK       numStatus = iota
	numSyntax             // not a number, or not a number kind
	numNaN                // NaN or ±Inf written out
	numOverflow           // a finite literal beyond float64, such as 1e400
)

func parseFloat(f Field) (float64, bool) {
	v, st := readFloat(f)
	return v, st == numOK
}

// readFloat reads a finite float64 from a number or string field.
func readFloat(f Field) (float64, numStatus) {
	if f.Kind != KindNumber && f.Kind != KindString {
		return 0, numSyntax
	}
	b := f.Value
	if n, ok := parseUint(b); ok && n < 1<<53 {
		return float64(n), numOK
	}
	if len(b) == 0 || len(b) > 64 {
		return 0, numSyntax
	}
	var tmp [64]byte
	v, err := strconv.ParseFloat(string(append(tmp[:0], b...)), 64)
	switch {
	case err != nil && errors.Is(err, strconv.ErrRange) && math.IsInf(v, 0):
		return 0, numOverflow
	case err != nil:
		return 0, numSyntax
	case math.IsNaN(v) || math.IsInf(v, 0):
		return 0, numNaN
	}
	return v, numOK
}

// parseUint reads a decimal integer of at most 19 digits.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

func parseBool(b []byte) (bool, bool) {
	switch string(b) {
	case "true", "TRUE", "True", "1", "yes", "ok", "OK":
		return true, true
	case "false", "FALSE", "False", "0", "no":
		return false, true
	}
	return false, false
}

// parseRFC3339 reads RFC 3339 time into Unix milliseconds. Any year 0000
// to 9999 parses: whether a time is plausible is TimeRange's business.
func parseRFC3339(b []byte) (int64, bool) {
	sec, frac, ok := parseRFC3339Parts(b)
	if !ok {
		return 0, false
	}
	return sec*1000 + int64(frac/1e6), true
}

// parseRFC3339Nano reads RFC 3339 time (fraction optional, "Z" or ±hh:mm)
// into Unix nanoseconds without allocating. Years are 1678 to 2261, the
// range of int64 nanoseconds.
func parseRFC3339Nano(b []byte) (int64, bool) {
	sec, frac, ok := parseRFC3339Parts(b)
	// time.Unix(0, math.MinInt64) is in 1677, MaxInt64 in 2262.
	if !ok || sec < -9223372036 || sec > 9223372035 {
		return 0, false
	}
	return sec*1e9 + int64(frac), true
}

// parseRFC3339Parts reads RFC 3339 time into Unix seconds and nanoseconds.
func parseRFC3339Parts(b []byte) (sec int64, nsec int, ok bool) {
	// 2006-01-02T15:04:05[.frac](Z|±hh:mm)
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't' && b[10] != ' ') || b[13] != ':' || b[16] != ':' {
		return 0, 0, false
	}
	num := func(s []byte) (int, bool) {
		n := 0
		for _, c := range s {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	year, ok1 := num(b[0:4])
	mon, ok2 := num(b[5:7])
	day, ok3 := num(b[8:10])
	hh, ok4 := num(b[11:13])
	mm, ok5 := num(b[14:16])
	ss, ok6 := num(b[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || mon < 1 || mon > 12 || day < 1 || day > 31 || hh > 23 || mm > 59 || ss > 60 {
		return 0, 0, false
	}
	i := 19
	frac := 0
	if i < len(b) && (b[i] == '.' || b[i] == ',') {
		i++
		digits := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if digits < 9 {
				frac = frac*10 + int(b[i]-'0')
			}
			digits++
			i++
		}
		if digits == 0 {
			return 0, 0, false
		}
		for d := digits; d < 9; d++ {
			frac *= 10
		}
	}
	if i >= len(b) {
		return 0, 0, false
	}
	offset := 0
	switch b[i] {
	case 'Z', 'z':
		i++
	case '+', '-':
		if len(b)-i != 6 || b[i+3] != ':' {
			return 0, 0, false
		}
		oh, ok1 := num(b[i+1 : i+3])
		om, ok2 := num(b[i+4 : i+6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return 0, 0, false
		}
		offset = oh*3600 + om*60
		if b[i] == '-' {
			offset = -offset
		}
		i += 6
	default:
		return 0, 0, false
	}
	if i != len(b) {
		return 0, 0, false
	}
	t := time.Date(year, time.Month(mon), day, hh, mm, ss, 0, time.UTC)
	if t.Day() != day {
		return 0, 0, false // e.g. February 30
	}
	return t.Unix() - int64(offset), frac, true
}
