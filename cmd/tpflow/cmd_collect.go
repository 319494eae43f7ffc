package main

import (
	"context"
	"flag"

	"github.com/tpflow/tpflow/collectors/collect"
	"github.com/tpflow/tpflow/internal/cli"
)

func collectCommand() *cli.Command {
	var (
		host, stateFile, topo, start string
	)
	return &cli.Command{
		Name:    "collect",
		Summary: "tail container logs and read cgroup, /proc and kmsg on this node; produce to Kafka",
		Help: `Runs the node agent: discovers the log files of collect.sources (globs and
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
Serves /metrics, /healthz and /readyz on http.listen (--listen); /readyz
answers once Kafka has, and fails again after 30 s of failed commits or of
a full send queue with no commit. While another agent holds the state
directory's lock (a rolling update's hand-over) it stands by, ready, and
reads nothing. The profiler only on http.pprof_listen.`,
		Example: "tpflow collect --config /etc/tpflow/tpflow.yaml --brokers kafka-1:9092,kafka-2:9092\n" +
			"tpflow collect --config tpflow.yaml --state-file /var/lib/tpflow/collect.json --host node-7",
		Common: true,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&host, "host", "", "the host `NAME` of every event, overriding collect.host (default: the host name)")
			fs.StringVar(&stateFile, "state-file", "", "`PATH` of the offsets file, overriding collect.state_file")
			fs.StringVar(&topo, "topology", "", "topology `FILE`, overriding collect.topology")
			fs.StringVar(&start, "start", "", "where files present at the first start are read from, beginning or end, overriding collect.tail.start")
		},
		Override: cli.Overrides(
			cli.SetFlag("host", "collect.host", func(c *cli.Config) { c.Collect.Host = host }),
			cli.SetFlag("state-file", "collect.state_file", func(c *cli.Config) { c.Collect.StateFile = stateFile }),
			cli.SetFlag("topology", "collect.topology", func(c *cli.Config) { c.Collect.Topology = topo }),
			cli.SetFlag("start", "collect.tail.start", func(c *cli.Config) { c.Collect.Tail.Start = start }),
		),
		Role: runCollect,
	}
}

// runCollect is the collect role. /readyz answers once Kafka has answered.
func runCollect(ctx context.Context, env *cli.Env, cfg *cli.Config, _ []string) error {
	reg := cli.NewRoleRegistry()
	a, err := collect.New(cfg.Collect, cfg.Kafka, cli.RoleSettings(env, reg))
	if err != nil {
		return err
	}
	env.Logger.Info("collecting", "host", a.Host(), "sources", len(cfg.Collect.Sources), "state_file", cfg.Collect.StateFile)
	return cli.ServeRole(ctx, env, cfg.HTTP.Listen, reg, a, cli.ServeOptions{Name: "collector", Check: "kafka", Pprof: cfg.HTTP.PprofListen, HTTP: cfg.HTTP})
}
