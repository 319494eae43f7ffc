package report

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tpflow/tpflow/internal/progress"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
)

// CapacityJob is one `tpflow report capacity`: the report asked and where
// to read and write it.
type CapacityJob struct {
	ClickHouse clickhouse.Config
	// MaxMemoryUsage is each query's max_memory_usage (api.max_memory_usage);
	// the time limit is ReportLimits'.
	MaxMemoryUsage int64
	// Query is the report; Run sets its Database from ClickHouse.
	Query CapacityQuery
	// Format is one of Formats.
	Format string
	// Out is the file to write; empty writes to stdout.
	Out string
	// Now stamps the report.
	Now func() time.Time
	// ProgressAfter is how long the report runs before progress lines go
	// to stderr.
	ProgressAfter time.Duration
}

// FormatOf is the format a report written to the file out takes from its
// extension: html, csv, else md.
func FormatOf(out string) string {
	switch strings.ToLower(filepath.Ext(out)) {
	case ".html", ".htm":
		return "html"
	case ".csv":
		return "csv"
	}
	return "md"
}

// RunCapacity reads the job's report from ClickHouse, renders it and
// writes it to Out or stdout, with progress on stderr once it runs longer
// than ProgressAfter. Its errors are worded for an operator.
func RunCapacity(ctx context.Context, j CapacityJob, stdout, stderr io.Writer) error {
	step := func(s string) func(time.Duration) string {
		return func(elapsed time.Duration) string {
			return fmt.Sprintf("report: %s (%.1fs)\n", s, elapsed.Seconds())
		}
	}
	prog := progress.Start(stderr, j.ProgressAfter, 0, step("connecting to ClickHouse"))
	defer prog.Stop()
	conn, err := clickhouse.Open(ctx, j.ClickHouse)
	if err != nil {
		return err
	}
	defer conn.Close()
	q := j.Query
	q.Database = j.ClickHouse.Database
	q.Progress = func(s string) { prog.Set(step(s)) }
	limits := clickhouse.Limits{MaxExecutionTime: ReportLimits.MaxExecutionTime, MaxMemoryUsage: j.MaxMemoryUsage}
	rows, err := Capacity(limits.Context(ctx), conn, q)
	if which, ok := clickhouse.OverLimit(err); ok {
		return fmt.Errorf("%w (the report's queries are limited by %s; narrow the range or the selector)", err, which)
	}
	if errors.Is(err, ErrEmpty) {
		return fmt.Errorf("nothing to report: %w", err)
	}
	if nt := clickhouse.NoTables(err, q.Database); nt != nil {
		return nt
	}
	if err != nil {
		return err
	}
	prog.Set(step("rendering " + j.Format))
	rep := Report{From: q.From, To: q.To, Depth: q.Depth, Target: q.Target, Scope: DescribeSelector(q.Selector), Rows: rows, Generated: j.Now()}
	var buf bytes.Buffer
	if err := rep.Render(&buf, j.Format); err != nil {
		return err
	}
	prog.Stop()
	if j.Out == "" {
		_, err := io.Copy(stdout, &buf)
		return err
	}
	if err := os.WriteFile(j.Out, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("cannot write the report: %w", err)
	}
	fmt.Fprintf(stderr, "wrote %s: %d rows, %s\n", j.Out, len(rows), j.Format)
	return nil
}
