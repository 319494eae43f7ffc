package clickhouse

import (
	"context"
	"errors"
	"io"
	"math"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
)

// fakeConn fails PrepareBatch with the errors in fails, one per call, then
// hands out fakeBatches that record what was sent.
type fakeConn struct {
	driver.Conn
	fails   []error
	queries []string
	sent    [][][]any
	sendErr error
}

func (c *fakeConn) PrepareBatch(_ context.Context, q string, _ ...driver.PrepareBatchOption) (driver.Batch, error) {
	c.queries = append(c.queries, q)
	if len(c.fails) > 0 {
		err := c.fails[0]
		c.fails = c.fails[1:]
		return nil, err
	}
	return &fakeBatch{conn: c}, nil
}

type fakeBatch struct {
	driver.Batch
	conn *fakeConn
	rows [][]any
}

func (b *fakeBatch) Append(v ...any) error { b.rows = append(b.rows, v); return nil }
func (b *fakeBatch) Abort() error          { return nil }
func (b *fakeBatch) Send() error {
	if b.conn.sendErr != nil {
		err := b.conn.sendErr
		b.conn.sendErr = nil
		return err
	}
	b.conn.sent = append(b.conn.sent, b.rows)
	return nil
}

func testWriter(conn driver.Conn, mod func(*Config)) (*Writer, *[]time.Duration) {
	cfg := DefaultConfig()
	cfg.MaxRetryBackoff = 400 * time.Millisecond
	if mod != nil {
		mod(&cfg)
	}
	w := NewWriter(conn, cfg, nil)
	var sleeps []time.Duration
	w.sleep = func(ctx context.Context, d time.Duration) error {
		sleeps = append(sleeps, d)
		return ctx.Err()
	}
	return w, &sleeps
}

func pane(i int) PaneRow {
	return PaneRow{
		PaneStart: time.Unix(1_700_000_000+int64(i)*10, 0), PaneSeconds: 10,
		System: "s", App: "a", Group: "g", IDC: "dc1", Method: "m",
		Count: 2, Errors: 1, CentroidMeans: []float64{1, 2}, CentroidWeights: []float64{1, 1}, Version: 1,
	}
}

func TestWriterRetriesTransientErrorsWithCappedBackoff(t *testing.T) {
	refused := &netError{syscall.ECONNREFUSED}
	conn := &fakeConn{fails: []error{refused, refused, io.EOF, refused, refused, refused, refused}}
	w, sleeps := testWriter(conn, nil)
	if err := w.WritePanes(context.Background(), []PaneRow{pane(0), pane(1)}); err != nil {
		t.Fatal(err)
	}
	if len(conn.sent) != 1 || len(conn.sent[0]) != 2 {
		t.Fatalf("sent %d batches, want one of 2 rows", len(conn.sent))
	}
	if len(*sleeps) != 7 {
		t.Fatalf("slept %d times, want 7 (one per failure)", len(*sleeps))
	}
	// Backoff doubles from 100ms and is capped at 400ms, with jitter in
	// [b/2, b].
	caps := []time.Duration{100, 200, 400, 400, 400, 400, 400}
	for i, d := range *sleeps {
		hi := caps[i] * time.Millisecond
		if d < hi/2 || d > hi {
			t.Errorf("sleep %d = %s, want within [%s, %s]", i, d, hi/2, hi)
		}
	}
	if st := w.Stats(); st.Rows != 2 || st.Batches != 1 || st.Retries != 7 || st.Rejected != 0 {
		t.Fatalf("stats %+v", st)
	}
	if !strings.HasPrefix(conn.queries[0], "INSERT INTO tpflow.call_panes (pane_start, pane_seconds, system,") {
		t.Fatalf("query %q has no explicit column list", conn.queries[0])
	}
}

type netError struct{ err error }

func (e *netError) Error() string { return "dial tcp 127.0.0.1:9000: " + e.err.Error() }
func (e *netError) Unwrap() error { return e.err }

func TestWriterRetriesFailedSend(t *testing.T) {
	conn := &fakeConn{sendErr: io.ErrUnexpectedEOF}
	w, sleeps := testWriter(conn, nil)
	if err := w.WritePanes(context.Background(), []PaneRow{pane(0)}); err != nil {
		t.Fatal(err)
	}
	if len(conn.sent) != 1 || len(*sleeps) != 1 || len(conn.queries) != 2 {
		t.Fatalf("sent %d, slept %d, prepared %d; want 1, 1, 2", len(conn.sent), len(*sleeps), len(conn.queries))
	}
}

func TestWriterSplitsIntoBatchRows(t *testing.T) {
	conn := &fakeConn{}
	w, _ := testWriter(conn, func(c *Config) { c.BatchRows = 3 })
	rows := make([]PaneRow, 8)
	for i := range rows {
		rows[i] = pane(i)
	}
	if err := w.WritePanes(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, b := range conn.sent {
		sizes = append(sizes, len(b))
	}
	if len(sizes) != 3 || sizes[0] != 3 || sizes[1] != 3 || sizes[2] != 2 {
		t.Fatalf("batch sizes %v, want [3 3 2]", sizes)
	}
	// Rows keep their order across batches.
	if got := conn.sent[2][1][0].(time.Time); !got.Equal(rows[7].PaneStart) {
		t.Fatalf("last row starts %s, want %s", got, rows[7].PaneStart)
	}
}

func TestWriterServerSchemaErrorIsPermanent(t *testing.T) {
	for _, c := range []struct {
		code      int32
		permanent bool
	}{
		{60, true},   // UNKNOWN_TABLE
		{16, true},   // NO_SUCH_COLUMN_IN_TABLE
		{53, true},   // TYPE_MISMATCH
		{252, false}, // TOO_MANY_PARTS
		{241, false}, // MEMORY_LIMIT_EXCEEDED
		{516, false}, // AUTHENTICATION_FAILED: an operator fixes it
	} {
		ex := &proto.Exception{Code: c.code, Message: "boom"}
		conn := &fakeConn{fails: []error{ex}}
		w, sleeps := testWriter(conn, nil)
		err := w.WritePanes(context.Background(), []PaneRow{pane(0)})
		if c.permanent {
			if !errors.Is(err, ErrPermanent) || len(*sleeps) != 0 {
				t.Errorf("code %d: err %v after %d retries, want a permanent error and no retry", c.code, err, len(*sleeps))
			}
			var got *proto.Exception
			if !errors.As(err, &got) || got.Code != c.code {
				t.Errorf("code %d: the server exception is not reachable with errors.As: %v", c.code, err)
			}
			if w.Stats().Rejected != 1 {
				t.Errorf("code %d: rejected = %d, want 1", c.code, w.Stats().Rejected)
			}
		} else if err != nil || len(*sleeps) != 1 || len(conn.sent) != 1 {
			t.Errorf("code %d: err %v, %d retries, %d sent; want success after 1 retry", c.code, err, len(*sleeps), len(conn.sent))
		}
	}
}

func TestWriterStopsOnContextCancel(t *testing.T) {
	conn := &fakeConn{fails: []error{io.EOF, io.EOF, io.EOF, io.EOF}}
	w, _ := testWriter(conn, nil)
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	w.sleep = func(ctx context.Context, d time.Duration) error {
		if n++; n == 2 {
			cancel()
		}
		return ctx.Err()
	}
	err := w.WritePanes(ctx, []PaneRow{pane(0)})
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrPermanent) {
		t.Fatalf("err = %v, want context.Canceled and not permanent", err)
	}
	if len(conn.sent) != 0 || w.Stats().Rows != 0 {
		t.Fatalf("rows reported written after cancel")
	}
}

func TestWriterRejectsBadRowsBeforeTheServer(t *testing.T) {
	bad := func(mod func(*PaneRow)) PaneRow { p := pane(0); mod(&p); return p }
	cases := []struct {
		row  PaneRow
		want string
	}{
		{bad(func(p *PaneRow) { p.CentroidWeights = p.CentroidWeights[:1] }), "2 centroid means but 1 weights"},
		{bad(func(p *PaneRow) { p.CentroidMeans = nil }), "0 centroid means but 2 weights"},
		{bad(func(p *PaneRow) { p.CentroidMeans[1] = math.NaN() }), "centroid 1 has mean NaN"},
		{bad(func(p *PaneRow) { p.CentroidWeights[0] = 0 }), "centroid 0 has weight 0"},
		{bad(func(p *PaneRow) { p.CentroidWeights[0] = math.Inf(1) }), "centroid 0 has weight +Inf"},
		{bad(func(p *PaneRow) { p.PaneSeconds = 0 }), "pane_seconds is 0"},
		{bad(func(p *PaneRow) { p.PaneStart = time.Time{} }), "pane_start is not set"},
		{bad(func(p *PaneRow) { p.PaneStart = time.Unix(-1, 0) }), "outside DateTime's range"},
		{bad(func(p *PaneRow) { p.PaneStart = time.Unix(1<<32, 0) }), "outside DateTime's range"},
		{bad(func(p *PaneRow) { p.Errors = 3 }), "errors 3 exceed count 2"},
		{bad(func(p *PaneRow) { p.P99Us = math.Inf(-1) }), "not finite"},
		{bad(func(p *PaneRow) { p.Count, p.Errors = 0, 0 }), "count is 0"},
		{bad(func(p *PaneRow) { p.MinUs = p.MaxUs + 1 }), "is not a latency in range"},
		{bad(func(p *PaneRow) { p.CentroidMeans[0] = p.CentroidMeans[1] + 1 }), "centroid 1 is out of order"},
	}
	for _, c := range cases {
		// A nil connection: any attempt to reach the server panics.
		w, _ := testWriter(nil, nil)
		err := w.WritePanes(context.Background(), []PaneRow{c.row})
		var ire *InvalidRowsError
		if !errors.Is(err, ErrPermanent) || !errors.As(err, &ire) {
			t.Fatalf("err = %v, want a permanent *InvalidRowsError", err)
		}
		if len(ire.Rows) != 1 || ire.Rows[0].Index != 0 || !strings.Contains(ire.Rows[0].Err.Error(), c.want) {
			t.Errorf("rows %v, want row 0: %s", ire.Rows, c.want)
		}
	}
}

func TestWriterWritesGoodRowsAndReportsBadOnes(t *testing.T) {
	conn := &fakeConn{}
	w, _ := testWriter(conn, nil)
	rows := []PaneRow{pane(0), pane(1), pane(2), pane(3)}
	rows[1].CentroidWeights = nil
	rows[3].PaneSeconds = 0
	err := w.WritePanes(context.Background(), rows)
	var ire *InvalidRowsError
	if !errors.As(err, &ire) || len(ire.Rows) != 2 || ire.Rows[0].Index != 1 || ire.Rows[1].Index != 3 {
		t.Fatalf("err = %v, want rows 1 and 3 rejected", err)
	}
	if len(conn.sent) != 1 || len(conn.sent[0]) != 2 {
		t.Fatalf("sent %v, want one batch with rows 0 and 2", conn.sent)
	}
	if st := w.Stats(); st.Rows != 2 || st.Rejected != 2 {
		t.Fatalf("stats %+v, want 2 rows and 2 rejected", st)
	}
}

func TestOtherRowChecks(t *testing.T) {
	ts := time.Unix(1_700_000_000, 5)
	w, _ := testWriter(nil, nil)
	ctx := context.Background()
	check := func(name string, err error, want string) {
		t.Helper()
		var ire *InvalidRowsError
		if !errors.As(err, &ire) || !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want a permanent *InvalidRowsError containing %q", name, err, want)
		}
	}
	check("log without ts", w.WriteLogs(ctx, []LogRow{{Message: "x"}}), "ts is not set")
	check("log before 1970", w.WriteLogs(ctx, []LogRow{{TS: time.Unix(-5, 0)}}), "outside DateTime's range")
	check("metric without name", w.WriteMetrics(ctx, []MetricRow{{TS: ts}}), "name is empty")
	check("metric without ts", w.WriteMetrics(ctx, []MetricRow{{Name: "cpu"}}), "ts is not set")
	check("resource without name", w.WriteResourcePanes(ctx, []ResourcePaneRow{{PaneStart: ts, PaneSeconds: 10}}), "name is empty")
	check("resource zero seconds", w.WriteResourcePanes(ctx, []ResourcePaneRow{{PaneStart: ts, Name: "cpu"}}), "pane_seconds is 0")
	check("resource without start", w.WriteResourcePanes(ctx, []ResourcePaneRow{{PaneSeconds: 10, Name: "cpu"}}), "pane_start is not set")
	check("alert without rule", w.WriteAlerts(ctx, []AlertRow{{TS: ts}}), "rule is empty")
	check("alert labels", w.WriteAlerts(ctx, []AlertRow{{TS: ts, Rule: "r", LabelNames: []string{"a"}}}), "1 label names but 0 values")
	check("alert annotations", w.WriteAlerts(ctx, []AlertRow{{TS: ts, Rule: "r", AnnotationValues: []string{"a"}}}), "0 annotation names but 1 values")
	check("alert fired before 1970", w.WriteAlerts(ctx, []AlertRow{{TS: ts, Rule: "r", FiredAt: time.Unix(-1, 0)}}), "fired_at")
	check("alert without ts", w.WriteAlerts(ctx, []AlertRow{{Rule: "r"}}), "ts is not set")
}

func TestNewWriterPanicsOnInvalidConfig(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "BUG") {
			t.Fatalf("recover() = %v, want a BUG panic", r)
		}
	}()
	cfg := DefaultConfig()
	cfg.BatchRows = 0
	NewWriter(nil, cfg, nil)
}

func TestTPQuerySQLBadInput(t *testing.T) {
	from, to := time.Unix(1000, 0), time.Unix(2000, 0)
	for _, c := range []struct {
		q    TPQuery
		want string
	}{
		{TPQuery{Database: "x-y", From: from, To: to, Quantiles: []float64{0.5}}, "database name"},
		{TPQuery{Database: "db", From: from, To: to}, "no quantiles"},
		{TPQuery{Database: "db", From: to, To: from, Quantiles: []float64{0.5}}, "is not before"},
		{TPQuery{Database: "db", From: from, To: to, Quantiles: []float64{0}}, "outside (0, 1]"},
		{TPQuery{Database: "db", From: from, To: to, Quantiles: []float64{1.5}}, "outside (0, 1]"},
		{TPQuery{Database: "db", From: from, To: to, Quantiles: []float64{math.NaN()}}, "outside (0, 1]"},
	} {
		if _, _, err := c.q.SQL(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want %q", c.q, err, c.want)
		}
	}
	q, args, err := TPQuery{Database: "db", Selector: Selector{App: "a", Method: "m"}, From: from, To: to,
		Quantiles: []float64{0.5, 0.999}}.SQL()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(q, "quantilesExactWeighted(0.5, 0.999)") || !strings.Contains(q, "db.call_panes FINAL") ||
		!strings.Contains(q, "AND app = ? AND method = ?") || len(args) != 4 || args[2] != "a" || args[3] != "m" {
		t.Fatalf("SQL %q args %v", q, args)
	}
}
