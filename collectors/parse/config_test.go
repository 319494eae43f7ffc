package parse

import (
	"bytes"
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
		if _, err := New(c); err != nil {
			t.Errorf("%s: New: %v", p, err)
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
	// The regex example from the file parses a real line.
	c, err := loadConfig("testdata/config/java-regex.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	lp, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	var call Call
	if err := lp.ParseCall([]byte("2026-11-27 10:00:00.123 [http-nio-8080-exec-1] OrderService.create took 37 ms status=503"), &call); err != nil {
		t.Fatal(err)
	}
	if call.Method != "OrderService.create" || call.LatencyUS != 37000 || call.Status != 503 || call.OK || call.TS != 1795773600123 {
		t.Errorf("got %+v", call)
	}
}
