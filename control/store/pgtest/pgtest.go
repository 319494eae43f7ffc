// Package pgtest runs a private PostgreSQL server for tests: one per test
// binary, started on first use with initdb and postgres (Debian's
// postgresql package) in a temporary directory on a free loopback port,
// and killed when the test binary dies, however it dies
// (PR_SET_PDEATHSIG). Each test gets a database of its own. As root the
// server runs as the postgres user, which PostgreSQL requires.
//
// When PostgreSQL is not installed, tests fail if the environment
// variable CI is set and are skipped otherwise.
package pgtest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/tpflow/tpflow/internal/testkit"
)

// StartTimeout bounds how long the server may take to accept connections.
const StartTimeout = 60 * time.Second

// BinDirs are where the PostgreSQL server binaries are looked for, newest
// first, after PATH.
var BinDirs = []string{"/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/15/bin"}

// Bin returns the directory holding initdb and postgres, or "".
func Bin() string {
	for _, d := range BinDirs {
		if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
			return d
		}
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		if _, err := os.Stat(filepath.Join(filepath.Dir(p), "initdb")); err == nil {
			return filepath.Dir(p)
		}
	}
	return ""
}

var (
	once   sync.Once
	srv    *server
	srvErr error
	dbSeq  atomic.Uint64
)

type server struct {
	dir  string
	port string
	cmd  *exec.Cmd
	done chan struct{}
}

// DSN returns the postgres:// URL of a new, empty database that belongs
// to the calling test and is dropped when it ends.
func DSN(tb testing.TB) string {
	tb.Helper()
	bin := Bin()
	if bin == "" {
		const msg = "PostgreSQL is not installed (Debian: apt-get install postgresql)"
		if os.Getenv("CI") != "" {
			tb.Fatal(msg + "; CI is set, so this is a failure")
		}
		tb.Skip(msg + "; skipping (set CI to make this a failure)")
	}
	once.Do(func() {
		_, port, _ := net.SplitHostPort(testkit.FreeAddr(tb))
		srv, srvErr = start(bin, port)
	})
	if srvErr != nil {
		tb.Fatal(srvErr)
	}
	db := fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq.Add(1))
	if err := srv.exec("CREATE DATABASE " + db); err != nil {
		tb.Fatalf("pgtest: cannot create database %s: %v", db, err)
	}
	tb.Cleanup(func() {
		if err := srv.exec("DROP DATABASE IF EXISTS " + db + " WITH (FORCE)"); err != nil {
			tb.Errorf("pgtest: cannot drop database %s: %v", db, err)
		}
	})
	return srv.url(db)
}

func (s *server) url(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%s/%s?sslmode=disable", s.port, db)
}

func (s *server) exec(q string) error {
	db, err := sql.Open("pgx", s.url("postgres"))
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = db.ExecContext(ctx, q)
	return err
}

// credential is the postgres user's when running as root, nil otherwise.
func credential() (*syscall.Credential, int, int, error) {
	if os.Geteuid() != 0 {
		return nil, -1, -1, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, 0, 0, fmt.Errorf("pgtest: running as root needs the postgres user (from the postgresql package): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid, gid, nil
}

func start(bin, port string) (*server, error) {
	cred, uid, gid, err := credential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "tpflow-pgtest-")
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if cred != nil {
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, fmt.Errorf("pgtest: %w", err)
		}
	}
	data := filepath.Join(dir, "data")
	run := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
		return cmd
	}
	if out, err := run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("pgtest: initdb in %s: %w\n%s", dir, err, out)
	}
	logf, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	defer logf.Close()
	cmd := run("postgres", "-D", data, "-p", port, "-k", dir, "-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=100",
		"-c", "shared_buffers=16MB")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("pgtest: cannot start postgres: %w", err)
	}
	s := &server{dir: dir, port: port, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	if err := s.wait(); err != nil {
		s.kill()
		log, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
		return nil, fmt.Errorf("pgtest: postgres in %s: %w; log:\n%s", dir, err, tail(string(log)))
	}
	return s, nil
}

func (s *server) wait() error {
	deadline := time.Now().Add(StartTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return errors.New("the server exited")
		default:
		}
		if last = s.exec("SELECT 1"); last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no connection within %s: %w", StartTimeout, last)
}

func (s *server) kill() {
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
}

func tail(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

// RunMain runs the tests, then kills the server, if one was started, and
// removes its files. Use it as
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.RunMain(m)) }
func RunMain(m *testing.M) int {
	code := m.Run()
	if srv != nil {
		srv.kill()
		_ = os.RemoveAll(srv.dir)
	}
	return code
}
