// Command collect is the resource budget benchmark of the collect role: a
// real `tpflow collect` process follows a log file written by this process
// and ships to a `tpflow broker` process, so neither the writer's nor the
// broker's CPU is counted against the collector.
//
//	go run ./benchmarks/collect [-rounds 3] [-duration 30s] [-rate 10000] [-idle 10s] [-ceiling-lines 2000000] [-baseline-bin PATH]
//
// The binary is built with -tags nodeploy, as the container image is.
// With -baseline-bin, every round measures that binary and the one built
// here, under the same load on the same machine, alternating which goes
// first, and the ratios of the medians are printed.
//
// Each round measures:
//
//   - budget: the writer appends perf-json lines at -rate lines/s; after a
//     3 s warm-up the collector's CPU time (utime+stime of /proc/PID/stat)
//     over -duration, as a share of one core, and its peak RSS (VmHWM) over
//     the round. Node metrics and /dev/kmsg are read as in production.
//     The collector runs with GOMAXPROCS=1, as the Go runtime sets it under
//     a DaemonSet CPU limit below one core.
//   - baseline: the same collector with nothing written for -idle, in the
//     same round: its fixed cost (timers, metric samples, kernel log).
//   - ceiling: -ceiling-lines perf-json lines are written first, then the
//     collector starts with GOMAXPROCS=1, pinned to one CPU with taskset
//     (the broker to the other), and reads them from the beginning: tail,
//     parse, batch and produce, until Kafka acknowledged every call and log
//     event (tpflow_collect_acked_events_total). Lines per second of wall
//     time from the process start, and CPU seconds per line.
//
// It prints every round and the medians. It is a main package without
// tests so that `go test ./...` never runs it.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tpflow/tpflow/benchmarks/procstat"
)

type options struct {
	rounds       int
	duration     time.Duration
	rate         int
	ceilingLines int
	skipBudget   bool
	skipCeiling  bool
	keep         bool
	profile      string
	profBudget   string
	batch        string
	budgetProcs  int
	idle         time.Duration
	baselineBin  string
}

func main() {
	var o options
	flag.IntVar(&o.rounds, "rounds", 3, "rounds of each measurement")
	flag.DurationVar(&o.duration, "duration", 30*time.Second, "measured time of a budget round")
	flag.IntVar(&o.rate, "rate", 10000, "lines per second written in a budget round")
	flag.IntVar(&o.ceilingLines, "ceiling-lines", 2000000, "lines read in a ceiling round")
	flag.BoolVar(&o.skipBudget, "skip-budget", false, "skip the budget rounds")
	flag.BoolVar(&o.skipCeiling, "skip-ceiling", false, "skip the ceiling rounds")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory")
	flag.StringVar(&o.profBudget, "profile-budget", "", "write a CPU profile of the collector over the first budget round's measurement to `FILE`")
	flag.IntVar(&o.budgetProcs, "budget-gomaxprocs", 1, "GOMAXPROCS of the collector in the budget rounds (0: the Go default); a DaemonSet with a CPU limit under one core gets 1 from the Go runtime")
	flag.DurationVar(&o.idle, "idle", 10*time.Second, "measured time of the baseline in each round: the same collector with no lines written (0 skips it)")
	flag.StringVar(&o.batch, "batch", "", "collect.batch settings in YAML flow style, e.g. '{max_age: 1s}' (default: the defaults)")
	flag.StringVar(&o.baselineBin, "baseline-bin", "", "also measure this tpflow binary (e.g. built from main) in every round, before the one built here, and print the ratios of the medians")
	flag.StringVar(&o.profile, "profile", "", "write a 3 s CPU profile of the collector in the first ceiling round to `FILE`")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench-collect:", err)
		os.Exit(1)
	}
}

// proc is a started child process.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

func startProc(dir, name string, env []string, argv ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	p := &proc{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	return p, nil
}

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) tail() string { return procstat.Tail(p.log) }

// memMiB returns the resident and peak resident memory of pid in MiB
// (VmRSS, VmHWM), zero when it cannot be read.
func memMiB(pid int) (rss, hwm float64) {
	r, h, _ := procstat.Memory(pid)
	return float64(r) / (1 << 20), float64(h) / (1 << 20)
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitPort(addr string, p *proc) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s does not accept connections:\n%s", addr, p.tail())
}

// metric reads one unlabelled counter from a role's /metrics.
func metric(listen, name string) (float64, error) {
	resp, err := http.Get("http://" + listen + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(rest, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /metrics", name)
}

var methods = func() []string {
	var m []string
	for i := range 50 {
		m = append(m, fmt.Sprintf("CartService.op%02d", i))
	}
	return m
}()

// appendLine appends one perf-json line of about 170 bytes.
func appendLine(b []byte, i int, now time.Time) []byte {
	b = append(b, `{"ts":"`...)
	b = now.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
	b = append(b, `","app":"cart","method":"`...)
	b = append(b, methods[i%len(methods)]...)
	b = append(b, `","latency_ms":`...)
	b = strconv.AppendFloat(b, float64(i%997)/10, 'f', 1, 64)
	b = append(b, `,"status":200,"ok":true,"level":"info","msg":"request served","req":`...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, "}\n"...)
	return b
}

func collectConfig(dir, brokerAddr, prefix, batch string, ceiling bool) string {
	metrics := "metrics_enabled: true\n  metrics: {interval: 10s}"
	if ceiling {
		metrics = "metrics_enabled: false\n  metrics: {kmsg: \"\"}"
	}
	cfg := fmt.Sprintf(`kafka:
  brokers: [%q]
  topic_prefix: %q
  partitions: {calls: 4, logs: 1, metrics: 1, stats: 1, alerts: 1, dlq: 1}
  max_message_bytes: 2097152
log:
  level: warn
collect:
  host: bench-node
  state_file: %q
  tail: {start: beginning}
  sources:
    - {name: app, globs: [%q], container: none}
  %s
`, brokerAddr, prefix, filepath.Join(dir, "state.json"), filepath.Join(dir, "logs", "*.log"), metrics)
	if batch != "" {
		cfg += "  batch: " + batch + "\n"
	}
	return cfg
}

type budgetResult struct {
	cpuPct float64 // of one core
	hwmMiB float64
	rssMiB float64 // at the end
	lines  int
}

type ceilingResult struct {
	linesPerSec   float64
	cpuSecPerLine float64
	hwmMiB        float64
}

func run(o options) error {
	work, err := os.MkdirTemp("", "bench-collect-")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(work)
	}
	bin := filepath.Join(work, "tpflow")
	if out, err := exec.Command("go", "build", "-tags", "nodeploy", "-o", bin, "./cmd/tpflow").CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	pin := func(cpu int, argv ...string) []string {
		if _, err := exec.LookPath("taskset"); err == nil && runtime.NumCPU() >= 2 {
			return append([]string{"taskset", "-c", strconv.Itoa(cpu)}, argv...)
		}
		return argv
	}
	brokerAddr := freeAddr()
	broker, err := startProc(work, "broker", nil, pin(0, bin, "broker", "--listen", brokerAddr)...)
	if err != nil {
		return err
	}
	defer broker.stop()
	if err := waitPort(brokerAddr, broker); err != nil {
		return err
	}
	host, _ := os.Hostname()
	fmt.Printf("machine: %s, %d CPUs (%s), %s; broker pinned to CPU 0\n", host, runtime.NumCPU(), cpuModel(), runtime.Version())

	type build struct {
		name, bin               string
		budgets, idles          []budgetResult
		ceilings                []ceilingResult
		cpu, hwm, lps, idleCPUs float64
	}
	builds := []*build{{name: "this build", bin: bin}}
	if o.baselineBin != "" {
		builds = []*build{{name: "baseline-bin", bin: o.baselineBin}, builds[0]}
	}
	for r := range o.rounds {
		order := []int{0, 1}[:len(builds)]
		if len(builds) == 2 && r%2 == 1 {
			order = []int{1, 0} // alternate which build goes first, so that neither gains from its place
		}
		for _, bi := range order {
			bd := builds[bi]
			rr := r + 100*bi // round directories and topic prefixes of each build apart
			label := fmt.Sprintf("round %d", r+1)
			if len(builds) > 1 {
				label += " [" + bd.name + "]"
			}
			if !o.skipBudget && o.idle > 0 {
				idleOpts := o
				idleOpts.rate, idleOpts.duration = 0, o.idle
				b, err := budgetRound(idleOpts, work, bd.bin, brokerAddr, rr+1000)
				if err != nil {
					return err
				}
				fmt.Printf("%s baseline: no lines over %s: CPU %.2f%% of one core, peak RSS %.1f MiB\n", label, o.idle, b.cpuPct, b.hwmMiB)
				bd.idles = append(bd.idles, b)
			}
			if !o.skipBudget {
				b, err := budgetRound(o, work, bd.bin, brokerAddr, rr)
				if err != nil {
					return err
				}
				fmt.Printf("%s budget: %d lines at %d lines/s over %s: CPU %.2f%% of one core, peak RSS %.1f MiB (%.1f MiB at the end)\n",
					label, b.lines, o.rate, o.duration, b.cpuPct, b.hwmMiB, b.rssMiB)
				bd.budgets = append(bd.budgets, b)
			}
			if !o.skipCeiling {
				c, err := ceilingRound(o, work, bd.bin, brokerAddr, rr, pin)
				if err != nil {
					return err
				}
				fmt.Printf("%s ceiling: %d lines on one core: %.0f lines/s, %.2f µs CPU per line, peak RSS %.1f MiB\n",
					label, o.ceilingLines, c.linesPerSec, c.cpuSecPerLine*1e6, c.hwmMiB)
				bd.ceilings = append(bd.ceilings, c)
			}
		}
	}
	med := func(v []float64) float64 {
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	for _, bd := range builds {
		if len(builds) > 1 {
			fmt.Printf("%s (%s):\n", bd.name, bd.bin)
		}
		if len(bd.budgets) > 0 {
			var cpu, hwm []float64
			for _, b := range bd.budgets {
				cpu, hwm = append(cpu, b.cpuPct), append(hwm, b.hwmMiB)
			}
			bd.cpu, bd.hwm = med(cpu), med(hwm)
			fmt.Printf("median budget over %d rounds: CPU %.2f%% of one core (target <= 5%%), peak RSS %.1f MiB (target <= 64 MiB)\n", len(bd.budgets), bd.cpu, bd.hwm)
			if len(bd.idles) > 0 {
				var icpu, ihwm []float64
				for _, b := range bd.idles {
					icpu, ihwm = append(icpu, b.cpuPct), append(ihwm, b.hwmMiB)
				}
				bd.idleCPUs = med(icpu)
				fmt.Printf("median baseline (same collector, no lines) over %d rounds: CPU %.2f%% of one core, peak RSS %.1f MiB; the lines cost %.2f%% of a core, %.2f µs each\n",
					len(bd.idles), bd.idleCPUs, med(ihwm), bd.cpu-bd.idleCPUs, (bd.cpu-bd.idleCPUs)/100/float64(o.rate)*1e6)
			}
		}
		if len(bd.ceilings) > 0 {
			var lps, cpl, hwm []float64
			for _, c := range bd.ceilings {
				lps, cpl, hwm = append(lps, c.linesPerSec), append(cpl, c.cpuSecPerLine*1e6), append(hwm, c.hwmMiB)
			}
			bd.lps = med(lps)
			fmt.Printf("median ceiling over %d rounds: %.0f lines/s on one core (target >= 300000), %.2f µs CPU per line, peak RSS %.1f MiB\n", len(bd.ceilings), bd.lps, med(cpl), med(hwm))
		}
	}
	if len(builds) == 2 {
		b, a := builds[0], builds[1]
		ratio := func(x, y float64) float64 {
			if y == 0 {
				return 0
			}
			return x / y
		}
		fmt.Printf("this build / baseline-bin (medians): CPU at %d lines/s %.3f, peak RSS %.3f, ceiling %.3f\n", o.rate, ratio(a.cpu, b.cpu), ratio(a.hwm, b.hwm), ratio(a.lps, b.lps))
	}
	return nil
}

func cpuModel() string {
	if m, _ := procstat.Machine(); m != "" {
		return m
	}
	return "unknown CPU"
}

func roundDir(work, kind string, r int) (string, error) {
	dir := filepath.Join(work, fmt.Sprintf("%s-%d", kind, r))
	return dir, os.MkdirAll(filepath.Join(dir, "logs"), 0o755)
}

// startCollector starts a collector and returns it with its HTTP address
// and, when profiled (a build that has http.pprof_listen), the loopback
// address of its profiler.
func startCollector(o options, dir, bin, brokerAddr, prefix string, ceiling, profiled bool, env []string, argv func(...string) []string) (*proc, string, string, error) {
	cfg := filepath.Join(dir, "tpflow.yaml")
	text, pprofAddr := collectConfig(dir, brokerAddr, prefix, o.batch, ceiling), ""
	if profiled {
		pprofAddr = freeAddr()
		text += "http:\n  pprof_listen: " + pprofAddr + "\n"
	}
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		return nil, "", "", err
	}
	listen := freeAddr()
	p, err := startProc(dir, "collect", env, argv(bin, "collect", "--config", cfg, "--listen", listen)...)
	return p, listen, pprofAddr, err
}

func budgetRound(o options, work, bin, brokerAddr string, r int) (budgetResult, error) {
	dir, err := roundDir(work, "budget", r)
	if err != nil {
		return budgetResult{}, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "logs", "app.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return budgetResult{}, err
	}
	defer f.Close()
	var env []string
	if o.budgetProcs > 0 {
		env = append(env, fmt.Sprintf("GOMAXPROCS=%d", o.budgetProcs))
	}
	col, listen, pprofAddr, err := startCollector(o, dir, bin, brokerAddr, fmt.Sprintf("budget%d.", r), false, o.profBudget != "" && r == 0, env, func(a ...string) []string { return a })
	if err != nil {
		return budgetResult{}, err
	}
	defer col.stop()
	pid := col.cmd.Process.Pid
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	written := make(chan int, 1)
	go func() {
		start := time.Now()
		buf := make([]byte, 0, 64<<10)
		n := 0
		for ctx.Err() == nil {
			now := time.Now()
			due := int(now.Sub(start).Seconds() * float64(o.rate))
			buf = buf[:0]
			for ; n < due; n++ {
				buf = appendLine(buf, n, now)
			}
			if len(buf) > 0 {
				if _, err := f.Write(buf); err != nil {
					break
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		written <- n
	}()
	time.Sleep(3 * time.Second) // start-up and warm-up
	if _, err := metric(listen, "tpflow_collect_acked_events_total"); err != nil {
		return budgetResult{}, fmt.Errorf("collector not serving: %v\n%s", err, col.tail())
	}
	t0, err := procstat.CPUSeconds(pid)
	if err != nil {
		return budgetResult{}, err
	}
	w0 := time.Now()
	if o.profBudget != "" && r == 0 {
		go fetchProfile(pprofAddr, o.profBudget, o.duration-time.Second)
	}
	time.Sleep(o.duration)
	t1, err := procstat.CPUSeconds(pid)
	if err != nil {
		return budgetResult{}, fmt.Errorf("collector gone: %v\n%s", err, col.tail())
	}
	wall := time.Since(w0)
	res := budgetResult{cpuPct: 100 * (t1 - t0) / wall.Seconds()}
	res.rssMiB, res.hwmMiB = memMiB(pid)
	cancel()
	res.lines = <-written
	// Every line must have been shipped: a collector that falls behind
	// would look cheap.
	want := float64(2 * res.lines) // a call and a log event per line
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := metric(listen, "tpflow_collect_acked_events_total")
		if err == nil && got >= want {
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("budget round: %v of %v events acknowledged\n%s", got, want, col.tail())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return res, nil
}

func ceilingRound(o options, work, bin, brokerAddr string, r int, pin func(int, ...string) []string) (ceilingResult, error) {
	dir, err := roundDir(work, "ceiling", r)
	if err != nil {
		return ceilingResult{}, err
	}
	f, err := os.Create(filepath.Join(dir, "logs", "app.log"))
	if err != nil {
		return ceilingResult{}, err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	var buf []byte
	now := time.Now()
	for i := range o.ceilingLines {
		buf = appendLine(buf[:0], i, now)
		if _, err := bw.Write(buf); err != nil {
			return ceilingResult{}, err
		}
	}
	if err := errors.Join(bw.Flush(), f.Close()); err != nil {
		return ceilingResult{}, err
	}
	start := time.Now()
	col, listen, pprofAddr, err := startCollector(o, dir, bin, brokerAddr, fmt.Sprintf("ceiling%d.", r), true, o.profile != "" && r == 0,
		[]string{"GOMAXPROCS=1"}, func(a ...string) []string { return pin(1, a...) })
	if err != nil {
		return ceilingResult{}, err
	}
	defer col.stop()
	pid := col.cmd.Process.Pid
	if o.profile != "" && r == 0 {
		go func() {
			time.Sleep(500 * time.Millisecond)
			fetchProfile(pprofAddr, o.profile, 3*time.Second)
		}()
	}
	want := float64(2 * o.ceilingLines)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		got, err := metric(listen, "tpflow_collect_acked_events_total")
		if err == nil && got >= want {
			break
		}
		select {
		case <-col.done:
			return ceilingResult{}, fmt.Errorf("collector exited:\n%s", col.tail())
		default:
		}
		if time.Now().After(deadline) {
			return ceilingResult{}, fmt.Errorf("ceiling round: %v of %v events acknowledged in 5 minutes", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
	wall := time.Since(start)
	cpu, err := procstat.CPUSeconds(pid)
	if err != nil {
		return ceilingResult{}, err
	}
	res := ceilingResult{
		linesPerSec:   float64(o.ceilingLines) / wall.Seconds(),
		cpuSecPerLine: cpu / float64(o.ceilingLines),
	}
	_, res.hwmMiB = memMiB(pid)
	return res, nil
}

// fetchProfile writes a CPU profile of d of the role whose profiler is at
// listen to path.
func fetchProfile(listen, path string, d time.Duration) {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", listen, int(d.Seconds())))
	if err != nil {
		return
	}
	defer resp.Body.Close()
	pf, err := os.Create(path)
	if err != nil {
		return
	}
	defer pf.Close()
	_, _ = io.Copy(pf, resp.Body)
}
