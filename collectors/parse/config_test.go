package parse

import (
	"testing"

	"github.com/tpflow/tpflow/internal/configtest"
)

func loadConfig(path string) (Config, error) { return configtest.Load(path, DefaultConfig()) }

func TestConfigFiles(t *testing.T) {
	configtest.Files(t, "testdata/config", DefaultConfig, func(_ string, c Config) error {
		_, err := New(c)
		return err
	})
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
