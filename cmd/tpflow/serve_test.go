package main

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tpflow/tpflow/internal/cli"
	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest"
	"github.com/tpflow/tpflow/pipeline/kafka"
)

// roleProcess is one role run in-process by the CLI.
type roleProcess struct {
	t      *testing.T
	base   string       // http://HOST:PORT of the role's HTTP server
	client *http.Client // nil is http.DefaultClient
	cancel context.CancelFunc
	done   chan int
	errOut *syncBuffer
	exited bool // done has been read
}

// startRole runs `tpflow args...` until the test ends, and waits until its
// HTTP server on listen answers /healthz.
func startRole(t *testing.T, listen string, args ...string) *roleProcess {
	t.Helper()
	return startRoleWith(t, "http://"+listen, nil, args...)
}

// startRoleWith is startRole for a server at base (http:// or
// https://HOST:PORT) reached with client.
func startRoleWith(t *testing.T, base string, client *http.Client, args ...string) *roleProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &roleProcess{t: t, base: base, client: client, cancel: cancel, done: make(chan int, 1), errOut: &syncBuffer{}}
	go func() { p.done <- run(ctx, args, &syncBuffer{}, p.errOut) }()
	t.Cleanup(func() { p.stop() })
	p.waitStatus("/healthz", 200, 10*time.Second)
	return p
}

// waitStatus polls path until it answers want, failing the test after d.
func (p *roleProcess) waitStatus(path string, want int, d time.Duration) string {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for {
		code, body, err := httpDo(p.client, "GET", p.base+path, nil)
		if err == nil && code == want {
			return string(body)
		}
		select {
		case c := <-p.done:
			p.exited = true
			p.t.Fatalf("role exited %d while waiting for %s to answer %d: %s", c, path, want, p.errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s answered %d %q (err %v) for %s, want %d; stderr:\n%s", path, code, body, err, d, want, p.errOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop cancels the role and checks that it exits 0.
func (p *roleProcess) stop() {
	if p.cancel == nil || p.exited {
		return
	}
	p.cancel()
	p.cancel = nil
	select {
	case c := <-p.done:
		if c != cli.ExitOK {
			p.t.Errorf("role exited %d: %s", c, p.errOut.String())
		}
	case <-time.After(20 * time.Second):
		p.t.Error("role did not stop within 20 s of its context")
	}
}

// startBrokerAt starts the embedded broker on addr.
func startBrokerAt(t *testing.T, addr string) {
	t.Helper()
	bc := kafka.DefaultBrokerConfig()
	bc.Listen = addr
	b, err := kafka.StartBroker(context.Background(), bc, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
}

// checkReadyFollowsKafka checks that a role's /readyz answers 503 naming
// Kafka while no broker listens on brokerAddr, and 200 once one does.
func checkReadyFollowsKafka(t *testing.T, p *roleProcess, brokerAddr string) {
	t.Helper()
	body := p.waitStatus("/readyz", 503, 10*time.Second)
	if !strings.Contains(body, "kafka") {
		t.Errorf("/readyz before the broker is up = %q, want the Kafka reason", body)
	}
	startBrokerAt(t, brokerAddr)
	if body := p.waitStatus("/readyz", 200, 30*time.Second); body != "ready\n" {
		t.Errorf("/readyz after the broker is up = %q, want ready", body)
	}
}

func TestAggregateReadyOnlyOnceKafkaAnswers(t *testing.T) {
	brokerAddr, listen := freeAddr(t), freeAddr(t)
	p := startRole(t, listen, "aggregate", "--brokers", brokerAddr, "--listen", listen)
	checkReadyFollowsKafka(t, p, brokerAddr)
}

func TestAlertReadyOnlyOnceKafkaAnswers(t *testing.T) {
	rules := writeTemp(t, "rules.yaml", goodRules)
	cfg := writeTemp(t, "tpflow.yaml", "alert:\n  rules_files: ["+rules+"]\n")
	brokerAddr, listen := freeAddr(t), freeAddr(t)
	p := startRole(t, listen, "alert", "--config", cfg, "--brokers", brokerAddr, "--listen", listen)
	checkReadyFollowsKafka(t, p, brokerAddr)
}

func TestSinkReadyOnlyOnceKafkaAndClickHouseAnswer(t *testing.T) {
	ch := chtest.Start(t)
	brokerAddr, listen := freeAddr(t), freeAddr(t)
	p := startRole(t, listen, "sink", "--brokers", brokerAddr, "--listen", listen,
		"--clickhouse", "clickhouse://"+ch.Addr()+"/tpflow_sink_ready")
	checkReadyFollowsKafka(t, p, brokerAddr)
	ch.Stop()
	body := p.waitStatus("/readyz", 503, 30*time.Second)
	if !strings.Contains(body, "ClickHouse") {
		t.Errorf("/readyz with ClickHouse stopped = %q, want the ClickHouse reason", body)
	}
	ch.Start()
	p.waitStatus("/readyz", 200, 60*time.Second)
}

func TestBrokerServesMetrics(t *testing.T) {
	brokerAddr, listen := freeAddr(t), freeAddr(t)
	cfg := writeTemp(t, "tpflow.yaml", "broker:\n  http_listen: "+listen+"\n")
	p := startRole(t, listen, "broker", "--config", cfg, "--listen", brokerAddr)
	if body := p.waitStatus("/readyz", 200, 10*time.Second); body != "ready\n" {
		t.Errorf("/readyz of the broker = %q, want ready", body)
	}
	if body := p.waitStatus("/metrics", 200, time.Second); !strings.Contains(body, "\ngo_goroutines ") {
		t.Errorf("/metrics of the broker lacks the Go metrics:\n%s", body)
	}
}

// checkNoProfiler checks that the role's main listener at base serves no
// part of the profiler.
func checkNoProfiler(t *testing.T, role, base string) {
	t.Helper()
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap"} {
		if code, _, err := httpGet(base + path); err != nil || code != 404 {
			t.Errorf("the %s role's %s = %d (err %v), want 404", role, path, code, err)
		}
	}
}

// TestProfilerOnlyOnItsLoopbackListener checks that a role without
// http.pprof_listen serves no profiler, and that one with it serves the
// profiler on that loopback listener and still not on its main one.
func TestProfilerOnlyOnItsLoopbackListener(t *testing.T) {
	brokerAddr := freeAddr(t)
	listen := freeAddr(t)
	off := startRole(t, listen, "aggregate", "--brokers", brokerAddr, "--listen", listen)
	checkNoProfiler(t, "aggregate", off.base)
	off.stop()

	listen, pprofAddr := freeAddr(t), freeAddr(t)
	cfg := writeTemp(t, "tpflow.yaml", "http:\n  pprof_listen: "+pprofAddr+"\n")
	on := startRole(t, listen, "aggregate", "--config", cfg, "--brokers", brokerAddr, "--listen", listen)
	checkNoProfiler(t, "aggregate", on.base)
	code, body, err := httpGet("http://" + pprofAddr + "/debug/pprof/cmdline")
	if err != nil || code != 200 || !strings.Contains(string(body), os.Args[0]) {
		t.Fatalf("GET /debug/pprof/cmdline on %s = %d %q (err %v), want the profiler", pprofAddr, code, body, err)
	}
	if code, body, err := httpGet("http://" + pprofAddr + "/debug/pprof/goroutine?debug=1"); err != nil || code != 200 || !strings.Contains(string(body), "goroutine profile") {
		t.Errorf("goroutine profile on %s = %d (err %v), body %.80q", pprofAddr, code, err, body)
	}
	if code, _, err := httpGet("http://" + pprofAddr + "/metrics"); err != nil || code != 404 {
		t.Errorf("/metrics on the profiler's listener = %d (err %v), want 404", code, err)
	}
}
