package collect

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/tpflow/tpflow/collectors/logtail"
	"github.com/tpflow/tpflow/collectors/metrics"
	"github.com/tpflow/tpflow/collectors/parse"
	"github.com/tpflow/tpflow/internal/config"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas"
)

// Presets of Source.Preset.
const (
	PresetKubernetes = "kubernetes" // the kubelet's pod logs and /var/log/containers links
	PresetDocker     = "docker"     // Docker's json-file logs
)

// Container wrappers of Source.Container.
const (
	ContainerAuto   = "auto"   // by the file's layout: docker for Docker logs, cri for pod logs, none otherwise
	ContainerDocker = "docker" // Docker json-file lines
	ContainerCRI    = "cri"    // CRI (containerd, CRI-O) lines
	ContainerNone   = "none"   // plain lines
)

// Parsers of Source.Parser besides the parse presets (perf-json, nginx,
// apache).
const (
	ParserNone   = "none"   // lines are kept as logs only
	ParserCustom = "custom" // Source.Parse says how
)

// Config is the collect role's configuration.
type Config struct {
	// Sources are the log files to follow. Empty means one source with the
	// kubernetes preset and the perf-json parser.
	Sources []Source `yaml:"sources"`
	// Topology is a YAML file of rules from namespace, pod and container
	// names and file paths to system, app, group, idc and env (see
	// collectors/topology);
	// empty leaves those labels empty.
	Topology string `yaml:"topology"`
	// Host is the host label; empty means the node's host name.
	Host string `yaml:"host"`
	// StateFile keeps the acknowledged offset of every file across
	// restarts; empty keeps them in memory only.
	StateFile string `yaml:"state_file"`
	// SaveInterval is how often the state file is written.
	SaveInterval time.Duration `yaml:"save_interval"`
	// Rediscover is how often the sources' globs are expanded again.
	Rediscover time.Duration `yaml:"rediscover_interval"`
	// Tail says how files are read.
	Tail logtail.Config `yaml:"tail"`
	// Metrics says where cgroup, /proc and kernel statistics come from;
	// metrics.interval 0 is not allowed, use metrics_enabled.
	Metrics metrics.Config `yaml:"metrics"`
	// MetricsEnabled turns the cgroup, /proc and statfs samples on.
	MetricsEnabled bool `yaml:"metrics_enabled"`
	// Batch says when event batches are cut and how many may wait for
	// Kafka.
	Batch BatchConfig `yaml:"batch"`
	// CallTime is the event time a call may have around the wall clock; a
	// line whose call is outside is kept as a flagged log event only.
	CallTime parse.TimeRange `yaml:"call_time"`
}

// BatchConfig bounds event batches and the produce queue.
type BatchConfig struct {
	// MaxBytes is the byte budget of one message of a batch, encoded and
	// before compression: a record is added only if it keeps the message
	// within it, and a record larger than it is cut. With
	// room for compression's worst case and the record framing it must fit
	// kafka.max_message_bytes (see CheckBudget).
	MaxBytes int `yaml:"max_bytes"`
	// MaxEvents cuts a batch at this many events.
	MaxEvents int `yaml:"max_events"`
	// MaxAge cuts a batch this long after its first event.
	MaxAge time.Duration `yaml:"max_age"`
	// MaxInFlight is how many cut batches may wait for Kafka; when they
	// all wait, reading stops (backpressure).
	MaxInFlight int `yaml:"max_in_flight"`
}

// Source is one kind of log file.
type Source struct {
	// Name names the source in metrics and logs.
	Name string `yaml:"name"`
	// Preset adds the globs and roots of a layout: kubernetes or docker.
	Preset string `yaml:"preset"`
	// Base is where a preset's layout starts ("/" on a node; a host mount
	// inside a container).
	Base string `yaml:"base"`
	// Globs are the files to follow, besides a preset's.
	Globs []string `yaml:"globs"`
	// Roots are the directories files must resolve into (through symbolic
	// links); empty means the fixed prefix of each glob and the preset's.
	Roots []string `yaml:"roots"`
	// Parser is perf-json (default), nginx, apache, none or custom.
	Parser string `yaml:"parser"`
	// Parse is the parser of Parser custom: format, pattern and mapping.
	// Source.Validate validates it, with its defaults, for parser custom
	// only.
	Parse parse.Config `yaml:"parse" config:"novalidate"`
	// Container is auto (default), docker, cri or none.
	Container string `yaml:"container"`
	// Multiline joins continuation lines; off when start is empty.
	Multiline parse.MultilineConfig `yaml:"multiline"`
	// Sample is the fraction (0 to 1] of log lines below WARN that are
	// kept; 0 means 1. Calls are never sampled.
	Sample float64 `yaml:"sample"`
	// MinLevel drops log lines whose level is known and below it: TRACE,
	// DEBUG, INFO, WARN, ERROR or FATAL. Empty keeps all.
	MinLevel string `yaml:"min_level"`
}

// DefaultConfig returns the node agent's defaults.
func DefaultConfig() Config {
	m := metrics.DefaultConfig()
	tail := logtail.DefaultConfig()
	// A writer's many small writes are read together: fewer wake-ups for
	// the node's CPU budget, at most this much more latency than the
	// batch age already adds.
	tail.MinReadInterval = 100 * time.Millisecond
	return Config{
		Sources:        []Source{},
		SaveInterval:   time.Second,
		Rediscover:     10 * time.Second,
		Tail:           tail,
		Metrics:        m,
		MetricsEnabled: true,
		Batch:          BatchConfig{MaxBytes: DefaultBatchBytes, MaxEvents: 10000, MaxAge: 200 * time.Millisecond, MaxInFlight: 4},
		CallTime:       parse.DefaultTimeRange(),
	}
}

// Validate reports every impossible value among the section's own keys as
// a *schemas.FieldError; config.Validate also validates sources, tail,
// metrics and call_time.
func (c Config) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, schemas.Fieldf(field, format, args...))
	}
	names := map[string]int{}
	for i, s := range c.Sources {
		if j, dup := names[s.Name]; dup && s.Name != "" {
			add(fmt.Sprintf("sources[%d].name", i), "%q is also the name of sources[%d]", s.Name, j)
		}
		names[s.Name] = i
	}
	if c.SaveInterval < 10*time.Millisecond {
		add("save_interval", "must be at least 10ms, got %s", c.SaveInterval)
	}
	if c.Rediscover < 100*time.Millisecond {
		add("rediscover_interval", "must be at least 100ms, got %s", c.Rediscover)
	}
	if c.StateFile != "" && !filepath.IsAbs(c.StateFile) {
		add("state_file", "must be an absolute path or empty, got %q", c.StateFile)
	}
	if strings.ContainsAny(c.Host, " \t\n") {
		add("host", "must not contain blanks, got %q", c.Host)
	}
	b := c.Batch
	if b.MaxBytes < 4096 || b.MaxBytes > 64<<20 {
		add("batch.max_bytes", "must be 4096 to 67108864, got %d", b.MaxBytes)
	}
	if b.MaxEvents < 1 {
		add("batch.max_events", "must be at least 1, got %d", b.MaxEvents)
	}
	if b.MaxAge < time.Millisecond || b.MaxAge > time.Minute {
		add("batch.max_age", "must be 1ms to 1m, got %s", b.MaxAge)
	}
	if b.MaxInFlight < 1 || b.MaxInFlight > 1024 {
		add("batch.max_in_flight", "must be 1 to 1024, got %d", b.MaxInFlight)
	}
	return errors.Join(errs...)
}

// DefaultBatchBytes is batch.max_bytes by default: 1 MiB less 16 KiB, so
// that a full batch with zstd's, lz4's or gzip's worst-case expansion and
// its record framing fits the default kafka.max_message_bytes of 1 MiB.
const DefaultBatchBytes = 1<<20 - 16<<10

// recordFraming bounds the bytes a Kafka record adds to its value: key,
// headers, lengths and attributes.
const recordFraming = 1024

// CompressionRoom is the most that compression codec may add to n bytes
// that do not compress (kafka.Compression* names): snappy n/6+32, lz4
// n/255 plus its frame and block headers, zstd n/256 plus its frame, gzip
// 5 bytes per 16 KiB block plus its header; none adds nothing.
func CompressionRoom(codec string, n int) int {
	switch codec {
	case kafka.CompressionSnappy:
		return n/6 + 64
	case kafka.CompressionLZ4:
		return n/255 + n/(64<<10)*4 + 64
	case kafka.CompressionZstd:
		return n/256 + 512
	case kafka.CompressionGzip:
		return n/(16<<10)*5 + 64
	}
	return 0
}

// CheckBudget reports, naming the keys, whether a batch message of
// batch.max_bytes, grown by compression's worst case and record framing,
// can exceed kafka.max_message_bytes, and whether a line of
// tail.max_line_bytes can exceed half the budget (the rest is for the
// events around it).
func (c Config) CheckBudget(k kafka.Config) error {
	var errs []error
	b := c.Batch.MaxBytes
	if need := b + CompressionRoom(k.Compression, b) + recordFraming; need > k.MaxMessageBytes {
		best := b
		for best > 4096 && best+CompressionRoom(k.Compression, best)+recordFraming > k.MaxMessageBytes {
			best -= 1024
		}
		errs = append(errs, schemas.Fieldf("batch.max_bytes",
			"%d plus room for %s compression's worst case and record framing is %d, over kafka.max_message_bytes %d: lower it to at most %d or raise kafka.max_message_bytes",
			b, k.Compression, need, k.MaxMessageBytes, best))
	}
	if c.Tail.MaxLineBytes > b/2 {
		errs = append(errs, schemas.Fieldf("tail.max_line_bytes",
			"%d is over half of batch.max_bytes %d: lower it or raise batch.max_bytes", c.Tail.MaxLineBytes, b))
	}
	return errors.Join(errs...)
}

var levels = map[string]int{"TRACE": 0, "DEBUG": 1, "INFO": 2, "WARN": 3, "ERROR": 4, "FATAL": 5}

// Validate reports every impossible value as a *schemas.FieldError.
func (s Source) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, schemas.Fieldf(field, format, args...))
	}
	if s.Name == "" {
		add("name", "is required")
	}
	switch s.Preset {
	case "", PresetKubernetes, PresetDocker:
	default:
		add("preset", "unknown preset %q (want kubernetes or docker)", s.Preset)
	}
	if s.Preset == "" && len(s.Globs) == 0 {
		add("globs", "is required without a preset")
	}
	if s.Base != "" && !filepath.IsAbs(s.Base) {
		add("base", "must be an absolute path, got %q", s.Base)
	}
	for i, g := range s.Globs {
		if !filepath.IsAbs(g) {
			add(fmt.Sprintf("globs[%d]", i), "must be an absolute path, got %q", g)
		} else if _, err := filepath.Match(g, ""); err != nil {
			add(fmt.Sprintf("globs[%d]", i), "bad pattern %q: %v", g, err)
		}
	}
	for i, r := range s.Roots {
		if !filepath.IsAbs(r) {
			add(fmt.Sprintf("roots[%d]", i), "must be an absolute path, got %q", r)
		}
	}
	switch s.Parser {
	case "", "perf-json", parse.FormatNginx, parse.FormatApache, ParserNone:
		if s.Parse.Format != "" || s.Parse.Pattern != "" {
			add("parse", "is only used with parser custom, not %q", s.Parser)
		}
	case ParserCustom:
		if err := config.Validate(s.parseConfig()); err != nil {
			errs = append(errs, schemas.PrefixField("parse", err))
		}
	default:
		add("parser", "unknown parser %q (want perf-json, nginx, apache, none or custom)", s.Parser)
	}
	switch s.Container {
	case "", ContainerAuto, ContainerDocker, ContainerCRI, ContainerNone:
	default:
		add("container", "unknown container format %q (want auto, docker, cri or none)", s.Container)
	}
	if s.Multiline.Start != "" {
		if _, err := regexp.Compile(s.Multiline.Start); err != nil {
			add("multiline.start", "cannot compile pattern: %v", err)
		}
		if s.Multiline.Timeout < 0 {
			add("multiline.timeout", "must not be negative, got %s", s.Multiline.Timeout)
		}
		if s.Multiline.MaxLines < 0 {
			add("multiline.max_lines", "must not be negative, got %d", s.Multiline.MaxLines)
		}
	}
	if s.Sample < 0 || s.Sample > 1 {
		add("sample", "must be in (0, 1] (0 means 1), got %g", s.Sample)
	}
	if _, ok := levels[strings.ToUpper(s.MinLevel)]; !ok && s.MinLevel != "" {
		add("min_level", "unknown level %q (want TRACE, DEBUG, INFO, WARN, ERROR or FATAL)", s.MinLevel)
	}
	return errors.Join(errs...)
}

// parseConfig returns the parser configuration of the source, or a zero
// Format for parser none.
func (s Source) parseConfig() parse.Config {
	switch s.Parser {
	case ParserNone:
		return parse.Config{}
	case ParserCustom:
		c := s.Parse
		d := parse.DefaultConfig()
		if c.MaxLineBytes == 0 {
			c.MaxLineBytes = d.MaxLineBytes
		}
		return c
	case "":
		return parse.DefaultConfig()
	}
	c, err := parse.PresetConfig(s.Parser)
	if err != nil {
		panic("BUG: agent: unvalidated parser " + s.Parser)
	}
	return c
}

// multiline returns the multiline configuration with defaults filled in.
func (s Source) multiline() parse.MultilineConfig {
	m := s.Multiline
	d := parse.DefaultConfig().Multiline
	if m.Timeout == 0 {
		m.Timeout = d.Timeout
	}
	if m.MaxLines == 0 {
		m.MaxLines = d.MaxLines
	}
	return m
}

// globsRoots returns the source's globs and roots with the preset's added.
func (s Source) globsRoots() (globs, roots []string) {
	base := s.Base
	if base == "" {
		base = "/"
	}
	globs = append(globs, s.Globs...)
	roots = append(roots, s.Roots...)
	switch s.Preset {
	case PresetKubernetes:
		globs = append(globs, logtail.KubernetesGlobs(base)...)
		if len(s.Roots) == 0 {
			roots = append(roots, filepath.Join(base, "var/log"), filepath.Join(base, "var/lib/docker/containers"))
		}
	case PresetDocker:
		globs = append(globs, logtail.DockerGlobs(base)...)
		if len(s.Roots) == 0 {
			roots = append(roots, filepath.Join(base, "var/lib/docker/containers"))
		}
	}
	if len(s.Roots) == 0 {
		for _, g := range s.Globs {
			roots = append(roots, staticPrefix(g))
		}
	}
	return globs, roots
}

// staticPrefix returns the directory part of a glob before its first
// pattern character.
func staticPrefix(glob string) string {
	dir := filepath.Dir(glob)
	for strings.ContainsAny(dir, `*?[\`) {
		dir = filepath.Dir(dir)
	}
	return dir
}
