package logtail

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tpflow/tpflow/internal/configtest"
)

func TestConfigFiles(t *testing.T) {
	configtest.Files(t, "testdata/config", DefaultConfig, func(_ string, c Config) error {
		_, err := NewTailer("/var/log/x.log", c, nil, func(Line) error { return nil }, nil)
		return err
	})
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
