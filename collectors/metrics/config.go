package metrics

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tpflow/tpflow/schemas"
)

// Cgroup layouts accepted by Config.CgroupVersion and returned by
// DetectCgroupVersion.
const (
	CgroupAuto = "auto"
	CgroupV1   = "v1" // legacy or hybrid: per-controller directories
	CgroupV2   = "v2" // unified hierarchy only
)

// Config says where the node's statistics are read from.
type Config struct {
	// CgroupRoot is the cgroup mount point.
	CgroupRoot string `yaml:"cgroup_root"`
	// CgroupVersion is auto, v1 or v2.
	CgroupVersion string `yaml:"cgroup_version"`
	// ProcRoot is the proc file system (a host mount inside a container).
	ProcRoot string `yaml:"proc_root"`
	// Kmsg is the kernel log device; empty disables kernel log reading.
	Kmsg string `yaml:"kmsg"`
	// FileSystems are the mount points whose usage is reported.
	FileSystems []string `yaml:"file_systems"`
	// Interval is the time between readings.
	Interval time.Duration `yaml:"interval"`
}

// DefaultConfig returns the defaults for a node agent reading the host.
func DefaultConfig() Config {
	return Config{
		CgroupRoot:    "/sys/fs/cgroup",
		CgroupVersion: CgroupAuto,
		ProcRoot:      "/proc",
		Kmsg:          "/dev/kmsg",
		FileSystems:   []string{"/"},
		Interval:      10 * time.Second,
	}
}

// Validate reports every impossible value as a *schemas.FieldError.
func (c Config) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, schemas.Fieldf(field, format, args...))
	}
	if !filepath.IsAbs(c.CgroupRoot) {
		add("cgroup_root", "must be an absolute path, got %q", c.CgroupRoot)
	}
	switch c.CgroupVersion {
	case CgroupAuto, CgroupV1, CgroupV2:
	default:
		add("cgroup_version", "unknown version %q (want auto, v1 or v2)", c.CgroupVersion)
	}
	if !filepath.IsAbs(c.ProcRoot) {
		add("proc_root", "must be an absolute path, got %q", c.ProcRoot)
	}
	if c.Kmsg != "" && !filepath.IsAbs(c.Kmsg) {
		add("kmsg", "must be an absolute path or empty, got %q", c.Kmsg)
	}
	for i, p := range c.FileSystems {
		if !filepath.IsAbs(p) {
			add(fmt.Sprintf("file_systems[%d]", i), "must be an absolute path, got %q", p)
		}
	}
	if c.Interval < time.Second {
		add("interval", "must be at least 1s, got %s", c.Interval)
	}
	return errors.Join(errs...)
}

// DetectCgroupVersion tells the layout under root: v2 when root itself is a
// unified hierarchy (it has cgroup.controllers), v1 when it has controller
// directories (a hybrid host's v2 hierarchy at root/unified carries no
// controllers worth reading).
func DetectCgroupVersion(root string) (string, error) {
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		return CgroupV2, nil
	}
	for _, c := range []string{"cpuacct", "cpu,cpuacct", "memory"} {
		if _, err := os.Stat(filepath.Join(root, c)); err == nil {
			return CgroupV1, nil
		}
	}
	return "", fmt.Errorf("cannot tell the cgroup layout under %s: %w", root, ErrNotFound)
}
