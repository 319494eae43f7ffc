// Command gen writes tpflow's Grafana provisioning and dashboards (package
// internal/dashboards) into a directory, deploy/grafana by go generate.
// Files it does not generate are left alone; generated files that are no
// longer produced are removed.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/tpflow/tpflow/internal/dashboards"
)

func main() {
	out := flag.String("out", "deploy/grafana", "directory to write into")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	files, err := dashboards.Files()
	if err != nil {
		return err
	}
	// Remove stale dashboards: every JSON file in dashboards/ is generated.
	old, _ := filepath.Glob(filepath.Join(dir, "dashboards", "*.json"))
	for _, f := range old {
		rel, _ := filepath.Rel(dir, f)
		if _, ok := files[filepath.ToSlash(rel)]; !ok && strings.HasSuffix(f, ".json") {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
	}
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}
