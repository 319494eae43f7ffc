package backfill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/tpflow/tpflow/internal/progress"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
)

// maxSkippedShown bounds the skipped panes printed one by one.
const maxSkippedShown = 20

// Settle is how far behind now a back-fill should end: the aggregator
// publishes a bucket's rollup once the bucket has closed and its lateness
// has passed, so younger buckets may still be filling.
const Settle = 10 * time.Minute

// Settled says why a back-fill of a range ending at to (before Align)
// should wait, and where the range may end, when to is less than Settle
// before now; otherwise it returns nil.
func Settled(to, now time.Time) error {
	_, aTo := Align(to, to)
	limit := now.Add(-Settle)
	if !aTo.After(limit) {
		return nil
	}
	return fmt.Errorf("the range ends at %s, less than %s before now (%s): the aggregator is still writing those buckets. "+
		"Its own rollups are replaced only by rollups with as many events or more, but a bucket back-filled now would "+
		"hold only the panes stored so far until the aggregator writes its rollup. End the range at %s or earlier",
		aTo.Format(time.RFC3339), Settle, now.UTC().Format(time.RFC3339), limit.UTC().Truncate(Bucket).Format(time.RFC3339))
}

// Job is one `tpflow rollup backfill`: what Run rebuilds and where.
type Job struct {
	ClickHouse clickhouse.Config
	// Logger logs the writer's retries; nil discards.
	Logger *slog.Logger
	// Selector limits the keys.
	Selector clickhouse.Selector
	// From and To are the range asked; Run rounds them outward with Align.
	From, To time.Time
	// Compression is aggregator.rollup_compression; RollupOff says
	// aggregator.rollup is 0.
	Compression float64
	RollupOff   bool
	// DryRun reads and counts without migrating or writing.
	DryRun bool
	// ProgressEvery is how often progress goes to stderr.
	ProgressEvery time.Duration
}

// Run opens ClickHouse, applies the migrations (not on a dry run), runs
// Backfill over the job's range with progress and skipped panes on
// stderr, and writes the summary line to stdout. Its errors are worded
// for an operator.
func Run(ctx context.Context, j Job, stdout, stderr io.Writer) error {
	delta := j.Compression
	if delta < 20 || delta > 5000 {
		return fmt.Errorf("aggregator.rollup_compression is %g; rollups need a compression between 20 and 5000", delta)
	}
	const layout = time.RFC3339
	aFrom, aTo := Align(j.From, j.To)
	if !aFrom.Equal(j.From) || !aTo.Equal(j.To) {
		fmt.Fprintf(stderr, "rollup backfill: range rounded outward to whole 5-minute buckets: %s to %s (asked %s to %s)\n",
			aFrom.Format(layout), aTo.Format(layout), j.From.UTC().Format(layout), j.To.UTC().Format(layout))
	}
	if j.RollupOff {
		fmt.Fprintf(stderr, "rollup backfill: aggregator.rollup is 0 (rollups off); building them anyway at rollup_compression %g\n", delta)
	}
	conn, err := clickhouse.Open(ctx, j.ClickHouse)
	if err != nil {
		return err
	}
	defer conn.Close()
	var w *clickhouse.Writer
	if !j.DryRun {
		if _, err := clickhouse.Migrate(ctx, conn, j.ClickHouse); err != nil {
			return err
		}
		w = clickhouse.NewWriter(conn, j.ClickHouse, j.Logger)
	}

	start := time.Now()
	prog := progress.Start(stderr, j.ProgressEvery, j.ProgressEvery, progressLine(Stats{}))
	defer prog.Stop()
	skipped := 0
	st, err := Backfill(ctx, conn, w, j.ClickHouse.BatchRows, Options{
		Database:    j.ClickHouse.Database,
		Selector:    j.Selector,
		From:        aFrom,
		To:          aTo,
		Compression: delta,
		DryRun:      j.DryRun,
		Progress:    func(st Stats) { prog.Set(progressLine(st)) },
		Skipped: func(p BadPane) {
			skipped++
			switch {
			case skipped <= maxSkippedShown:
				prog.Printf("rollup backfill: skipped pane %s\n", p)
			case skipped == maxSkippedShown+1:
				prog.Printf("rollup backfill: more panes skipped; the summary counts them\n")
			}
		},
	})
	prog.Stop()
	elapsed := time.Since(start)
	scope := j.Selector.String()
	if scope == "" {
		scope = "every key"
	}
	switch {
	case errors.Is(err, ErrNoPanes):
		return fmt.Errorf("no panes of %s in call_panes from %s to %s: nothing to back-fill", scope, aFrom.Format(layout), aTo.Format(layout))
	case err != nil:
		if nt := clickhouse.NoTables(err, j.ClickHouse.Database); nt != nil {
			return nt
		}
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted after %d of %d buckets, %d rollups written; re-running the same range is harmless: %w",
				st.BucketsDone, st.Buckets, st.Written, err)
		}
		return fmt.Errorf("%w (after %d of %d buckets, %d rollups written; re-running the same range is harmless)",
			err, st.BucketsDone, st.Buckets, st.Written)
	}
	written := fmt.Sprintf("%d rollups written", st.Written)
	mode := ""
	if j.DryRun {
		written = fmt.Sprintf("%d rollups built, none written", st.Rollups)
		mode = " (dry run)"
	}
	rate := float64(st.Panes) / max(elapsed.Seconds(), 1e-3)
	_, err = fmt.Fprintf(stdout, "rollup backfill%s: %d buckets from %s to %s, %s: %d keys, %s, %d panes read (%d skipped) in %s, %.0f panes/s\n",
		mode, st.Buckets, aFrom.Format(layout), aTo.Format(layout), scope, st.Keys, written, st.Panes, st.Skipped,
		elapsed.Round(time.Millisecond), rate)
	return err
}

// progressLine is the progress line of st.
func progressLine(st Stats) func(time.Duration) string {
	return func(elapsed time.Duration) string {
		return fmt.Sprintf("rollup backfill: %d/%d buckets, %d rollups written, %d panes read, %.1fs\n",
			st.BucketsDone, st.Buckets, st.Written, st.Panes, elapsed.Seconds())
	}
}
