package logtail

import (
	"errors"
	"time"

	"github.com/tpflow/tpflow/schemas"
)

// Start positions accepted by Config.Start.
const (
	StartBeginning = "beginning" // read a file without a checkpoint from offset 0
	StartEnd       = "end"       // read only what is appended after the tailer opens it
)

// Config says how a Tailer reads its file.
type Config struct {
	// Start is where a file that exists when the tailer starts and has no
	// checkpoint is read from: beginning or end. Files that appear later
	// (after rotation, or created after start), and files at a path the
	// checkpoints know (rotated while the collector was down), are always
	// read from 0. The collector applies it only at its very first start
	// (no state file) and reads every other file from 0.
	Start string `yaml:"start"`
	// PollInterval is the period of the stat fallback that catches file
	// system events the watcher dropped.
	PollInterval time.Duration `yaml:"poll_interval"`
	// PartialTimeout is how long bytes without a trailing newline wait at
	// the end of the file before they are handed over flagged partial.
	PartialTimeout time.Duration `yaml:"partial_timeout"`
	// RotateWait is how long a file that was renamed or deleted keeps being
	// read after its last growth, because writers reopen the path late. It
	// delays nothing: the new file at the path is read meanwhile.
	RotateWait time.Duration `yaml:"rotate_wait"`
	// MaxLineBytes bounds a line; the rest up to the newline is dropped and
	// the line is flagged truncated.
	MaxLineBytes int `yaml:"max_line_bytes"`
	// ReadBufferBytes is the size of one read from the file.
	ReadBufferBytes int `yaml:"read_buffer_bytes"`
	// MinReadInterval is the least time between two reads woken by file
	// events: a writer's many small writes are read together, at the cost
	// of up to this much latency. 0 reads on every event.
	MinReadInterval time.Duration `yaml:"min_read_interval"`
}

// DefaultConfig returns the defaults of a node collector.
func DefaultConfig() Config {
	return Config{
		Start:           StartEnd,
		PollInterval:    time.Second,
		PartialTimeout:  5 * time.Second,
		RotateWait:      5 * time.Second,
		MaxLineBytes:    256 << 10,
		ReadBufferBytes: 64 << 10,
	}
}

// Validate reports every impossible value as a *schemas.FieldError.
func (c Config) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, schemas.Fieldf(field, format, args...))
	}
	switch c.Start {
	case StartBeginning, StartEnd:
	default:
		add("start", "must be %s or %s, got %q", StartBeginning, StartEnd, c.Start)
	}
	if c.PollInterval <= 0 {
		add("poll_interval", "must be positive, got %s", c.PollInterval)
	}
	if c.PartialTimeout <= 0 {
		add("partial_timeout", "must be positive, got %s", c.PartialTimeout)
	}
	if c.RotateWait < 0 {
		add("rotate_wait", "must not be negative, got %s", c.RotateWait)
	}
	if c.MaxLineBytes < 1 {
		add("max_line_bytes", "must be at least 1, got %d", c.MaxLineBytes)
	}
	if c.MinReadInterval < 0 || c.MinReadInterval > time.Second {
		add("min_read_interval", "must be 0 to 1s, got %s", c.MinReadInterval)
	}
	if c.ReadBufferBytes < 512 {
		add("read_buffer_bytes", "must be at least 512, got %d", c.ReadBufferBytes)
	}
	return errors.Join(errs...)
}
