// Package chtest runs private clickhouse-server processes for tests.
//
// Start gives a test its own server in a temporary directory, on free
// loopback ports, that it may stop and start again (the data and the ports
// survive). Shared gives a test its own database on one server started once
// per test binary; call RunMain from TestMain to stop that server at the
// end. A server is killed when the test binary dies, however it dies
// (PR_SET_PDEATHSIG).
//
// When clickhouse-server is not installed, tests fail if the environment
// variable CI is set and are skipped otherwise. The config written here
// matches scripts/clickhouse.sh, which runs the same server outside tests.
package chtest

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tpflow/tpflow/internal/testkit"
)

// StartTimeout bounds how long a server may take to answer SELECT 1.
const StartTimeout = 60 * time.Second

// Server is one clickhouse-server process, or a database on the shared one.
type Server struct {
	tb       testing.TB
	dir      string
	tcp, web int
	database string
	shared   bool

	mu  sync.Mutex
	cmd *exec.Cmd
	// exited is closed when the process running now has been reaped.
	exited chan struct{}
}

// Bin returns the path of clickhouse-server, or "" when it is not
// installed. Debian installs it in /usr/sbin, which is not on every PATH.
func Bin() string {
	if p, err := exec.LookPath("clickhouse-server"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/clickhouse-server"); err == nil {
		return "/usr/sbin/clickhouse-server"
	}
	return ""
}

func requireBin(tb testing.TB) string {
	tb.Helper()
	bin := Bin()
	if bin != "" {
		return bin
	}
	testkit.Missing(tb, "clickhouse-server is not installed (Debian: apt-get install clickhouse-server clickhouse-client)")
	return ""
}

// Start starts a server that belongs to the calling test and is removed,
// process and files, when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin := requireBin(tb)
	s, err := newServer(bin, tb.TempDir())
	if err != nil {
		tb.Fatal(err)
	}
	s.tb = tb
	s.database = "default"
	tb.Cleanup(func() { _ = s.kill() })
	return s
}

func newServer(bin, dir string) (*Server, error) {
	s := &Server{dir: dir}
	var err error
	if s.tcp, err = freePort(); err != nil {
		return nil, err
	}
	if s.web, err = freePort(); err != nil {
		return nil, err
	}
	if err := s.writeConfig(); err != nil {
		return nil, err
	}
	if err := s.start(bin); err != nil {
		return nil, err
	}
	return s, nil
}

// Addr returns the native protocol address, host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.tcp)) }

// HTTPAddr returns the HTTP interface address, host:port.
func (s *Server) HTTPAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.web)) }

// Database returns the database this Server hands out: "default" for a
// server from Start, the test's own database for one from Shared.
func (s *Server) Database() string { return s.database }

// DSN returns a clickhouse:// URL of the native port and Database, with
// short dial and read timeouts so a stopped server is noticed quickly.
func (s *Server) DSN() string {
	return "clickhouse://" + s.Addr() + "/" + s.database + "?dial_timeout=2s&read_timeout=30s"
}

// Dir returns the directory that holds the server's data, config and logs.
func (s *Server) Dir() string { return s.dir }

// AddUsers writes file, a users.d file (ClickHouse's XML of profiles and
// users), into the configuration of a server from Start under name, and
// waits until the server has loaded it: until user can log in with
// password. It fails the test if that takes longer than StartTimeout (the
// server re-reads its users files every few seconds).
func (s *Server) AddUsers(name string, file []byte, user, password string) {
	s.tb.Helper()
	if s.shared {
		s.tb.Fatal("chtest: AddUsers on a shared server; use chtest.Start")
	}
	dir := filepath.Join(s.dir, "users.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		s.tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), file, 0o600); err != nil {
		s.tb.Fatal(err)
	}
	var err error
	for deadline := time.Now().Add(StartTimeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var conn ch.Conn
		if conn, err = ch.Open(&ch.Options{Addr: []string{s.Addr()}, Protocol: ch.Native, DialTimeout: time.Second,
			Auth: ch.Auth{Username: user, Password: password}}); err == nil {
			err = conn.Ping(context.Background())
			conn.Close()
		}
		if err == nil {
			return
		}
	}
	s.tb.Fatalf("chtest: user %s of users.d/%s cannot log in after %s: %v; log tail:\n%s", user, name, StartTimeout, err, s.logTail())
}

// Stop stops the server and waits until it has exited; the data stays.
// Stopping a stopped server does nothing. Stop fails the test on a shared
// server: tests that stop the server use Start.
func (s *Server) Stop() {
	s.tb.Helper()
	if s.shared {
		s.tb.Fatal("chtest: Stop on a shared server; use chtest.Start for a server the test may stop")
	}
	if err := s.stop(); err != nil {
		s.tb.Fatal(err)
	}
}

// Start starts a stopped server again, on the same ports and data, and
// waits until it answers. Starting a running server does nothing.
func (s *Server) Start() {
	s.tb.Helper()
	if s.shared {
		s.tb.Fatal("chtest: Start on a shared server; use chtest.Start for a server the test may stop")
	}
	if err := s.start(Bin()); err != nil {
		s.tb.Fatal(err)
	}
}

// Restart stops and starts the server.
func (s *Server) Restart() {
	s.tb.Helper()
	s.Stop()
	s.Start()
}

// Running reports whether the server process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running()
}

func (s *Server) running() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

func (s *Server) start(bin string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running() {
		return nil
	}
	logf, err := os.OpenFile(filepath.Join(s.dir, "log", "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("chtest: cannot open server log: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--config-file="+filepath.Join(s.dir, "config.xml"))
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group, and killed when the test binary dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("chtest: cannot start %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd, s.exited = cmd, exited
	if err := waitReady(s.Addr(), exited); err != nil {
		_ = cmd.Process.Kill()
		<-exited
		return fmt.Errorf("chtest: server in %s did not answer SELECT 1 on %s within %s (%w) after %s; log tail:\n%s",
			s.dir, s.Addr(), StartTimeout, err, time.Since(t0).Round(time.Millisecond), s.logTail())
	}
	return nil
}

func waitReady(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(StartTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("the server exited")
		default:
		}
		if last = ping(addr); last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return last
}

func ping(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	_ = c.Close()
	conn, err := ch.Open(&ch.Options{Addr: []string{addr}, Protocol: ch.Native, DialTimeout: time.Second})
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var one uint8
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return err
	}
	if one != 1 {
		return fmt.Errorf("SELECT 1 returned %d", one)
	}
	return nil
}

func (s *Server) stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running() {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return nil
	case <-time.After(30 * time.Second):
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.exited
	return fmt.Errorf("chtest: server in %s ignored SIGTERM for 30s and was killed", s.dir)
}

// kill ends the server at once; the data does not matter any more.
func (s *Server) kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running() {
		return nil
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.exited
	return nil
}

func (s *Server) logTail() string {
	var b strings.Builder
	for _, f := range []string{"clickhouse-server.err.log", "clickhouse-server.log", "stdout.log"} {
		data, err := os.ReadFile(filepath.Join(s.dir, "log", f))
		if err != nil || len(data) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		fmt.Fprintf(&b, "==> %s <==\n%s\n", f, strings.Join(lines[max(0, len(lines)-20):], "\n"))
	}
	return b.String()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("chtest: cannot find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) writeConfig() error {
	for _, d := range []string{"data", "tmp", "user_files", "format_schemas", "log"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o755); err != nil {
			return fmt.Errorf("chtest: %w", err)
		}
	}
	r := strings.NewReplacer("@DIR@", s.dir, "@TCP@", strconv.Itoa(s.tcp), "@HTTP@", strconv.Itoa(s.web))
	if err := os.WriteFile(filepath.Join(s.dir, "config.xml"), []byte(r.Replace(configXML)), 0o644); err != nil {
		return fmt.Errorf("chtest: cannot write config: %w", err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "users.xml"), []byte(usersXML), 0o644); err != nil {
		return fmt.Errorf("chtest: cannot write users: %w", err)
	}
	return nil
}

// The server configuration, shared with scripts/clickhouse.sh.
//
//go:embed server/config.xml
var configXML string

//go:embed server/users.xml
var usersXML string

var (
	sharedOnce sync.Once
	sharedSrv  *Server
	sharedErr  error
	sharedSeq  atomic.Uint64
)

// Shared returns a view of one server shared by every test of the binary,
// with a fresh database for the calling test that is dropped when the test
// ends. The server starts on first use; RunMain stops it. Tests on a shared
// server must not stop it.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	bin := requireBin(tb)
	sharedOnce.Do(func() {
		sweepStale()
		dir, err := os.MkdirTemp("", sharedPrefix+"*")
		if err != nil {
			sharedErr = fmt.Errorf("chtest: %w", err)
			return
		}
		if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
			sharedErr = fmt.Errorf("chtest: %w", err)
			return
		}
		sharedSrv, sharedErr = newServer(bin, dir)
		if sharedErr != nil {
			_ = os.RemoveAll(dir)
		}
	})
	if sharedErr != nil {
		tb.Fatal(sharedErr)
	}
	db := fmt.Sprintf("t%d_%d", os.Getpid(), sharedSeq.Add(1))
	if err := sharedExec("CREATE DATABASE " + db); err != nil {
		tb.Fatalf("chtest: cannot create database %s: %v", db, err)
	}
	tb.Cleanup(func() {
		if err := sharedExec("DROP DATABASE IF EXISTS " + db); err != nil {
			tb.Errorf("chtest: cannot drop database %s: %v", db, err)
		}
	})
	return &Server{tb: tb, dir: sharedSrv.dir, tcp: sharedSrv.tcp, web: sharedSrv.web, database: db, shared: true}
}

func sharedExec(q string) error {
	conn, err := ch.Open(&ch.Options{Addr: []string{sharedSrv.Addr()}, Protocol: ch.Native, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return conn.Exec(ctx, q)
}

const sharedPrefix = "tpflow-chtest-shared-"

// sweepStale removes shared server directories whose test binary is gone
// (it died before RunMain could clean up; its server died with it).
func sweepStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), sharedPrefix+"*"))
	for _, d := range dirs {
		data, err := os.ReadFile(filepath.Join(d, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil || pid <= 0 {
			continue
		}
		if syscall.Kill(pid, 0) == nil {
			continue // still running
		}
		_ = os.RemoveAll(d)
	}
}

// RunMain runs the tests and then stops the shared server, if one was
// started, and removes its files. Use it as
//
//	func TestMain(m *testing.M) { os.Exit(chtest.RunMain(m)) }
func RunMain(m *testing.M) int {
	code := m.Run()
	if sharedSrv != nil {
		_ = sharedSrv.kill()
		_ = os.RemoveAll(sharedSrv.dir)
	}
	return code
}

// Scalar runs q, a query of one row of one column, and returns its value,
// failing tb on any error.
func Scalar[T any](tb testing.TB, conn driver.Conn, q string, args ...any) T {
	tb.Helper()
	var v T
	if err := conn.QueryRow(context.Background(), q, args...).Scan(&v); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
	return v
}
