package main

import (
	"context"
	"flag"
	"slices"
	"strings"
	"time"

	"github.com/tpflow/tpflow/internal/cli"
	"github.com/tpflow/tpflow/report"
	"github.com/tpflow/tpflow/schemas"
)

// reportOptions are the flags of `tpflow report capacity`.
type reportOptions struct {
	by, from, to, format, out, target string
	// labels are the --system … --idc values, in schemas.KeyLabels order.
	labels [4]string
	// now is the clock for "now" in --from and --to.
	now func() time.Time
	// progressAfter is how long a report runs before progress lines go
	// to stderr.
	progressAfter time.Duration
}

func reportCommand() *cli.Command {
	o := reportOptions{now: time.Now, progressAfter: time.Second}
	return &cli.Command{
		Name:    "report",
		Summary: "write a capacity report (HTML, Markdown or CSV) from ClickHouse",
		Args:    "capacity",
		Help: `Writes a capacity report over the panes stored in ClickHouse between --from
and --to: per system, app, group or IDC (rows nest down to --by), CPU and
memory used (avg, p95, peak) against their limits, utilisation, instances,
calls, QPS and TP99 with their trends, and the replicas needed to keep peak
utilisation under --target:

  replicas_needed = ceil(instances × peak_util / target_util)

with the arithmetic shown on every row (see report/DESIGN.md). --format html
is one self-contained page with SVG charts (no scripts or external fonts);
md is a table for chat tools; csv is for spreadsheets. Without --format the
extension of --out decides, and md goes to stdout. Times are RFC 3339, a
date (UTC), Unix seconds, now or now-DURATION. A range without data is an
error (exit 1). Progress goes to stderr when a report takes over a second.`,
		Example: "tpflow report capacity --by app --from now-24h --format md\n" +
			"tpflow report capacity --by group --from 2026-11-01 --to 2026-11-08 --out capacity.html\n" +
			"tpflow report capacity --by idc --system pay --format csv --out pay.csv --target 80%",
		Common: true,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&o.by, "by", "group", "deepest `LEVEL` of rows: system, app, group or idc")
			fs.StringVar(&o.from, "from", "now-24h", "start of the range, `TIME`")
			fs.StringVar(&o.to, "to", "now", "end of the range (exclusive), `TIME`")
			fs.StringVar(&o.format, "format", "", "output `FORMAT`: html, md or csv (default from --out's extension, else md)")
			fs.StringVar(&o.out, "out", "", "write the report to `FILE` instead of stdout")
			fs.StringVar(&o.target, "target", "0.7", "target peak utilisation of the recommendation, `RATIO` (0.7 or 70%)")
			labelFlags(fs, o.labels[:])
		},
		Role: func(ctx context.Context, env *cli.Env, cfg *cli.Config, args []string) error {
			if len(args) != 1 || args[0] != "capacity" {
				return cli.UsageError("want the report kind: tpflow report capacity [flags]")
			}
			return runReport(ctx, env, cfg, o)
		},
	}
}

// capacityRequest checks the flags and returns the query (without its
// database) and the format.
func (o reportOptions) capacityRequest() (report.CapacityQuery, string, error) {
	depth, err := report.ParseLevel(o.by)
	if err != nil {
		return report.CapacityQuery{}, "", cli.UsageError("--%s", badReason(err))
	}
	if o.from == "" || o.to == "" {
		return report.CapacityQuery{}, "", cli.UsageError("--from and --to must not be empty")
	}
	from, to, err := report.ParseRange(o.from, o.to, 24*time.Hour, o.now())
	if err != nil {
		return report.CapacityQuery{}, "", cli.UsageError("--%s", badReason(err))
	}
	target, err := report.ParseTarget(o.target)
	if err != nil {
		return report.CapacityQuery{}, "", cli.UsageError("--%s", badReason(err))
	}
	sel, err := report.SelectorFrom(labelValues(o.labels[:]), false)
	if err != nil {
		return report.CapacityQuery{}, "", cli.UsageError("--%s", badReason(err))
	}
	format := o.format
	if format == "" {
		format = report.FormatOf(o.out)
	}
	if !slices.Contains(report.Formats, format) {
		return report.CapacityQuery{}, "", cli.UsageError("--format: %q is not one of %s", format, strings.Join(report.Formats, ", "))
	}
	return report.CapacityQuery{Selector: sel, From: from, To: to, Depth: depth, Target: target}, format, nil
}

func badReason(err error) string {
	return strings.TrimPrefix(err.Error(), report.ErrBadRequest.Error()+": ")
}

// runReport is `tpflow report capacity`.
func runReport(ctx context.Context, env *cli.Env, cfg *cli.Config, o reportOptions) error {
	q, format, err := o.capacityRequest()
	if err != nil {
		return err
	}
	return report.RunCapacity(ctx, report.CapacityJob{
		ClickHouse: cfg.ClickHouse, MaxMemoryUsage: cfg.API.MaxMemoryUsage, Query: q, Format: format,
		Out: o.out, Now: o.now, ProgressAfter: o.progressAfter,
	}, env.Stdout, env.Stderr)
}

// labelFlags defines one flag per key label, --system to as many as dst
// holds, each setting its element of dst.
func labelFlags(fs *flag.FlagSet, dst []string) {
	for i, n := range schemas.KeyLabelNames(len(dst)) {
		fs.StringVar(&dst[i], n, "", "only this `"+strings.ToUpper(n)+"`")
	}
}

// labelValues looks up the values labelFlags set; an empty one is absent.
func labelValues(vs []string) func(string) (string, bool) {
	names := schemas.KeyLabelNames(len(vs))
	return func(n string) (string, bool) {
		if i := slices.Index(names, n); i >= 0 && vs[i] != "" {
			return vs[i], true
		}
		return "", false
	}
}
