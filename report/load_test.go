package report

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tpflow/tpflow/internal/role"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/httpserver"
)

// gateConn holds every Query until release is closed, then runs it on the
// real connection: the test decides when the admitted requests reach the
// server, so that 50 requests overlap on any machine.
type gateConn struct {
	driver.Conn
	held    atomic.Int32
	arrived chan struct{}
	release chan struct{}
}

func (c *gateConn) Query(ctx context.Context, q string, args ...any) (driver.Rows, error) {
	c.held.Add(1)
	c.arrived <- struct{}{}
	select {
	case <-c.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return c.Conn.Query(ctx, q, args...)
}

// roleServer serves the API's routes on the one HTTP server of every role,
// next to /healthz, as the api role does.
func roleServer(t *testing.T, api *API) *httptest.Server {
	t.Helper()
	var routes []httpserver.Route
	h := api.Handler()
	for _, p := range Paths {
		routes = append(routes, httpserver.Route(role.Route{Pattern: p, Handler: h}))
	}
	srv := httptest.NewServer(httpserver.Handler(httpserver.Options{Routes: routes}))
	t.Cleanup(srv.Close)
	return srv
}

// TestAPIUnderFiftyConcurrentMonthQueries sends 50 concurrent 31-day
// /api/v1/tp requests to the API with its shipped limits over a real
// ClickHouse: the first DefaultMaxConcurrent reach the server and the
// others are answered 503 with Retry-After at once; meanwhile /healthz
// answers and panes are still written (ingestion); every admitted request
// then answers within its limit.
func TestAPIUnderFiftyConcurrentMonthQueries(t *testing.T) {
	conn, cfg := setup(t)
	loadFixture(t, conn, cfg)
	const n = 50
	limit := DefaultConfig().Options()
	gate := &gateConn{Conn: conn, arrived: make(chan struct{}, n), release: make(chan struct{})}
	srv := roleServer(t, NewAPI(gate, cfg.Database, limit))
	month := "/api/v1/tp?app=api&by=method&q=tp99&step=1h&from=" + url.QueryEscape(fixTo.Add(-31*24*time.Hour).Format(time.RFC3339)) +
		"&to=" + url.QueryEscape(fixTo.Format(time.RFC3339))

	type answer struct {
		code       int
		retryAfter string
		took       time.Duration
	}
	answers := make(chan answer, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			resp, err := http.Get(srv.URL + month)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			answers <- answer{resp.StatusCode, resp.Header.Get("Retry-After"), time.Since(start)}
		}()
	}
	// Every request is answered 503 or holds a slot at the server.
	refused := 0
	for refused+int(gate.held.Load()) < n {
		select {
		case a := <-answers:
			if a.code != http.StatusServiceUnavailable || a.retryAfter == "" {
				t.Fatalf("a request beyond the limit was answered %d (Retry-After %q), want 503 with Retry-After", a.code, a.retryAfter)
			}
			refused++
		case <-gate.arrived:
		case <-time.After(20 * time.Second):
			t.Fatalf("after 20 s: %d refused, %d at the server, of %d", refused, gate.held.Load(), n)
		}
	}
	if got := int(gate.held.Load()); got != DefaultMaxConcurrent || refused != n-DefaultMaxConcurrent {
		t.Fatalf("%d requests reached the server and %d were refused, want %d and %d", got, refused, DefaultMaxConcurrent, n-DefaultMaxConcurrent)
	}

	// The process stays responsive while the API is at its limit.
	start := time.Now()
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/healthz at the limit: %v %v", resp, err)
	}
	resp.Body.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("/healthz took %v at the limit", d)
	}
	release := time.Now()
	close(gate.release) // the held queries run on the server now
	w := clickhouse.NewWriter(conn, cfg, nil)
	panes, _ := callRows()
	if err := w.WritePanes(context.Background(), panes[:10]); err != nil {
		t.Fatalf("ingestion while %d month queries run: %v", DefaultMaxConcurrent, err)
	}
	ingest := time.Since(release)

	wg.Wait()
	close(answers)
	for a := range answers {
		if a.code != http.StatusOK {
			t.Errorf("an admitted month query answered %d, want 200", a.code)
		}
		if a.took > limit.Timeout {
			t.Errorf("an admitted month query took %v, longer than its limit %v", a.took, limit.Timeout)
		}
	}
	t.Logf("50 concurrent: %d refused at once, %d served; a pane batch written in %v while they ran", refused, DefaultMaxConcurrent, ingest)
}

// slowConn runs, in place of each of the API's queries, one that takes
// the server 5 s (ten 0.5-s blocks), with the API's context: the server's
// max_execution_time of that context must stop it.
type slowConn struct {
	driver.Conn
}

const slowQuery = "SELECT sleep(0.5) FROM numbers(10) SETTINGS max_block_size = 1"

func (c slowConn) Query(ctx context.Context, _ string, _ ...any) (driver.Rows, error) {
	rows, err := c.Conn.Query(ctx, slowQuery)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, err
	}
	rows.Close()
	return nil, fmt.Errorf("BUG: %q ran to its end", slowQuery)
}

// TestAPIQueriesStopAtTheirTimeLimit gives every path of the API a query
// of 5 s on the server and a server limit of 1 s (the request's own
// timeout stays 30 s): the server stops each at its limit, and the answer
// says so, within 3 s.
func TestAPIQueriesStopAtTheirTimeLimit(t *testing.T) {
	t.Parallel()
	conn, cfg := setup(t)
	api := NewAPI(slowConn{conn}, cfg.Database, APIOptions{Timeout: 30 * time.Second,
		Limits: clickhouse.Limits{MaxExecutionTime: time.Second}})
	srv := roleServer(t, api)
	var wg sync.WaitGroup
	for _, path := range []string{"/api/v1/tp?app=api&", "/api/v1/capacity?", "/api/v1/topology?"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			resp, err := http.Get(srv.URL + path + "from=now-744h")
			if err != nil {
				t.Error(err)
				return
			}
			var e errorResponse
			_ = json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			took := time.Since(start)
			if resp.StatusCode != http.StatusBadGateway || !strings.Contains(e.Error, "ran longer than its limit of 1s") {
				t.Errorf("%s: %d %q, want 502 saying the query ran past its limit", path, resp.StatusCode, e.Error)
			}
			if took > 3*time.Second {
				t.Errorf("%s took %v: the server did not stop the query at its 1 s limit", path, took)
			}
		}()
	}
	wg.Wait()
}
