package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"

	"github.com/tpflow/tpflow/pipeline"
)

// Writer inserts rows in batches and retries while ClickHouse is down. Each
// Write method returns nil only once every valid row is stored, so a caller
// may commit its Kafka offsets after a nil return. A retried batch that had
// in fact arrived is harmless: every table is a ReplacingMergeTree keyed by
// the row's identity, so the copy collapses.
//
// Writer is safe for concurrent use; each call uses its own connection from
// the pool. Write methods do not retain the slices passed to them.
type Writer struct {
	conn  driver.Conn
	cfg   Config
	log   *slog.Logger
	sleep func(ctx context.Context, d time.Duration) error

	rows, batches, retries, rejected atomic.Uint64
}

// WriterStats are cumulative counters of a Writer.
type WriterStats struct {
	// Rows and Batches count what was stored.
	Rows, Batches uint64
	// Retries counts failed attempts that were retried.
	Retries uint64
	// Rejected counts rows refused with a permanent error.
	Rejected uint64
}

// NewWriter returns a Writer that inserts into cfg.Database over conn. A nil
// logger discards. cfg must be valid (see Config.Validate).
func NewWriter(conn driver.Conn, cfg Config, logger *slog.Logger) *Writer {
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.BatchRows < 1 || !identRe.MatchString(cfg.Database) || cfg.MaxRetryBackoff <= 0 {
		panic(fmt.Sprintf("BUG: NewWriter with an invalid config: %v", cfg.Validate()))
	}
	return &Writer{conn: conn, cfg: cfg, log: logger, sleep: pipeline.SleepContext}
}

// Stats returns the Writer's counters.
func (w *Writer) Stats() WriterStats {
	return WriterStats{Rows: w.rows.Load(), Batches: w.batches.Load(), Retries: w.retries.Load(), Rejected: w.rejected.Load()}
}

// WritePanes stores rows in call_panes. See Writer for when it returns.
func (w *Writer) WritePanes(ctx context.Context, rows []PaneRow) error {
	return write(ctx, w, "call_panes", paneColumns, rows, (*PaneRow).check, appendPane)
}

// WriteRollups stores rows in call_rollups: panes of the 5-minute rollup,
// with the same columns and identity as call_panes.
func (w *Writer) WriteRollups(ctx context.Context, rows []PaneRow) error {
	return write(ctx, w, "call_rollups", paneColumns, rows, (*PaneRow).check, appendPane)
}

// WriteLogs stores rows in logs. See Writer for when it returns.
func (w *Writer) WriteLogs(ctx context.Context, rows []LogRow) error {
	return write(ctx, w, "logs", logColumns, rows, (*LogRow).check, appendLog)
}

// WriteMetrics stores rows in metric_samples. See Writer for when it
// returns.
func (w *Writer) WriteMetrics(ctx context.Context, rows []MetricRow) error {
	return write(ctx, w, "metric_samples", metricColumns, rows, (*MetricRow).check, appendMetric)
}

// WriteResourcePanes stores rows in resource_panes. See Writer for when it
// returns.
func (w *Writer) WriteResourcePanes(ctx context.Context, rows []ResourcePaneRow) error {
	return write(ctx, w, "resource_panes", resourceColumns, rows, (*ResourcePaneRow).check, appendResource)
}

// WriteAlerts stores rows in alerts. See Writer for when it returns.
func (w *Writer) WriteAlerts(ctx context.Context, rows []AlertRow) error {
	return write(ctx, w, "alerts", alertColumns, rows, (*AlertRow).check, appendAlert)
}

// write validates rows, then inserts the valid ones in chunks of at most
// BatchRows, retrying each chunk until it succeeds, fails permanently or
// ctx ends. Invalid rows never reach the server; they are reported in an
// *InvalidRowsError after the valid rows are stored.
func write[R any](ctx context.Context, w *Writer, table, columns string, rows []R,
	check func(*R) error, appendRow func(driver.Batch, *R) error) error {
	var bad []RowError
	valid := make([]int, 0, len(rows))
	for i := range rows {
		if err := check(&rows[i]); err != nil {
			bad = append(bad, RowError{Index: i, Err: err})
			continue
		}
		valid = append(valid, i)
	}
	query := "INSERT INTO " + w.cfg.Database + "." + table + " (" + columns + ")"
	for start := 0; start < len(valid); start += w.cfg.BatchRows {
		chunk := valid[start:min(start+w.cfg.BatchRows, len(valid))]
		err := w.retry(ctx, table, len(chunk), func() error {
			return insert(ctx, w.conn, query, rows, chunk, appendRow)
		})
		if err != nil {
			if errors.Is(err, ErrPermanent) {
				w.rejected.Add(uint64(len(valid) - start))
			}
			return err
		}
		w.rows.Add(uint64(len(chunk)))
		w.batches.Add(1)
	}
	if len(bad) > 0 {
		w.rejected.Add(uint64(len(bad)))
		return &InvalidRowsError{Table: table, Rows: bad}
	}
	return nil
}

func insert[R any](ctx context.Context, conn driver.Conn, query string, rows []R, idx []int,
	appendRow func(driver.Batch, *R) error) (err error) {
	b, err := conn.PrepareBatch(ctx, query)
	if err != nil {
		return classify(fmt.Errorf("cannot prepare %q: %w", query, err))
	}
	sent := false
	defer func() {
		if !sent {
			_ = b.Abort()
		}
	}()
	for _, i := range idx {
		if err := appendRow(b, &rows[i]); err != nil {
			// The driver refused to encode a value: no retry can help.
			return pipeline.Permanent(fmt.Errorf("cannot encode row %d for %q: %w", i, query, err))
		}
	}
	sent = true
	if err := b.Send(); err != nil {
		return classify(fmt.Errorf("cannot send batch of %d rows for %q: %w", len(idx), query, err))
	}
	return nil
}

// permanentCodes are server exception codes that mean the rows or the schema
// are wrong, so the same insert would fail again.
var permanentCodes = map[int32]bool{
	6:   true, // CANNOT_PARSE_TEXT
	8:   true, // THERE_IS_NO_COLUMN
	10:  true, // NOT_FOUND_COLUMN_IN_BLOCK
	16:  true, // NO_SUCH_COLUMN_IN_TABLE
	20:  true, // NUMBER_OF_COLUMNS_DOESNT_MATCH
	27:  true, // CANNOT_PARSE_INPUT_ASSERTION_FAILED
	36:  true, // BAD_ARGUMENTS
	41:  true, // CANNOT_PARSE_DATETIME
	43:  true, // ILLEGAL_TYPE_OF_ARGUMENT
	44:  true, // ILLEGAL_COLUMN
	47:  true, // UNKNOWN_IDENTIFIER
	50:  true, // UNKNOWN_TYPE
	53:  true, // TYPE_MISMATCH
	60:  true, // UNKNOWN_TABLE
	62:  true, // SYNTAX_ERROR
	69:  true, // ARGUMENT_OUT_OF_BOUND
	70:  true, // CANNOT_CONVERT_TYPE
	72:  true, // CANNOT_PARSE_NUMBER
	81:  true, // UNKNOWN_DATABASE
	117: true, // INCORRECT_DATA
	190: true, // SIZES_OF_ARRAYS_DOESNT_MATCH
}

// classify marks err permanent when the server said the insert itself is
// wrong. Everything else — refused connections, resets, timeouts, a server
// shutting down, too many parts, memory limits, bad credentials — is
// transient: an operator or time can fix it, and dropping data cannot.
func classify(err error) error {
	var ex *proto.Exception
	if errors.As(err, &ex) && permanentCodes[ex.Code] {
		return pipeline.Permanent(err)
	}
	return err
}

// retry runs op until it succeeds, returns a permanent error or ctx ends,
// sleeping with capped exponential backoff and jitter in between.
func (w *Writer) retry(ctx context.Context, table string, n int, op func() error) error {
	b := pipeline.Backoff{Min: min(100*time.Millisecond, w.cfg.MaxRetryBackoff), Max: w.cfg.MaxRetryBackoff, Jitter: true, Sleep: w.sleep}
	var since time.Time
	attempts, err := pipeline.Retry(ctx, &b, 0, op, func(attempt int, pause time.Duration, err error) {
		if attempt == 1 {
			since = time.Now()
		}
		// Throttled: the first failure and then every tenth.
		if attempt%10 == 1 {
			w.log.Warn("clickhouse insert failed; retrying", "table", table, "rows", n,
				"attempt", attempt, "backoff", pause, "err", err)
		}
		w.retries.Add(1)
	})
	switch {
	case err == nil:
		if attempts > 1 {
			w.log.Info("clickhouse insert succeeded after retries", "table", table, "rows", n,
				"attempts", attempts, "down_for", time.Since(since).Round(time.Millisecond))
		}
		return nil
	case pipeline.IsPermanent(err):
		w.log.Warn("clickhouse insert rejected", "table", table, "rows", n, "err", err)
		return err
	}
	return fmt.Errorf("cannot insert %d rows into %s: %w", n, table, err)
}
