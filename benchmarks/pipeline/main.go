// Command pipeline is the end-to-end throughput benchmark of tpflow: it
// starts a private clickhouse-server and the broker, aggregate and sink roles
// as separate processes, runs the load generator against them, and measures
// the sustained call rate end to end, the consumer lag and the peak RSS of
// every process. In the same run it measures the alternative of storing raw
// events in ClickHouse and computing the per-minute TP table in SQL, and
// prints both and their ratio as Markdown.
//
//	go run ./benchmarks/pipeline [-duration 60s] [-rate 0] [-loadgens 2] [-keys 1000] [-out FILE]
//
// With -rate 0 the load generators produce as fast as they can; one
// generator draws about 2 M calls/s on one core here, so the default runs
// two. They share the two cores with the pipeline, as they would share a
// node with a collector. The roles are stopped before the raw-events
// alternative runs, so that ClickHouse has the machine to itself for it.
//
// It is a main package without tests so that `go test ./...` never runs it.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tpflow/tpflow/pipeline/clickhouse"

	"github.com/tpflow/tpflow/benchmarks/procstat"
)

// options are the command-line flags.
type options struct {
	duration     time.Duration
	rate         int
	keys         int
	seed         uint64
	partitions   int
	pane         time.Duration
	lateness     time.Duration
	drainTimeout time.Duration
	rawBatch     int
	rawQueries   int
	skipRaw      bool
	loadgens     int
	workDir      string
	keep         bool
	out          string
	repo         string
	roleEnv      string
}

// fullSpeed is the --rate passed to each loadgen for -rate 0: above what
// one generator draws on one core here (about 2 M/s), so it produces as
// fast as it can. loadgen draws up to one second of calls before producing
// when it is behind, so a higher value only costs it memory.
const fullSpeed = 3_000_000

const (
	database = "tpflow"
	aggGroup = "tpflow-aggregate"
)

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "how long the load generator produces")
	flag.IntVar(&o.rate, "rate", 0, "target call events per second; 0 produces as fast as the pipeline takes them")
	flag.IntVar(&o.keys, "keys", 1000, "distinct (app, method) keys")
	flag.IntVar(&o.loadgens, "loadgens", 2, "load generator processes, each with its own seed and an equal share of -rate")
	flag.Uint64Var(&o.seed, "seed", 1, "seed of the events")
	flag.IntVar(&o.partitions, "partitions", 8, "partitions of the calls topic")
	flag.DurationVar(&o.pane, "pane", 10*time.Second, "aggregator pane length")
	flag.DurationVar(&o.lateness, "lateness", 5*time.Second, "aggregator allowed lateness and idle timeout (bounds the drain)")
	flag.DurationVar(&o.drainTimeout, "drain-timeout", 5*time.Minute, "how long to wait for the pipeline to drain after the load")
	flag.IntVar(&o.rawBatch, "raw-batch", 100_000, "rows per insert of the raw-events alternative")
	flag.IntVar(&o.rawQueries, "raw-queries", 3, "times each per-minute TP query runs")
	flag.BoolVar(&o.skipRaw, "skip-raw", false, "skip the raw-events alternative")
	flag.StringVar(&o.workDir, "workdir", "", "`DIR` for the binary, data and logs; default a new temporary directory")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (always kept on failure)")
	flag.StringVar(&o.out, "out", "", "also write the Markdown report to `FILE`")
	flag.StringVar(&o.roleEnv, "role-env", "", "comma-separated `K=V` pairs added to the environment of broker, aggregate and sink, e.g. GOMEMLIMIT=400MiB")
	flag.StringVar(&o.repo, "repo", ".", "root of the tpflow repository (for scripts/clickhouse.sh and the build)")
	flag.Parse()
	if o.duration <= 0 || o.rate < 0 || o.keys < 1 || o.loadgens < 1 || o.partitions < 1 || o.rawBatch < 1 || o.rawQueries < 1 {
		fmt.Fprintln(os.Stderr, "pipeline: -duration, -keys, -loadgens, -partitions, -raw-batch and -raw-queries must be positive and -rate not negative")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := run(ctx, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pipeline:", err)
		if r != nil && r.workDir != "" {
			fmt.Fprintln(os.Stderr, "pipeline: logs are in", r.workDir)
		}
		os.Exit(1)
	}
}

// procResult is the resource use of one process.
type procResult struct {
	name       string
	maxRSS     int64
	hwm        int64
	cpuLoad    float64 // CPU seconds during the load
	cpuAll     float64 // CPU seconds from start to drained
	notSampled bool
}

// result is everything a run measured.
type result struct {
	workDir                 string
	start                   time.Time
	machine                 string
	chVersion               string
	otherLoad               string
	roleEnv                 string
	busyLoad, aggHeapMax    float64
	cmdline                 string
	produced, messages      int64
	loadElapsed             time.Duration
	aggAtLoadEnd            float64
	aggRates                []float64 // per-second aggregated events during the load
	aggDone, storedDone     time.Duration
	storedCount             uint64
	panes                   uint64
	lagEndMsgs              int64
	fetchedLagEnd           float64
	endOffsets              int64
	paneQuery               []time.Duration
	paneQueryRows           int
	paneBytes               uint64
	procs                   []procResult
	raw                     *rawResult
	drained, countsMatch    bool
	sinkRowsTotal, aggPanes float64
}

func run(ctx context.Context, o options) (r *result, runErr error) {
	r = &result{start: time.Now(), cmdline: "go run ./benchmarks/pipeline " + strings.Join(os.Args[1:], " ")}
	var err error
	if o.workDir == "" {
		if o.workDir, err = os.MkdirTemp("", "tpflow-bench-pipeline-"); err != nil {
			return r, err
		}
	} else if err := os.MkdirAll(o.workDir, 0o755); err != nil {
		return r, err
	}
	r.workDir = o.workDir
	repo, err := filepath.Abs(o.repo)
	if err != nil {
		return r, err
	}
	r.machine = machine()
	r.otherLoad = otherLoad()
	logf("work dir %s; machine: %s", o.workDir, r.machine)
	if r.otherLoad != "" {
		logf("other load before the run: %s", r.otherLoad)
	}

	bin := filepath.Join(o.workDir, "tpflow")
	logf("building %s", bin)
	build := exec.CommandContext(ctx, "go", "build", "-tags", "nodeploy", "-o", bin, "./cmd/tpflow")
	build.Dir = repo
	if out, err := build.CombinedOutput(); err != nil {
		return r, fmt.Errorf("cannot build tpflow: %v\n%s", err, out)
	}

	chDir := filepath.Join(o.workDir, "clickhouse")
	chScript := filepath.Join(repo, "scripts", "clickhouse.sh")
	out, err := exec.CommandContext(ctx, "bash", chScript, "start", chDir).Output()
	if err != nil {
		return r, fmt.Errorf("cannot start ClickHouse: %w", err)
	}
	chPort := strings.TrimSpace(string(out))
	// The work directory is removed only after ClickHouse stopped: the
	// script finds the server by its directory.
	defer func() {
		if err := exec.Command("bash", chScript, "stop", chDir).Run(); err != nil {
			logf("cannot stop ClickHouse: %v", err)
		}
		if !o.keep && runErr == nil {
			_ = os.RemoveAll(o.workDir)
			r.workDir = ""
		}
	}()
	pidb, err := os.ReadFile(filepath.Join(chDir, "clickhouse.pid"))
	if err != nil {
		return r, fmt.Errorf("cannot read the ClickHouse pid: %w", err)
	}
	chPid, _ := strconv.Atoi(strings.TrimSpace(string(pidb)))
	ch := &proc{name: "clickhouse-server", pid: chPid}
	logf("ClickHouse on 127.0.0.1:%s (pid %d)", chPort, chPid)

	brokerAddr, _ := freeAddr()
	aggAddr, _ := freeAddr()
	sinkAddr, _ := freeAddr()
	dsn := fmt.Sprintf("clickhouse://127.0.0.1:%s/%s", chPort, database)
	cfgFile := filepath.Join(o.workDir, "tpflow.yaml")
	cfg := fmt.Sprintf(`aggregator:
  pane: %s
  allowed_lateness: %s
  idle_timeout: %s
kafka:
  brokers: [%q]
  partitions: {calls: %d}
clickhouse:
  dsn: %q
log:
  level: warn
`, o.pane, o.lateness, o.lateness, brokerAddr, o.partitions, dsn)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		return r, err
	}

	var roles []*proc
	defer func() {
		for i := len(roles) - 1; i >= 0; i-- {
			roles[i].stop(10 * time.Second)
		}
	}()
	startRole := func(name string, args ...string) (*proc, error) {
		var env []string
		if o.roleEnv != "" {
			env = strings.Split(o.roleEnv, ",")
		}
		p, err := startProc(o.workDir, name, env, bin, append([]string{name, "--config", cfgFile}, args...)...)
		if err == nil {
			roles = append(roles, p)
		}
		return p, err
	}
	broker, err := startRole("broker", "--listen", brokerAddr, "--data-dir", filepath.Join(o.workDir, "broker"))
	if err != nil {
		return r, err
	}
	if err := waitTCP(brokerAddr, 30*time.Second); err != nil {
		return r, fmt.Errorf("%w\n%s", err, broker.tail())
	}
	agg, err := startRole("aggregate", "--listen", aggAddr)
	if err != nil {
		return r, err
	}
	sink, err := startRole("sink", "--listen", sinkAddr)
	if err != nil {
		return r, err
	}
	for _, w := range []struct {
		p    *proc
		addr string
	}{{agg, aggAddr}, {sink, sinkAddr}} {
		if err := waitReady(w.addr, 60*time.Second); err != nil {
			return r, fmt.Errorf("%s: %w\n%s", w.p.name, err, w.p.tail())
		}
	}
	ccfg := clickhouse.DefaultConfig()
	ccfg.DSN = "clickhouse://127.0.0.1:" + chPort
	ccfg.Database = database
	conn, err := clickhouse.Open(ctx, ccfg)
	if err != nil {
		return r, err
	}
	defer conn.Close()
	_ = conn.QueryRow(ctx, "SELECT version()").Scan(&r.chVersion)
	// The sink applies the migrations at start-up; wait for call_panes.
	if err := poll(ctx, 60*time.Second, time.Second, func() (bool, error) {
		var n uint64
		err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = 'call_panes'", database).Scan(&n)
		return err == nil && n == 1, nil
	}); err != nil {
		return r, fmt.Errorf("call_panes does not exist: %w\n%s", err, sink.tail())
	}

	// Load.
	watched := []*proc{broker, agg, sink, ch}
	rate := o.rate
	if rate == 0 {
		rate = fullSpeed * o.loadgens
	}
	cpu0 := cpuOf(watched)
	busy0 := procstat.BusyCPU()
	agg0, _ := scrape(aggAddr, "tpflow_aggregate_events_total")
	t0 := time.Now()
	var lgs []*proc
	for i := range o.loadgens {
		// Each generator draws the same keys with its own seed.
		lg, err := startProc(o.workDir, fmt.Sprintf("loadgen%d", i+1), nil, bin, "loadgen", "--config", cfgFile,
			"--duration", o.duration.String(), "--rate", strconv.Itoa(rate/o.loadgens), "--keys", strconv.Itoa(o.keys),
			"--seed", strconv.FormatUint(o.seed+uint64(i), 10))
		if err != nil {
			return r, err
		}
		lgs = append(lgs, lg)
		roles = append(roles, lg)
	}
	sampled := append(slices.Clone(watched), lgs...)
	sctx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	go sampler(sctx, time.Second, func() []*proc { return sampled })
	logf("%d loadgen process(es) run for %s at --rate %d in total", o.loadgens, o.duration, rate)
	prev := agg0
	tick := time.NewTicker(time.Second)
	lgCPU := make([]float64, len(lgs))
	for _, lg := range lgs {
	wait:
		for {
			select {
			case <-ctx.Done():
				return r, ctx.Err()
			case <-lg.done:
				break wait
			case <-tick.C:
				if h, err := scrape(aggAddr, "go_memstats_heap_inuse_bytes"); err == nil {
					r.aggHeapMax = max(r.aggHeapMax, h)
				}
				for i, l := range lgs {
					if c, err := procstat.CPUSeconds(l.pid); err == nil {
						lgCPU[i] = c
					}
				}
				v, err := scrape(aggAddr, "tpflow_aggregate_events_total")
				if err == nil {
					r.aggRates = append(r.aggRates, v-prev)
					prev = v
				}
			}
		}
	}
	tick.Stop()
	for _, lg := range lgs {
		if lg.err != nil {
			return r, fmt.Errorf("%s failed: %v\n%s", lg.name, lg.err, lg.tail())
		}
	}
	cpuLoad := cpuOf(watched)
	r.busyLoad = procstat.BusyCPU() - busy0
	r.aggAtLoadEnd, _ = scrape(aggAddr, "tpflow_aggregate_events_total")
	r.aggAtLoadEnd -= agg0
	fetched, _ := scrape(aggAddr, `tpflow_kafka_consumed_messages_total{topic="tpflow.calls"}`)
	if end, lag, err := groupLag(ctx, brokerAddr, "tpflow.calls", aggGroup, o.partitions); err == nil {
		r.endOffsets, r.lagEndMsgs = end, lag
		r.fetchedLagEnd = float64(end) - fetched
	} else {
		logf("consumer lag: %v", err)
	}
	var lgRes []procResult
	for i, lg := range lgs {
		calls, msgs, elapsed, err := parseLoadgen(lg.log)
		if err != nil {
			return r, err
		}
		r.produced += calls
		r.messages += msgs
		r.loadElapsed = max(r.loadElapsed, elapsed)
		mr, hwm := lg.peaks()
		lgRes = append(lgRes, procResult{name: lg.name, maxRSS: mr, hwm: hwm, cpuLoad: lgCPU[i], cpuAll: lgCPU[i]})
	}
	logf("loadgen produced %d calls in %d messages in %s (%.0f/s); aggregated %.0f by then",
		r.produced, r.messages, r.loadElapsed.Round(time.Millisecond), float64(r.produced)/r.loadElapsed.Seconds(), r.aggAtLoadEnd)

	// Drain: every produced call aggregated, then stored in call_panes.
	err = poll(ctx, o.drainTimeout, 200*time.Millisecond, func() (bool, error) {
		v, err := scrape(aggAddr, "tpflow_aggregate_events_total")
		return err == nil && v-agg0 >= float64(r.produced), nil
	})
	if err == nil {
		r.aggDone = time.Since(t0)
		err = poll(ctx, o.drainTimeout, 500*time.Millisecond, func() (bool, error) {
			err := conn.QueryRow(ctx, fmt.Sprintf("SELECT toUInt64(sum(count)), count() FROM %s.call_panes FINAL", database)).Scan(&r.storedCount, &r.panes)
			return err == nil && r.storedCount >= uint64(r.produced), nil
		})
		if err == nil {
			r.storedDone = time.Since(t0)
			r.drained = true
			r.countsMatch = r.storedCount == uint64(r.produced)
		}
	}
	if err != nil {
		logf("pipeline did not drain: %v", err)
	}
	cpuEnd := cpuOf(watched)
	r.aggPanes, _ = scrape(aggAddr, "tpflow_aggregate_panes_published_total")
	r.sinkRowsTotal, _ = scrape(sinkAddr, "tpflow_sink_rows_total")
	logf("aggregated all after %s, stored all after %s (sum(count) %d in %d panes)", r.aggDone.Round(time.Millisecond), r.storedDone.Round(time.Millisecond), r.storedCount, r.panes)
	for range o.rawQueries {
		d, n, err := timeQuery(ctx, conn, fmt.Sprintf(paneTPQuery, database))
		if err != nil {
			return r, err
		}
		r.paneQuery, r.paneQueryRows = append(r.paneQuery, d), n
	}
	r.paneBytes, _ = tableBytes(ctx, conn, database, "call_panes")
	for _, p := range watched {
		p.sample()
	}
	for i, p := range watched {
		mr, hwm := p.peaks()
		r.procs = append(r.procs, procResult{name: p.name, maxRSS: mr, hwm: hwm,
			cpuLoad: cpuLoad[i] - cpu0[i], cpuAll: cpuEnd[i] - cpu0[i]})
	}
	r.procs = append(r.procs, lgRes...)
	r.roleEnv = o.roleEnv

	// The roles are stopped before the alternative so that it has the
	// machine to itself, as the pipeline would not run beside it.
	for i := len(roles) - 1; i >= 0; i-- {
		roles[i].stop(10 * time.Second)
	}
	roles = nil
	stopSampling()
	if !o.skipRaw && r.produced > 0 {
		logf("raw alternative: inserting %d rows in batches of %d", r.produced, o.rawBatch)
		rr, err := runRaw(ctx, conn, database, r.produced, o.keys, o.seed, t0, r.loadElapsed, o.rawBatch, o.rawQueries)
		if err != nil {
			return r, err
		}
		r.raw = &rr
		ch.sample()
		mr, hwm := ch.peaks()
		r.procs = append(r.procs, procResult{name: "clickhouse-server (whole run, raw included)", maxRSS: mr, hwm: hwm, notSampled: true})
	}

	report := r.markdown(o)
	fmt.Print(report)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(report), 0o644); err != nil {
			return r, err
		}
	}
	if !r.drained || !r.countsMatch {
		return r, errors.New("the pipeline did not store exactly the calls produced")
	}
	return r, nil
}

// cpuOf returns the CPU seconds of each process so far.
func cpuOf(ps []*proc) []float64 {
	out := make([]float64, len(ps))
	for i, p := range ps {
		out[i], _ = procstat.CPUSeconds(p.pid)
	}
	return out
}

var loadgenLine = regexp.MustCompile(`produced (\d+) calls in (\d+) messages in (\S+) `)

// parseLoadgen reads loadgen's summary line from its log.
func parseLoadgen(log string) (calls, msgs int64, elapsed time.Duration, err error) {
	f, err := os.Open(log)
	if err != nil {
		return 0, 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := loadgenLine.FindStringSubmatch(sc.Text()); m != nil {
			calls, _ = strconv.ParseInt(m[1], 10, 64)
			msgs, _ = strconv.ParseInt(m[2], 10, 64)
			elapsed, err = time.ParseDuration(m[3])
			return calls, msgs, elapsed, err
		}
	}
	return 0, 0, 0, fmt.Errorf("no summary line in %s", log)
}

// poll calls f every interval until it reports true, ctx is done or
// timeout passes.
func poll(ctx context.Context, timeout, every time.Duration, f func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := f()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done after %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// machine describes the CPU count, model and memory.
func machine() string {
	var model, mem string
	model, gib := procstat.Machine()
	if gib > 0 {
		mem = fmt.Sprintf("%.1f GiB RAM", gib)
	}
	out, _ := exec.Command("nproc").Output()
	return fmt.Sprintf("nproc %s, %s, %s", strings.TrimSpace(string(out)), model, mem)
}

// otherLoad names the processes other than this one that used noticeable
// CPU in the last second, so that a result measured beside other work says
// so.
func otherLoad() string {
	self := os.Getpid()
	before := map[int]float64{}
	names := map[int]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if c, err := procstat.CPUSeconds(pid); err == nil {
			before[pid] = c
		}
	}
	time.Sleep(time.Second)
	type busy struct {
		name string
		cpu  float64
	}
	var bs []busy
	for pid, c0 := range before {
		c1, err := procstat.CPUSeconds(pid)
		if err != nil || c1-c0 < 0.1 {
			continue
		}
		if names[pid] == "" {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			names[pid] = strings.TrimSpace(string(b))
		}
		bs = append(bs, busy{names[pid], c1 - c0})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].cpu > bs[j].cpu })
	var parts []string
	for _, b := range bs {
		parts = append(parts, fmt.Sprintf("%s %.0f %%", b.name, 100*b.cpu))
	}
	if la, err := os.ReadFile("/proc/loadavg"); err == nil && len(parts) > 0 {
		parts = append(parts, "loadavg "+strings.Join(strings.Fields(string(la))[:3], " "))
	}
	return strings.Join(parts, ", ")
}
