package report

import (
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
	o := Config{MaxConcurrent: 2, Timeout: 7 * time.Second, MaxMemoryUsage: 64 << 20}.Options()
	if o.MaxConcurrent != 2 || o.Timeout != 7*time.Second || o.Limits.MaxExecutionTime != 7*time.Second || o.Limits.MaxMemoryUsage != 64<<20 {
		t.Errorf("Options = %+v", o)
	}
	for _, c := range []struct {
		c    Config
		want string
	}{
		{Config{MaxConcurrent: 0, Timeout: time.Second, MaxMemoryUsage: 1 << 20}, "max_concurrent: must be between 1 and 10000, got 0"},
		{Config{MaxConcurrent: 1, Timeout: 1500 * time.Millisecond, MaxMemoryUsage: 1 << 20}, "timeout: must be whole seconds"},
		{Config{MaxConcurrent: 1, Timeout: 2 * time.Hour, MaxMemoryUsage: 1 << 20}, "timeout: must be whole seconds between 1s and 1h, got 2h0m0s"},
		{Config{MaxConcurrent: 1, Timeout: time.Second, MaxMemoryUsage: 1000}, "max_memory_usage: must be at least 1048576 bytes, got 1000"},
	} {
		if err := c.c.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.c, err, c.want)
		}
	}
}
