package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tpflow/tpflow/pipeline/clickhouse"
)

// blockingConn is a connection whose queries wait until release is closed
// (or their context ends) and then fail.
type blockingConn struct {
	driver.Conn
	started chan string
	release chan struct{}
}

func (c *blockingConn) Query(ctx context.Context, q string, args ...any) (driver.Rows, error) {
	c.started <- q
	select {
	case <-c.release:
	case <-ctx.Done():
	}
	return nil, errors.New("blocked query released")
}

// TestAPIRefusesBeyondConcurrencyLimit holds MaxConcurrent /api/v1/tp
// requests inside their query: the next one is refused 503 with
// Retry-After at once, another path is still served, and the held ones
// finish once their queries return.
func TestAPIRefusesBeyondConcurrencyLimit(t *testing.T) {
	const limit = 3
	conn := &blockingConn{started: make(chan string, 2*limit), release: make(chan struct{})}
	srv := httptest.NewServer(NewAPI(conn, "tpflow", APIOptions{MaxConcurrent: limit}).Handler())
	defer srv.Close()

	var wg sync.WaitGroup
	codes := make(chan int, limit+1)
	fetch := func(path string) {
		defer wg.Done()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Error(err)
			return
		}
		resp.Body.Close()
		codes <- resp.StatusCode
	}
	for range limit {
		wg.Add(1)
		go fetch("/api/v1/tp")
	}
	for range limit {
		<-conn.started
	}

	resp, err := http.Get(srv.URL + "/api/v1/tp")
	if err != nil {
		t.Fatal(err)
	}
	var e errorResponse
	_ = json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(e.Error, "limit of 3") {
		t.Errorf("request %d: %d Retry-After %q %q, want 503 with Retry-After", limit+1, resp.StatusCode, resp.Header.Get("Retry-After"), e.Error)
	}

	// The limit is per path: topology still reaches its query.
	wg.Add(1)
	go fetch("/api/v1/topology")
	<-conn.started

	close(conn.release)
	wg.Wait()
	close(codes)
	n := 0
	for c := range codes {
		n++
		if c != http.StatusBadGateway {
			t.Errorf("a held request ended %d, want 502 from its failed query", c)
		}
	}
	if n != limit+1 {
		t.Errorf("%d held requests answered, want %d", n, limit+1)
	}
}

// TestAPIFailureHidesServerError makes the server fail a query (its
// database does not exist, then its memory limit is too small) and checks
// that the answer names the request only and carries a request id that
// the log holds next to the server's error.
func TestAPIFailureHidesServerError(t *testing.T) {
	conn, cfg := setup(t)
	loadFixture(t, conn, cfg)
	now := fixTo.Add(time.Minute)
	for _, c := range []struct {
		name, database string
		limits         clickhouse.Limits
		reason         string
		serverSays     string
	}{
		{"missing database", "tpflow_no_such_db", clickhouse.Limits{}, "query failed", "tpflow_no_such_db"},
		{"memory limit", cfg.Database, clickhouse.Limits{MaxMemoryUsage: 1}, "more than its memory limit of 1 bytes", "Memory limit"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var log bytes.Buffer
			api := NewAPI(conn, c.database, APIOptions{Now: func() time.Time { return now },
				Logger: slog.New(slog.NewTextHandler(&log, nil)), Limits: c.limits})
			srv := httptest.NewServer(api.Handler())
			defer srv.Close()
			code, body := get(t, srv, "/api/v1/tp?app=api&"+rangeQuery(), nil)
			var e errorResponse
			if err := json.Unmarshal([]byte(body), &e); err != nil {
				t.Fatalf("body %q: %v", body, err)
			}
			if code != http.StatusBadGateway || !strings.Contains(e.Error, c.reason) || e.RequestID == "" {
				t.Errorf("%d %q, want 502 with %q and a request id", code, body, c.reason)
			}
			for _, leak := range []string{c.serverSays, "code:", "DB::Exception", "SELECT"} {
				if strings.Contains(body, leak) {
					t.Errorf("the answer shows the server's %q: %s", leak, body)
				}
			}
			if l := log.String(); !strings.Contains(l, "request_id="+e.RequestID) || !strings.Contains(l, c.serverSays) {
				t.Errorf("the log does not hold request id %s with the server's error:\n%s", e.RequestID, l)
			}
		})
	}
}
