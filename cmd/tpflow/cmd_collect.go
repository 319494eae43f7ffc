package main

import (
	"context"
	"flag"

	"github.com/tpflow/tpflow/collectors/collect"
)

func collectCommand() *command {
	var (
		host, stateFile, topo, start string
	)
	return &command{
		name:    "collect",
		summary: "tail container logs and read cgroup, /proc and kmsg on this node; produce to Kafka",
		help: `Runs the node agent: discovers the log files of collect.sources (globs and
the kubernetes or docker presets, resolved inside their roots), follows
each across rename and copytruncate rotation with one shared file watcher,
unwraps Docker and CRI lines (joining partial ones), joins multi-line
records, parses lines with the source's parser (perf-json by default) and
labels everything with system, app, group, idc and env from the
collect.topology file, the host, and namespace, pod and container from
Kubernetes log paths. Every line becomes a log event on the logs topic
(unparsed and truncated flagged, sampling and min_level per source); lines
that map to a call also become a call event on the calls topic. Every
collect.metrics.interval the node's /proc, file systems and container
cgroups are sampled to the metrics topic, keyed by (host, container).
Kernel records (collect.metrics.kmsg, read from the start) that match a
kernel error class (CRC, I/O, EXT4, memory) become ERROR log events with
stream kmsg and source /dev/kmsg, and are counted per class.
Events are batched (collect.batch) and produced with acks from all
in-sync replicas. A file's offset is saved in collect.state_file only
after Kafka acknowledged the batch holding its lines: a crash or kill -9
re-reads, never loses. While Kafka is unreachable reading stops
(collect.batch.max_in_flight batches wait) and resumes when it returns.
Serves /metrics, /healthz and /readyz (ready once Kafka answered) on
http.listen (--listen); the profiler only on http.pprof_listen.`,
		example: "tpflow collect --config /etc/tpflow/tpflow.yaml --brokers kafka-1:9092,kafka-2:9092\n" +
			"tpflow collect --config tpflow.yaml --state-file /var/lib/tpflow/collect.json --host node-7",
		common: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&host, "host", "", "the host `NAME` of every event, overriding collect.host (default: the host name)")
			fs.StringVar(&stateFile, "state-file", "", "`PATH` of the offsets file, overriding collect.state_file")
			fs.StringVar(&topo, "topology", "", "topology `FILE`, overriding collect.topology")
			fs.StringVar(&start, "start", "", "where files present at the first start are read from, beginning or end, overriding collect.tail.start")
		},
		override: overrides(
			flagOverride{"host", "collect.host", func(c *Config) { c.Collect.Host = host }},
			flagOverride{"state-file", "collect.state_file", func(c *Config) { c.Collect.StateFile = stateFile }},
			flagOverride{"topology", "collect.topology", func(c *Config) { c.Collect.Topology = topo }},
			flagOverride{"start", "collect.tail.start", func(c *Config) { c.Collect.Tail.Start = start }},
		),
		role: runCollect,
	}
}

// runCollect is the collect role. /readyz answers once Kafka has answered.
func runCollect(ctx context.Context, env *Env, cfg *Config, _ []string) error {
	reg := newRoleRegistry()
	a, err := collect.New(cfg.Collect, cfg.Kafka, roleSettings(env, reg))
	if err != nil {
		return err
	}
	env.Logger.Info("collecting", "host", a.Host(), "sources", len(cfg.Collect.Sources), "state_file", cfg.Collect.StateFile)
	return serveRole(ctx, env, cfg.HTTP.Listen, reg, a, serveOptions{name: "collector", check: "kafka", pprof: cfg.HTTP.PprofListen, http: cfg.HTTP})
}
