package demo

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/tpflow/tpflow/collectors/collect"
	"github.com/tpflow/tpflow/internal/role"
	"github.com/tpflow/tpflow/pipeline/kafka"
)

// StartCollector prepares the demo's log lines of lc and the node
// collector that tails them: the log writer's files in lc.Dir (emptied of
// an earlier run's), a topology file there that labels them, and an agent
// with the tail, batch and node metrics settings of c that follows them
// from the beginning, keeping its offsets in memory and reading no kernel
// log.
func StartCollector(c collect.Config, kcfg kafka.Config, lc LogConfig, start time.Time, s role.Settings) (*LogWriter, *collect.Agent, error) {
	dir, err := filepath.Abs(lc.Dir)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot prepare the demo logs: %w", err)
	}
	lc.Dir = dir
	w, err := NewLogWriter(lc, start)
	if err != nil {
		return nil, nil, err
	}
	topo := filepath.Join(dir, "topology.yaml")
	if err := os.WriteFile(topo, LogTopology(), 0o644); err != nil {
		w.Close()
		return nil, nil, fmt.Errorf("cannot write the demo topology: %w", err)
	}
	c.Sources = []collect.Source{{Name: "demo", Globs: []string{w.Glob()}, Container: collect.ContainerNone}}
	c.Topology = topo
	c.StateFile = ""
	c.Tail.Start = "beginning"
	c.Rediscover = min(c.Rediscover, time.Second)
	c.Metrics.Kmsg = ""
	a, err := collect.New(c, kcfg, s.With("part", "collect"))
	if err != nil {
		w.Close()
		return nil, nil, err
	}
	s.Log().Info("node collector started", "host", a.Host(), "logs", w.Glob(), "topology", topo, "node_metrics", c.MetricsEnabled)
	return w, a, nil
}
