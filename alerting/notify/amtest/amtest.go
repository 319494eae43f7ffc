// Package amtest runs Debian's prometheus-alertmanager for tests and reads
// back what it lists. A missing binary fails the test under CI (CI set)
// and skips it elsewhere with the command that installs it.
package amtest

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tpflow/tpflow/internal/testkit"
)

// Alert is one alert as GET /api/v2/alerts returns it.
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	Status      struct {
		State string `json:"state"`
	} `json:"status"`
}

// binary finds the Alertmanager binary or ends the test.
func binary(t testing.TB) string {
	t.Helper()
	return testkit.LookPath(t, "prometheus-alertmanager is not installed (scripts/install-deps.sh installs it)",
		"prometheus-alertmanager", "/usr/bin/prometheus-alertmanager")
}

// Start runs prometheus-alertmanager on a free loopback port with a private
// storage path, waits until /-/ready answers, stops it when the test ends,
// and returns its base URL.
func Start(t testing.TB) string {
	t.Helper()
	bin := binary(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte("route:\n  receiver: none\n  group_wait: 1s\nreceivers:\n  - name: none\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for range 3 { // a free port may be taken between probe and bind
		base, stop, err := start(bin, cfg, dir, testkit.FreeAddr(t))
		if err == nil {
			t.Cleanup(stop)
			return base
		}
		lastErr = err
		log, _ := os.ReadFile(filepath.Join(dir, "alertmanager.log"))
		t.Logf("alertmanager failed to start: %v\n%s", err, log)
	}
	t.Fatalf("cannot start alertmanager: %v", lastErr)
	return ""
}

// start runs one Alertmanager on addr and waits up to 30 s for it to be
// ready; on failure it has already stopped it.
func start(bin, cfg, dir, addr string) (base string, stop func(), err error) {
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=warn")
	logf, err := os.Create(filepath.Join(dir, "alertmanager.log"))
	if err != nil {
		return "", nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return "", nil, fmt.Errorf("cannot start %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()
	var once bool
	stop = func() {
		if once {
			return
		}
		once = true
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	base = "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-exited:
			exited <- err
			stop()
			return "", nil, fmt.Errorf("alertmanager exited: %v", err)
		default:
		}
		if resp, err := http.Get(base + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base, stop, nil
			}
		}
	}
	stop()
	return "", nil, errors.New("alertmanager at " + base + " not ready after 30s")
}

// List returns the alerts named name that the Alertmanager at base lists
// for the query (e.g. "" or "?active=true&silenced=false&inhibited=false").
func List(t testing.TB, base, query, name string) []Alert {
	t.Helper()
	resp, err := http.Get(base + "/api/v2/alerts" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var all []Alert
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		t.Fatal(err)
	}
	var out []Alert
	for _, a := range all {
		if a.Labels["alertname"] == name {
			out = append(out, a)
		}
	}
	return out
}
