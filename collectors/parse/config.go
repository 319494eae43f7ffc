package parse

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/tpflow/tpflow/internal/config"
	"github.com/tpflow/tpflow/schemas"
)

// Formats accepted by Config.Format.
const (
	FormatJSON   = "json"
	FormatLogfmt = "logfmt"
	FormatRegex  = "regex"
	FormatNginx  = "nginx"
	FormatApache = "apache"
)

// Config is one parser and mapping definition.
type Config struct {
	// Format is json, logfmt, regex, nginx or apache.
	Format string `yaml:"format"`
	// Pattern is the regular expression (RE2 syntax, named groups become
	// fields) of the regex format; empty for the others.
	Pattern string `yaml:"pattern"`
	// Mapping turns fields into a call.
	Mapping Mapping `yaml:"mapping"`
	// MaxLineBytes bounds a line after partial fragments are joined; longer
	// lines are cut and flagged truncated.
	MaxLineBytes int `yaml:"max_line_bytes"`
	// Multiline joins continuation lines to a first line; off when Start
	// is empty.
	Multiline MultilineConfig `yaml:"multiline"`
}

// MultilineConfig configures a Multiline joiner.
type MultilineConfig struct {
	// Start is a regular expression that matches the first line of a record
	// (for example `^\d{4}-\d{2}-\d{2}`); other lines continue the record.
	Start string `yaml:"start"`
	// Timeout flushes a record when no line arrived for this long.
	Timeout time.Duration `yaml:"timeout"`
	// MaxLines caps the lines of one record; further lines start a new one.
	MaxLines int `yaml:"max_lines"`
}

// DefaultConfig returns the perf-json parser: JSON lines with
// PerfJSONMapping, 1 MiB lines, no multiline joining.
func DefaultConfig() Config {
	return Config{
		Format:       FormatJSON,
		Mapping:      PerfJSONMapping(),
		MaxLineBytes: 1 << 20,
		Multiline:    MultilineConfig{Timeout: time.Second, MaxLines: 500},
	}
}

// PresetConfig returns a named preset: perf-json, nginx or apache.
func PresetConfig(name string) (Config, error) {
	c := DefaultConfig()
	switch name {
	case "perf-json":
	case FormatNginx:
		c.Format = FormatNginx
		c.Mapping = AccessLogMapping("request_time", "s")
	case FormatApache:
		c.Format = FormatApache
		c.Mapping = AccessLogMapping("request_time_us", "us")
	default:
		return Config{}, fmt.Errorf("unknown preset %q (want perf-json, nginx or apache)", name)
	}
	return c, nil
}

// Validate reports every impossible value among c's own keys as a
// *schemas.FieldError; config.Validate also validates the mapping.
func (c Config) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, schemas.Fieldf(field, format, args...))
	}
	switch c.Format {
	case FormatJSON, FormatLogfmt, FormatNginx, FormatApache:
		if c.Pattern != "" {
			add("pattern", "is only used by format regex, not %q", c.Format)
		}
	case FormatRegex:
		if c.Pattern == "" {
			add("pattern", "is required for format regex")
		} else if _, err := NewRegex(c.Pattern); err != nil {
			add("pattern", "%v", err)
		}
	default:
		add("format", "unknown format %q (want json, logfmt, regex, nginx or apache)", c.Format)
	}
	if c.MaxLineBytes < 1024 {
		add("max_line_bytes", "must be at least 1024, got %d", c.MaxLineBytes)
	}
	if c.Multiline.Start != "" {
		if _, err := regexp.Compile(c.Multiline.Start); err != nil {
			add("multiline.start", "cannot compile pattern: %v", err)
		}
		if c.Multiline.Timeout <= 0 {
			add("multiline.timeout", "must be positive, got %s", c.Multiline.Timeout)
		}
		if c.Multiline.MaxLines < 1 {
			add("multiline.max_lines", "must be at least 1, got %d", c.Multiline.MaxLines)
		}
	}
	return errors.Join(errs...)
}

// Validate reports every impossible value as a *schemas.FieldError.
func (m Mapping) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, schemas.Fieldf(field, format, args...))
	}
	if len(m.Method) == 0 {
		add("method", "at least one field is required")
	}
	for i, f := range m.Method {
		if f == "" {
			add(fmt.Sprintf("method[%d]", i), "field name is empty")
		}
	}
	if len(m.Latency) == 0 {
		add("latency", "at least one field is required")
	}
	for i, l := range m.Latency {
		if l.Field == "" {
			add(fmt.Sprintf("latency[%d].field", i), "field name is empty")
		}
		if _, ok := unitToMicros[l.Unit]; !ok {
			add(fmt.Sprintf("latency[%d].unit", i), "unknown unit %q (want ns, us, ms or s)", l.Unit)
		}
	}
	if m.Status != "" && m.ErrorStatus == 0 {
		add("error_status", "must be set when status is (HTTP-style: 500)")
	}
	if m.Timestamp != "" {
		if _, ok := compileTSFormat(m.TimestampFormat); !ok {
			add("timestamp_format", "unknown format %q (want auto, rfc3339, unix_s, unix_ms, unix_us, unix_ns, clf or a Go layout)", m.TimestampFormat)
		}
	}
	return errors.Join(errs...)
}

// NewParser returns the Parser for c.Format; c must be valid.
func NewParser(c Config) (Parser, error) {
	switch c.Format {
	case FormatJSON:
		return JSON{}, nil
	case FormatLogfmt:
		return Logfmt{}, nil
	case FormatRegex:
		return NewRegex(c.Pattern)
	case FormatNginx:
		return NewRegex(PatternNginx)
	case FormatApache:
		return NewRegex(PatternApache)
	}
	return nil, fmt.Errorf("unknown format %q", c.Format)
}

// LineParser parses lines into calls with one Parser and one Mapper. It is
// not safe for concurrent use.
type LineParser struct {
	p   Parser
	m   *Mapper
	rec Record
}

// New validates c and returns a LineParser for it.
func New(c Config) (*LineParser, error) {
	if err := config.Validate(c); err != nil {
		return nil, err
	}
	p, err := NewParser(c)
	if err != nil {
		return nil, err
	}
	m, err := NewMapper(c.Mapping)
	if err != nil {
		return nil, err
	}
	return &LineParser{p: p, m: m}, nil
}

// ParseCall parses line and maps it into c. On error the caller keeps the
// line as an unparsed LogEvent and counts the error by its sentinel.
// ParseCall does not retain line.
func (lp *LineParser) ParseCall(line []byte, c *Call) error {
	if err := lp.p.Parse(line, &lp.rec); err != nil {
		return err
	}
	return lp.m.Map(&lp.rec, c)
}

// ErrorClass returns a short stable name for a parse error, for counters:
// syntax, invalid_utf8, no_match, missing_field, bad_value or other.
func ErrorClass(err error) string {
	switch {
	case errors.Is(err, ErrSyntax):
		return "syntax"
	case errors.Is(err, ErrInvalidUTF8):
		return "invalid_utf8"
	case errors.Is(err, ErrNoMatch):
		return "no_match"
	case errors.Is(err, ErrMissingField):
		return "missing_field"
	case errors.Is(err, ErrBadValue):
		return "bad_value"
	}
	return "other"
}
