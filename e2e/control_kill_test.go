package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tpflow/tpflow/internal/testkit"
	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest"
)

const controlToken = "e2e-operator-token-0123456789"

// controlClient talks to a tpflow control process.
type controlClient struct {
	t    *testing.T
	addr string
}

func (c controlClient) do(method, path, body string) (int, []byte, error) {
	req, err := http.NewRequest(method, "http://"+c.addr+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+controlToken)
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (c controlClient) ready() bool {
	code, _, err := c.do("GET", "/readyz", "")
	return err == nil && code == http.StatusOK
}

// TestControlSurvivesSIGKILL writes configuration versions to a real
// `tpflow control` as fast as it answers, kills it with SIGKILL in the
// middle, and starts it again on the same store: every version it
// acknowledged is there with its content, the numbers have no gap, each
// version has exactly one operation, every operation reaches ClickHouse
// exactly once, and the next version takes the next number.
func TestControlSurvivesSIGKILL(t *testing.T) {
	t.Parallel()
	ch := chtest.Shared(t)
	dir := t.TempDir()
	c := controlClient{t: t, addr: freeAddr(t)}
	cfg := filepath.Join(dir, "tpflow.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`http:
  listen: %s
  auth:
    tokens:
      - {name: olga, role: operator, token: %s}
control:
  store: %s
  operations:
    interval: 50ms
clickhouse:
  dsn: %s
`, c.addr, controlToken, filepath.Join(dir, ".data", "control.db"), dbDSN(t, ch, ch.Database()))), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, dir, "control", "control", "--config", cfg)
	testkit.WaitFor(t, 20*time.Second, "tpflow control to be ready", c.ready)

	var (
		mu    sync.Mutex
		acked = map[int64]string{} // version → sha256 acknowledged
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	for w := range 3 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				code, body, err := c.do("POST", "/api/v1/config/global/versions",
					fmt.Sprintf(`{"files":[{"name":"tpflow.yaml","body":"log:\n  level: info\n# writer %d, write %d\n"}]}`, w, i))
				if err != nil || code != http.StatusCreated {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				var ans struct {
					Version struct {
						Version int64
						SHA256  string
					}
				}
				if err := json.Unmarshal(body, &ans); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				acked[ans.Version.Version] = ans.Version.SHA256
				mu.Unlock()
			}
		})
	}
	testkit.WaitFor(t, 20*time.Second, "40 acknowledged versions", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) >= 40 })
	p.kill() // SIGKILL while the writers write
	close(stop)
	wg.Wait()
	p.start()
	testkit.WaitFor(t, 20*time.Second, "tpflow control to be ready again", c.ready)

	code, body, err := c.do("GET", "/api/v1/config/global/versions?limit=1000", "")
	if err != nil || code != http.StatusOK {
		t.Fatalf("list versions = %d %s %v", code, body, err)
	}
	var list []struct {
		Version int64
		SHA256  string
	}
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	stored := map[int64]string{}
	for i, v := range list {
		stored[v.Version] = v.SHA256
		if v.Version != int64(len(list)-i) {
			t.Errorf("version %d at position %d of %d: the numbers have a gap", v.Version, i, len(list))
		}
	}
	for n, sha := range acked {
		if stored[n] != sha {
			t.Errorf("acknowledged version %d (%s) is stored as %q", n, sha, stored[n])
		}
	}
	_, body, _ = c.do("GET", "/api/v1/operations?target=config:global&limit=1000", "")
	var ops []struct{ ID int64 }
	if err := json.Unmarshal(body, &ops); err != nil {
		t.Fatal(err)
	}
	if len(ops) != len(list) {
		t.Errorf("%d operations for %d versions", len(ops), len(list))
	}
	code, body, _ = c.do("POST", "/api/v1/config/global/versions", `{"files":[{"name":"tpflow.yaml","body":"log:\n  level: warn\n"}]}`)
	if code != http.StatusCreated || !strings.Contains(string(body), fmt.Sprintf(`"version": %d,`, len(list)+1)) {
		t.Errorf("the next version after the restart = %d %s, want number %d", code, body, len(list)+1)
	}
	conn := openDB(t, ch, ch.Database())
	want := uint64(len(list) + 1)
	var rows, ids uint64
	testkit.WaitFor(t, 30*time.Second, "every operation in ClickHouse", func() bool {
		err := conn.QueryRow(context.Background(), "SELECT count(), uniqExact(id) FROM "+ch.Database()+".operations FINAL").Scan(&rows, &ids)
		return err == nil && rows == want
	})
	if ids != want {
		t.Errorf("ClickHouse has %d rows with %d ids, want %d", rows, ids, want)
	}
	t.Logf("%d versions acknowledged before the kill, %d stored", len(acked), len(list))
}
