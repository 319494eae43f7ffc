package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tpflow/tpflow/benchmarks/procstat"
)

// proc is one process of the run: a tpflow role started by the harness, or
// the ClickHouse server, which scripts/clickhouse.sh starts as a daemon.
type proc struct {
	name string
	pid  int
	log  string
	cmd  *exec.Cmd // nil for ClickHouse
	done chan struct{}
	err  error

	mu     sync.Mutex
	maxRSS int64 // largest sampled VmRSS, bytes
	hwm    int64 // last VmHWM read, bytes
}

// startProc runs bin with args and env added to the harness's
// environment, its output going to dir/name.log.
func startProc(dir, name string, env []string, bin string, args ...string) (*proc, error) {
	p := &proc{name: name, log: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	f, err := os.Create(p.log)
	if err != nil {
		return nil, fmt.Errorf("cannot start %s: %w", name, err)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	// The roles die with the harness, even on SIGKILL.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot start %s: %w", name, err)
	}
	p.pid = p.cmd.Process.Pid
	go func() {
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// alive reports whether the process still runs.
func (p *proc) alive() bool {
	if p.cmd == nil {
		return syscall.Kill(p.pid, 0) == nil
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM, waits up to timeout, then SIGKILL. ClickHouse is
// stopped by its script instead.
func (p *proc) stop(timeout time.Duration) {
	if p.cmd == nil || !p.alive() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// tail returns the end of the process log.
func (p *proc) tail() string { return procstat.Tail(p.log) }

// sample reads the memory of p once and keeps the maxima.
func (p *proc) sample() {
	rss, hwm, err := procstat.Memory(p.pid)
	if err != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.maxRSS = max(p.maxRSS, rss)
	p.hwm = max(p.hwm, hwm)
}

// peaks returns the largest sampled VmRSS and the last VmHWM.
func (p *proc) peaks() (maxRSS, hwm int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.maxRSS, p.hwm
}

// sampler samples the memory of procs every interval until ctx is done.
func sampler(ctx context.Context, every time.Duration, procs func() []*proc) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for _, p := range procs() {
			p.sample()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// freeAddr returns a loopback address nobody listens on now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitTCP waits until addr accepts connections.
func waitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not accept connections after %s: %w", addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitReady waits until http://addr/readyz answers 200.
func waitReady(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: time.Second}
	for {
		resp, err := c.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s/readyz not ready after %s: %w", addr, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// scrape returns the sum of the samples of metric name (over all label
// sets) in the Prometheus text exposition of http://addr/metrics.
func scrape(addr, name string) (float64, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, fmt.Errorf("cannot scrape %s: %w", addr, err)
	}
	defer resp.Body.Close()
	var sum float64
	found := false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue // a longer metric name with this prefix
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return 0, fmt.Errorf("cannot parse %q from %s: %w", line, addr, err)
		}
		sum += v
		found = true
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("cannot scrape %s: %w", addr, err)
	}
	if !found {
		return 0, fmt.Errorf("%s serves no %s", addr, name)
	}
	return sum, nil
}
