package aggregator

import (
	"errors"
	"fmt"
	"time"

	"github.com/tpflow/tpflow/schemas"
)

// Config configures an Engine. Every field has a default in DefaultConfig.
type Config struct {
	// Pane is the length of a tumbling pane, the unit of emission.
	Pane time.Duration `yaml:"pane"`
	// Windows are the sliding windows kept per key, each a multiple of Pane
	// and sliding by one pane.
	Windows []time.Duration `yaml:"windows"`
	// AllowedLateness is subtracted from the highest event time seen on a
	// partition to give its watermark.
	AllowedLateness time.Duration `yaml:"allowed_lateness"`
	// Grace is how long after a pane was finalised a late event still
	// produces a corrected pane (same identity, higher version). Later
	// events go to the late output (FlushResult.Late).
	Grace time.Duration `yaml:"grace"`
	// FutureTolerance is how far ahead of the wall clock an event may be;
	// later events are rejected (too_far_future). It must be smaller than
	// AllowedLateness, so that no event can push a watermark past the wall
	// clock and make a correct event of another source late. 0 picks a
	// third of AllowedLateness, at most 10s.
	FutureTolerance time.Duration `yaml:"future_tolerance"`
	// MaxEventAge is how far behind the wall clock an event may be; older
	// events are rejected (too_old): no path (pane, correction, late
	// output) takes them. It must exceed AllowedLateness + Grace.
	MaxEventAge time.Duration `yaml:"max_event_age"`
	// IdleTimeout is how long a partition that is caught up (its last
	// message read is its high-water mark) may send nothing before it stops
	// holding the watermark back. When every partition is idle the watermark
	// follows the wall clock.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxKeys caps the live keys; events of further keys fold into the
	// method "__other__" of their app and are counted.
	MaxKeys int `yaml:"max_keys"`
	// Compression is the t-digest compression of emitted pane digests.
	Compression float64 `yaml:"compression"`
	// WindowCompression is the t-digest compression of the copies of final
	// panes kept in memory for sliding windows and corrections; lower than
	// Compression to bound memory (see DESIGN.md for the measured cost).
	WindowCompression float64 `yaml:"window_compression"`
	// RawBufferLimit is the number of raw latencies an open pane buffers
	// before it switches to a live digest.
	RawBufferLimit int `yaml:"raw_buffer_limit"`
	// Rollup is the rollup bucket: 5m merges every key's final panes into
	// one rollup pane per 5 minutes (stored in call_rollups, read for
	// ranges of hours and days); 0 turns rollups off.
	Rollup time.Duration `yaml:"rollup"`
	// RollupCompression is the t-digest compression of rollup panes.
	RollupCompression float64 `yaml:"rollup_compression"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Pane:              10 * time.Second,
		Windows:           []time.Duration{time.Minute, 5 * time.Minute},
		AllowedLateness:   30 * time.Second,
		Grace:             5 * time.Minute,
		IdleTimeout:       30 * time.Second,
		MaxEventAge:       7 * 24 * time.Hour,
		MaxKeys:           50000,
		Compression:       100,
		WindowCompression: 50,
		RawBufferLimit:    4096,
		Rollup:            RollupLength,
		RollupCompression: 50,
	}
}

// Validate reports every impossible value as a *schemas.FieldError.
func (c Config) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, schemas.Fieldf(field, format, args...))
	}
	if c.Pane < time.Second {
		add("pane", "must be at least 1s, got %s", c.Pane)
	} else if c.Pane%time.Second != 0 {
		add("pane", "must be a whole number of seconds, got %s", c.Pane)
	}
	if len(c.Windows) == 0 {
		add("windows", "at least one window is required")
	}
	for i, w := range c.Windows {
		f := fmt.Sprintf("windows[%d]", i)
		switch {
		case c.Pane > 0 && w < c.Pane:
			add(f, "window %s is shorter than pane %s", w, c.Pane)
		case c.Pane > 0 && w%c.Pane != 0:
			add(f, "window %s is not a multiple of pane %s", w, c.Pane)
		case c.Pane > 0 && w/c.Pane > 360:
			add(f, "window %s spans %d panes; at most 360 are kept", w, w/c.Pane)
		}
	}
	if c.AllowedLateness < 0 {
		add("allowed_lateness", "must not be negative, got %s", c.AllowedLateness)
	}
	if c.Grace < 0 {
		add("grace", "must not be negative, got %s", c.Grace)
	}
	switch {
	case c.FutureTolerance < 0:
		add("future_tolerance", "must not be negative, got %s", c.FutureTolerance)
	case c.FutureTolerance > 0 && c.FutureTolerance >= c.AllowedLateness:
		add("future_tolerance", "must be smaller than allowed_lateness (%s), got %s: an event that far ahead would make correct events of other sources late", c.AllowedLateness, c.FutureTolerance)
	}
	if c.MaxEventAge <= c.AllowedLateness+c.Grace {
		add("max_event_age", "must exceed allowed_lateness + grace (%s), got %s", c.AllowedLateness+c.Grace, c.MaxEventAge)
	}
	if c.IdleTimeout <= 0 {
		add("idle_timeout", "must be positive, got %s", c.IdleTimeout)
	}
	if c.MaxKeys < 1 {
		add("max_keys", "must be at least 1, got %d", c.MaxKeys)
	}
	if c.Compression < 20 || c.Compression > 5000 {
		add("compression", "must be between 20 and 5000, got %g", c.Compression)
	}
	if c.WindowCompression < 20 || c.WindowCompression > c.Compression {
		add("window_compression", "must be between 20 and compression (%g), got %g", c.Compression, c.WindowCompression)
	}
	if c.RawBufferLimit < 0 {
		add("raw_buffer_limit", "must not be negative, got %d", c.RawBufferLimit)
	}
	switch {
	case c.Rollup != 0 && c.Rollup != RollupLength:
		add("rollup", "must be %s (the length call_rollups' readers expect) or 0 (off), got %s", RollupLength, c.Rollup)
	case c.Rollup != 0 && c.Pane >= time.Second && c.Rollup%c.Pane != 0:
		add("rollup", "the pane %s does not divide the rollup %s; pick a pane that does, or set rollup: 0", c.Pane, c.Rollup)
	}
	if c.Rollup != 0 && (c.RollupCompression < 20 || c.RollupCompression > 5000) {
		add("rollup_compression", "must be between 20 and 5000, got %g", c.RollupCompression)
	}
	return errors.Join(errs...)
}
