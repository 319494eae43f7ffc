package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/tpflow/tpflow/aggregator/aggregate"
	"github.com/tpflow/tpflow/aggregator/late"
	"github.com/tpflow/tpflow/aggregator/windowsapi"
	"github.com/tpflow/tpflow/alerting"
	"github.com/tpflow/tpflow/alerting/alert"
	"github.com/tpflow/tpflow/collectors/collect"
	"github.com/tpflow/tpflow/control/plane"
	"github.com/tpflow/tpflow/internal/cli"
	"github.com/tpflow/tpflow/internal/config"
	"github.com/tpflow/tpflow/internal/config/sections"
	"github.com/tpflow/tpflow/internal/devtools/demo"
	"github.com/tpflow/tpflow/internal/devtools/live"
	"github.com/tpflow/tpflow/internal/role"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/httpserver"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/pipeline/sink"
	"github.com/tpflow/tpflow/report"
)

// runOptions are the flags of `tpflow run` beyond the common ones.
type runOptions struct {
	// Demo also generates synthetic traffic so that the pipeline has
	// something to show.
	Demo bool
	// DataDir holds the embedded broker's segments (DataDir/broker).
	DataDir string
	// NoLive prints one line per refresh instead of the full-screen view.
	NoLive bool
	// DemoConfig configures the generator; its flags are --demo-*.
	DemoConfig demo.Config
	// DemoLogRate and DemoLogRotate configure the demo's log lines for
	// the in-process node collector (DATA-DIR/demo-logs).
	DemoLogRate   int
	DemoLogRotate time.Duration
	DemoLogKeep   int
}

// Embedded broker bounds of `tpflow run`: a laptop must not fill its disk.
const (
	runBrokerRetention      = 2 * time.Hour
	runBrokerRetentionBytes = 1 << 30
)

func runCommand() *cli.Command {
	o := runOptions{DemoConfig: demo.DefaultConfig()}
	d := demo.DefaultConfig()
	dl := demo.DefaultLogConfig("")
	return &cli.Command{
		Name:    "run",
		Summary: "run every role in one process with an embedded broker (laptop, demo, tests)",
		Help: `Runs the whole pipeline in one process: unless --brokers (or kafka.brokers)
names a cluster, an embedded Kafka-protocol broker on a free loopback port
keeping its data in DATA-DIR/broker for ` + runBrokerRetention.String() + ` or 1 GiB per partition;
the aggregator; when ClickHouse answers at clickhouse.dsn, the sink; and,
when alert.rules_files names rules (or with --demo), the alert role.
Without ClickHouse the panes are kept in memory only (one warning line).
/metrics, /healthz, /readyz and /api/v1/windows (with ClickHouse also
/api/v1/tp, /api/v1/capacity and /api/v1/topology) are served on --listen, and
the slowest methods by TP99 and the firing alerts (rule, labels, value,
since) are shown live on stdout, redrawn every pane (one line per refresh
when stdout is not a terminal, or with --no-live).
The control plane (as ` + "`tpflow control`" + `, store DATA-DIR/control.db unless
control.store names one) answers under /control/api/v1 on --listen. Unless
http.auth has an operator credential, an operator token is made at every
start in DATA-DIR/control.token (mode 0600) and required by those routes
only; stderr prints the curl line that reads it (control/README.md).
Ctrl-C stops every part and flushes.

The alert role evaluates the rules as ` + "`tpflow alert`" + ` does and writes every
state change to the alerts topic (with ClickHouse: the alerts table and the
alerts dashboard); Alertmanagers and webhooks (alert.alertmanagers,
alert.webhooks) are notified when configured, none is needed.

With --demo the traffic comes two ways:
  - a built-in generator produces call events (event time = now) of ` + fmt.Sprint(d.Apps) + `
    apps with about ` + fmt.Sprint(d.MethodsPerApp) + ` methods each in several systems, groups and IDCs,
    with lognormal latencies, at --demo-rate events/s, straight to the
    calls topic (the volume);
  - --demo-log-rate calls/s of two other apps (` + strings.Join(demo.LogApps(), ", ") + `,
    system ` + demo.LogSystem + `) are written as perf-json log lines to
    DATA-DIR/demo-logs/<app>.log, renamed to .1 every --demo-log-rotate
    (default ` + dl.Rotate.String() + `; ` + fmt.Sprint(dl.Keep) + ` rotated files are kept, older ones deleted), and
    an in-process node collector tails them with a topology file that
    labels them (DATA-DIR/demo-logs/topology.yaml) and samples this node's
    /proc and cgroups (not the kernel log), as ` + "`tpflow collect`" + ` does.
  No call is counted twice: the generator's apps are in other systems.
The generator's schedule is deterministic from --demo-seed and counted
from the start:
  - latency incident: one method's latencies ×` + fmt.Sprint(d.IncidentFactor) + ` for --demo-incident-for
    (default ` + d.IncidentFor.String() + `), starting --demo-incident-after (default ` + d.IncidentAfter.String() + `);
  - error burst: one other app fails ` + fmt.Sprint(d.ErrorBurstRate*100) + `% of its calls for --demo-error-for
    (default ` + d.ErrorFor.String() + `), starting --demo-error-after (default ` + d.ErrorAfter.String() + `);
  - both repeat every ` + d.Every.String() + `.
Unless alert.rules_files names rules, --demo alerts with its own rules
(written to DATA-DIR/` + demo.RulesFile + `): DemoLatencyIncident on the TP99 of
the incident method and DemoErrorBurst on the error rate of the error
app, each over a window of 3 panes for 1 pane, so that with the default
10s panes, 30s allowed lateness and 10s evaluations an alert fires about
a minute after its fault starts and resolves about a minute after it ends.
The start-up log names the incident method, the error app, the rules and
the split of the traffic.`,
		Example: "tpflow run --demo\ntpflow run --demo --clickhouse clickhouse://127.0.0.1:9000/tpflow --data-dir .data\ntpflow run --brokers kafka-1:9092 --no-live",
		Common:  true,
		Flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&o.Demo, "demo", false, "also generate call traffic (direct and through a node collector) with a scripted incident, and alert on it")
			fs.StringVar(&o.DataDir, "data-dir", ".data", "`DIR` for the embedded broker's data (DIR/broker), the control plane's store and operator token (DIR/control.db, DIR/control.token), the demo logs (DIR/demo-logs) and rules")
			fs.BoolVar(&o.NoLive, "no-live", false, "print one line per refresh instead of the full-screen view")
			fs.IntVar(&o.DemoConfig.Rate, "demo-rate", d.Rate, "demo call events per second")
			fs.Uint64Var(&o.DemoConfig.Seed, "demo-seed", d.Seed, "demo topology and schedule seed")
			fs.DurationVar(&o.DemoConfig.IncidentAfter, "demo-incident-after", d.IncidentAfter, "start of the first demo latency incident after start")
			fs.DurationVar(&o.DemoConfig.IncidentFor, "demo-incident-for", d.IncidentFor, "length of each demo latency incident")
			fs.DurationVar(&o.DemoConfig.ErrorAfter, "demo-error-after", d.ErrorAfter, "start of the first demo error burst after start")
			fs.DurationVar(&o.DemoConfig.ErrorFor, "demo-error-for", d.ErrorFor, "length of each demo error burst")
			fs.IntVar(&o.DemoLogRate, "demo-log-rate", dl.Rate, "demo calls per second written as log lines for the node collector")
			fs.DurationVar(&o.DemoLogRotate, "demo-log-rotate", dl.Rotate, "how often the demo log files are rotated")
			fs.IntVar(&o.DemoLogKeep, "demo-log-keep", dl.Keep, "how many rotated demo log files are kept per app")
		},
		Role: func(ctx context.Context, env *cli.Env, cfg *cli.Config, args []string) error {
			if err := o.DemoConfig.Validate(); err != nil {
				return cli.UsageError("%v", err)
			}
			if err := o.demoLogConfig().Validate(); err != nil {
				return cli.UsageError("demo logs: %v", err)
			}
			return runAllRoles(ctx, env, cfg, o, args)
		},
	}
}

// runAllRoles is the run role: every role in one process.
func runAllRoles(ctx context.Context, env *cli.Env, cfg *cli.Config, o runOptions, _ []string) error {
	log := env.Logger
	reg := cli.NewRoleRegistry()
	settings := cli.RoleSettings(env, reg)

	// Listen first: a taken port should fail before anything starts.
	l, err := cli.ListenHTTP(cfg.HTTP.Listen)
	if err != nil {
		return err
	}
	defer l.Close()
	// The embedded control plane serves only authenticated callers: unless
	// http.auth has an operator, an operator token is made at start
	// (control/DESIGN.md, "tpflow run").
	ctlAuth, err := plane.NewLocalAuth(cfg.HTTP.Auth, o.DataDir)
	if err != nil {
		return err
	}
	httpCfg := cfg.HTTP
	httpCfg.Auth = ctlAuth.Listen
	l, auth, err := cli.SecureHTTP(env, l, httpCfg, reg)
	if err != nil {
		return err
	}
	log.Info("http listening", "addr", l.Addr().String(), "tls", cfg.HTTP.TLS.Enabled(), "auth", auth.Enabled())

	kcfg := cfg.Kafka
	if slices.Equal(cfg.Kafka.Brokers, sections.DefaultConfig().Kafka.Brokers) {
		bcfg := runBrokerConfig(cfg.Broker, o.DataDir)
		b, err := kafka.NewBroker(ctx, bcfg, kcfg, settings.With("part", "broker"))
		if err != nil {
			return err
		}
		defer b.Close()
		kcfg = b.Kafka()
		log.Info("embedded broker started", "addr", b.Addr(), "data_dir", bcfg.DataDir)
	}
	if err := kafka.EnsureTopics(ctx, kcfg); err != nil {
		return fmt.Errorf("cannot prepare topics at %v: %w", kcfg.Brokers, err)
	}

	agg, err := aggregate.New(cfg.Aggregate, kcfg, cfg.Aggregator, settings.With("part", "aggregate"))
	if err != nil {
		return err
	}

	ccfg := cfg.ClickHouse
	chErr := clickhouse.Probe(ctx, ccfg)
	sinkState := "clickhouse " + config.RedactURL(sections.ClickHouseURL(ccfg))
	if chErr != nil {
		fmt.Fprintf(env.Stderr, "ClickHouse not reachable at %s: panes are kept in memory only; start it with scripts/clickhouse.sh or make run\n", config.RedactURL(sections.ClickHouseURL(ccfg)))
		log.Debug("clickhouse probe failed", "err", chErr)
		sinkState = "memory only"
	}

	var gen *demo.Generator
	var logs *demo.LogWriter
	var collector *collect.Agent
	collectReg := prometheus.NewRegistry()
	start := time.Now()
	if o.Demo {
		if gen, err = demo.New(o.DemoConfig, start); err != nil {
			return err
		}
		if logs, collector, err = demo.StartCollector(cfg.Collect, kcfg, o.demoLogConfig(), start,
			role.Settings{Logger: log, Registerer: prometheus.WrapRegistererWith(prometheus.Labels{"part": "collect"}, collectReg)}); err != nil {
			return err
		}
		defer logs.Close()
		_, incApp, incMethod := gen.IncidentTarget()
		_, errApp := gen.ErrorTarget()
		log.Info("demo traffic: the generator produces to the calls topic directly, the log lines reach it through the node collector",
			"generator", fmt.Sprintf("%d calls/s of %d apps", o.DemoConfig.Rate, o.DemoConfig.Apps),
			"collector", fmt.Sprintf("%d calls/s of %s (system %s) from %s", o.DemoLogRate, strings.Join(demo.LogApps(), ", "), demo.LogSystem, logs.Glob()),
			"incident", incApp+"/"+incMethod, "error_burst", errApp)
	}

	// The alert role has an aggregator engine and Kafka clients of its
	// own: its metrics are kept apart, labelled part="alert", and served
	// with the others.
	alertReg := prometheus.NewRegistry()
	alertRole, err := runAlertPart(cfg, kcfg, gen, o.DataDir,
		role.Settings{Logger: log, Registerer: prometheus.WrapRegistererWith(prometheus.Labels{"part": "alert"}, alertReg)})
	if err != nil {
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	// goRole runs r as the part name until ctx is done; its error ends
	// every part.
	goRole := func(ctx context.Context, name string, r role.Role) {
		g.Go(func() error {
			if err := r.Run(ctx); err != nil && ctx.Err() == nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			return nil
		})
	}
	// The sink outlives the aggregator by a little, so that the panes the
	// aggregator publishes on its way out still reach ClickHouse.
	sinkCtx, stopSink := context.WithCancel(context.WithoutCancel(gctx))
	defer stopSink()
	var streamDone sync.WaitGroup
	streamDone.Add(1)
	g.Go(func() error {
		defer streamDone.Done()
		if err := agg.Run(gctx); err != nil && gctx.Err() == nil {
			return fmt.Errorf("aggregator: %w", err)
		}
		return nil
	})
	if chErr == nil {
		sr, err := sink.New(cfg.Sink, kcfg, ccfg, settings.With("part", "sink"))
		if err != nil {
			return err
		}
		goRole(sinkCtx, "sink", sr)
		if lr := late.NextToSink(cfg.Sink.Topics, cfg.Sink.GroupID, kcfg, ccfg, cfg.Aggregator, settings.With("part", "late")); lr != nil {
			g.Go(func() error { return lr.Run(sinkCtx) })
		}
		go func() {
			<-gctx.Done()
			streamDone.Wait()
			// Give the sink one batch age to insert the last panes.
			t := time.NewTimer(ccfg.BatchAge + time.Second)
			defer t.Stop()
			select {
			case <-t.C:
			case <-sinkCtx.Done():
			}
			stopSink()
		}()
	}
	if gen != nil {
		g.Go(func() error {
			return demo.Run(gctx, kcfg, gen, time.Now, reg, log.With("part", "demo"))
		})
		g.Go(func() error {
			if err := demo.RunLogs(gctx, logs, time.Now, reg, log.With("part", "demo-logs")); err != nil {
				return fmt.Errorf("demo logs: %w", err)
			}
			return nil
		})
		goRole(gctx, "collector", collector)
	}
	if alertRole != nil {
		goRole(gctx, "alert", alertRole)
	}
	checks := map[string]httpserver.Check{
		"kafka": func(ctx context.Context) error { return kafka.Ready(ctx, kcfg, kafka.TopicCalls) },
	}
	routes := []httpserver.Route{{Pattern: windowsapi.Path, Handler: windowsapi.Handler(agg.Engine(), cfg.Aggregator.Windows)}}
	ctl, ctlRoute, err := runControlPart(ctx, cfg, o.DataDir, chErr == nil, ctlAuth, reg, settings)
	if err != nil {
		return err
	}
	goRole(gctx, "control", ctl)
	checks["control"] = ctl.Ready
	routes = append(routes, ctlRoute)
	printControlURL(env, l, cfg.HTTP.TLS.Enabled(), ctlAuth.TokenPath)
	if chErr == nil {
		checks["clickhouse"] = func(ctx context.Context) error { return clickhouse.Dial(ctx, ccfg.DSN) }
		if api, err := report.New(ctx, cfg.API, ccfg, settings); err != nil {
			log.Warn("query API not served: cannot open ClickHouse", "err", err)
		} else {
			defer api.Close()
			routes = append(routes, cli.HTTPRoutes(api.Routes())...)
		}
	}
	h := httpserver.Handler(httpserver.Options{Gatherer: prometheus.Gatherers{reg, alertReg, collectReg}, Checks: checks, Routes: routes, Auth: auth})
	if err := cli.ServeProfiler(gctx, g, env, cfg.HTTP.PprofListen); err != nil {
		return err
	}
	g.Go(func() error { return httpserver.ServeLogged(gctx, l, h, env.Logger) })

	view := &live.View{W: env.Stdout, ANSI: !o.NoLive && live.IsTerminal(env.Stdout), Window: live.WindowName(cfg.Aggregator.Windows), Alerting: alertRole != nil}
	g.Go(func() error {
		alerts := func() []alerting.Alert { return nil }
		if alertRole != nil {
			alerts = alertRole.Alerts
		}
		return live.Run(gctx, view, agg.Engine(), alerts, cfg.Aggregator, func(now time.Time) string {
			s := fmt.Sprintf("sink=%q", sinkState)
			if gen != nil {
				s += " demo=" + gen.State(now)
			}
			return s
		})
	})
	err = g.Wait()
	if err == nil || errors.Is(err, context.Canceled) {
		log.Info("stopped")
		return nil
	}
	return err
}

// runControlPart returns the control plane of `tpflow run` and its route:
// its API under runControlPrefix (the query API has a /api/v1/topology of
// its own) behind la, its store in dataDir unless control.store names
// one, its operations exported only when ClickHouse answers.
func runControlPart(ctx context.Context, cfg *cli.Config, dataDir string, clickHouse bool, la plane.LocalAuth, reg prometheus.Registerer, s role.Settings) (*plane.Role, httpserver.Route, error) {
	pcfg := cfg.Control
	if pcfg.Store == plane.DefaultStore {
		pcfg.Store = filepath.Join(dataDir, runControlStore)
	}
	pcfg.Operations.Export = pcfg.Operations.Export && clickHouse
	auth, err := httpserver.NewAuth(la.Control, reg, nil)
	if err != nil {
		return nil, httpserver.Route{}, err
	}
	r, err := plane.New(ctx, pcfg, cfg.ClickHouse, s.With("part", "control"), plane.WithValidator(sections.ValidateFile))
	if err != nil {
		return nil, httpserver.Route{}, err
	}
	return r, httpserver.Route{Pattern: runControlPrefix + "/", Handler: auth.Wrap(http.StripPrefix(runControlPrefix, r.Handler()))}, nil
}

// The control plane's SQLite file in the data directory, and the path
// prefix of its API on the listener of `tpflow run`.
const (
	runControlStore  = "control.db"
	runControlPrefix = "/control"
)

// printControlURL tells where the control plane answers and, with a token
// made at start, how to use it; the token itself stays in its file.
func printControlURL(env *cli.Env, l net.Listener, tls bool, tokenPath string) {
	scheme := "http"
	if tls {
		scheme = "https"
	}
	url := scheme + "://" + l.Addr().String() + runControlPrefix + "/api/v1"
	if tokenPath == "" {
		env.Logger.Info("control plane API served with the http.auth credentials", "url", url)
		return
	}
	fmt.Fprintf(env.Stderr, "control plane API at %s; its operator token is in %s (mode 0600, new at every start):\n  curl -H \"Authorization: Bearer $(cat %s)\" %s/operations\n", url, tokenPath, tokenPath, url)
}

// demoLogConfig is the demo log writer's configuration in the data
// directory.
func (o runOptions) demoLogConfig() demo.LogConfig {
	c := demo.DefaultLogConfig(filepath.Join(o.DataDir, "demo-logs"))
	c.Rate, c.Rotate, c.Keep, c.Seed = o.DemoLogRate, o.DemoLogRotate, o.DemoLogKeep, o.DemoConfig.Seed
	return c
}

// runAlertPart returns the alert role of `tpflow run`, or nil when there
// are no rules: the configured rules files, else with the demo generator
// gen its rules (written to dataDir/demo.RulesFile so that the role loads
// them like any rules file).
func runAlertPart(cfg *cli.Config, kcfg kafka.Config, gen *demo.Generator, dataDir string, s role.Settings) (*alert.Role, error) {
	log := s.Log()
	acfg := *cfg
	switch {
	case len(cfg.Alert.RulesFiles) > 0:
		log.Info("alert role started", "rules_files", cfg.Alert.RulesFiles, "alertmanagers", len(cfg.Alert.Alertmanagers), "webhooks", len(cfg.Alert.Webhooks))
	case gen != nil:
		path, err := gen.WriteRules(dataDir, cfg.Aggregator.Pane)
		if err != nil {
			return nil, err
		}
		acfg.Alert.RulesFiles = []string{path}
		p := gen.RulesParams(cfg.Aggregator.Pane)
		log.Info("alert role started with the demo rules", "file", path,
			"latency_rule", fmt.Sprintf("DemoLatencyIncident: TP99 of %s/%s > %s over %s for %s", p.IncidentApp, p.IncidentMethod, p.TP99Threshold, p.Window, p.For),
			"error_rule", fmt.Sprintf("DemoErrorBurst: error_rate of %s > %s over %s for %s", p.ErrorApp, p.ErrorThreshold, p.Window, p.For))
	default:
		log.Info("no alert rules configured (alert.rules_files): alert role not started")
		return nil, nil
	}
	if len(cfg.Alert.Alertmanagers) == 0 && len(cfg.Alert.Webhooks) == 0 {
		log.Info("no alert receivers configured (alert.alertmanagers, alert.webhooks): alert state changes go to the alerts topic and the live view only")
	}
	return newAlertRole(&acfg, kcfg, s.With("part", "alert"))
}

// runBrokerConfig is the broker section as `tpflow run` uses it: a free
// loopback port, the data in dataDir/broker, and a retention bounded by
// runBrokerRetention and runBrokerRetentionBytes.
func runBrokerConfig(b kafka.BrokerConfig, dataDir string) kafka.BrokerConfig {
	b.Listen = "127.0.0.1:0"
	b.Advertise = ""
	b.DataDir = filepath.Join(dataDir, "broker")
	b.Retention = bounded(b.Retention, runBrokerRetention)
	b.RetentionBytes = bounded(b.RetentionBytes, runBrokerRetentionBytes)
	return b
}

// bounded returns v capped at limit, where v <= 0 means unbounded.
func bounded[T ~int64](v, limit T) T {
	if v <= 0 || v > limit {
		return limit
	}
	return v
}
