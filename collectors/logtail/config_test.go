package logtail

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/tpflow/tpflow/schemas"
)

// loadConfig decodes a YAML file strictly over DefaultConfig, as the config
// loader does, and validates it.
func loadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	c := DefaultConfig()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return c, err
	}
	return c, c.Validate()
}

func TestConfigFiles(t *testing.T) {
	good, _ := filepath.Glob("testdata/config/*.good.yaml")
	bad, _ := filepath.Glob("testdata/config/*.bad.yaml")
	if len(good) == 0 || len(bad) == 0 {
		t.Fatal("no config cases")
	}
	for _, p := range good {
		c, err := loadConfig(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		if _, err := NewTailer("/var/log/x.log", c, nil, func(Line) error { return nil }, nil); err != nil {
			t.Errorf("%s: NewTailer: %v", p, err)
		}
	}
	for _, p := range bad {
		b, _ := os.ReadFile(p)
		first, _, _ := strings.Cut(string(b), "\n")
		want, ok := strings.CutPrefix(first, "# expect: ")
		if !ok {
			t.Fatalf("%s: first line must be '# expect: <error text>'", p)
		}
		_, err := loadConfig(p)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", p, err, want)
		}
		var fe *schemas.FieldError
		if err != nil && !strings.Contains(err.Error(), "not found") && !errors.As(err, &fe) {
			t.Errorf("%s: %v is not a *schemas.FieldError", p, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := Config{Start: "middle", ReadBufferBytes: 1, RotateWait: -1}
	err := bad.Validate()
	for _, f := range []string{"start", "poll_interval", "partial_timeout", "rotate_wait", "max_line_bytes", "read_buffer_bytes"} {
		if err == nil || !strings.Contains(err.Error(), f) {
			t.Errorf("no error for %s in %v", f, err)
		}
	}
	if _, err := NewTailer("x", bad, nil, func(Line) error { return nil }, nil); err == nil {
		t.Error("NewTailer accepted a bad config")
	}
}

func TestHandlerErrorStopsRun(t *testing.T) {
	p := filepath.Join(t.TempDir(), "app.log")
	appendFile(t, p, "a\nb\n")
	boom := errors.New("sink closed")
	n := 0
	tl, err := NewTailer(p, testConfig(), nil, func(Line) error { n++; return boom }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := tl.Run(context.Background()); !errors.Is(err, boom) || n != 1 {
		t.Fatalf("Run: %v after %d lines", err, n)
	}
}
