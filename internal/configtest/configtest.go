// Package configtest runs a package's configuration test cases: YAML files
// decoded strictly over the package's defaults and validated, as the
// config loader of the tpflow binary does. It is imported by tests only.
package configtest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tpflow/tpflow/internal/config"
)

// Validator is a package Config.
type Validator = config.Validator

// Load decodes the YAML file at path strictly (unknown keys are errors) over
// def, the package's defaults, and validates the result with the loader of
// the tpflow binary, internal/config.
func Load[C Validator](path string, def C) (C, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return def, err
	}
	c := def
	return c, config.Load(path, b, &c)
}

// Files runs the cases in dir: every *.good.yaml must load, and then good
// checks it further; every *.bad.yaml starts with a line
// "# expect: <error text>" and must fail with an error containing that text,
// every problem placed at a line of the file.
func Files[C Validator](t *testing.T, dir string, def func() C, good func(path string, c C) error) {
	t.Helper()
	goods, _ := filepath.Glob(filepath.Join(dir, "*.good.yaml"))
	bads, _ := filepath.Glob(filepath.Join(dir, "*.bad.yaml"))
	if len(goods) == 0 || len(bads) == 0 {
		t.Fatalf("no config cases in %s", dir)
	}
	for _, p := range goods {
		c, err := Load(p, def())
		if err == nil && good != nil {
			err = good(p, c)
		}
		if err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	for _, p := range bads {
		b, _ := os.ReadFile(p)
		first, _, _ := strings.Cut(string(b), "\n")
		want, ok := strings.CutPrefix(first, "# expect: ")
		if !ok {
			t.Fatalf("%s: first line must be '# expect: <error text>'", p)
		}
		_, err := Load(p, def())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", p, err, want)
			continue
		}
		var ce *config.Error
		if err != nil && !errors.As(err, &ce) {
			t.Errorf("%s: %v is not a *config.Error", p, err)
			continue
		}
		for _, is := range ce.Issues {
			if is.Line == 0 {
				t.Errorf("%s: %v has no line", p, is)
			}
		}
	}
}
