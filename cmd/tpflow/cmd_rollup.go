package main

import (
	"context"
	"flag"
	"time"

	"github.com/tpflow/tpflow/aggregator/backfill"
	"github.com/tpflow/tpflow/internal/cli"
	"github.com/tpflow/tpflow/report"
)

// rollupOptions are the flags of `tpflow rollup backfill`.
type rollupOptions struct {
	from, to string
	// labels are the --system … --method values, in schemas.KeyLabels order.
	labels        [5]string
	dryRun, force bool
	// now is the clock for "now" in --from and --to and for the settle
	// check.
	now func() time.Time
	// progressEvery is how often progress goes to stderr.
	progressEvery time.Duration
}

func rollupCommand() *cli.Command {
	o := rollupOptions{now: time.Now, progressEvery: time.Second}
	return &cli.Command{
		Name:    "rollup",
		Summary: "rebuild the 5-minute rollups (call_rollups) of a time range from call_panes",
		Args:    "backfill",
		Help: `rollup backfill rebuilds the 5-minute rollups that dashboards and /api/v1/tp
read for long ranges: for every 5-minute bucket in [--from, --to) it reads
the bucket's 10-s panes from call_panes (FINAL), merges each key's panes at
aggregator.rollup_compression exactly as the aggregator does, and writes the
rollups to call_rollups in batches of clickhouse.batch_rows. Run it after
upgrading to a release with rollups (the days of panes stored before have
none), or after rollups were lost: aggregator.rollup was 0 for a while, or a
bad configuration or outage dropped them. --from and --to are rounded
outward to whole buckets.

Re-running is harmless: a rollup's version is its event count, so the same
rollup replaces itself, and an aggregator rollup holding more events is
never replaced. Ranges ending less than 10 minutes ago are refused without
--force: the aggregator is still writing those buckets, and although its own
rollups replace a back-filled one that holds fewer events, a bucket
back-filled from partial panes would be served until then. Migrations are
applied first (not with --dry-run, which reads and counts without writing).
A pane that cannot be merged is reported with its key and start and left
out. It costs about one read of the range's panes: some 23 000 panes/s on 2
cores, a day of 1000 keys in 6 minutes (aggregator/backfill/doc.go). Progress
goes to stderr every second; the summary goes to stdout. Times are RFC 3339,
a date (UTC), Unix seconds, now or now-DURATION. A range without panes is an
error (exit 1).`,
		Example: "tpflow rollup backfill --from 2026-11-20 --to 2026-11-27 --clickhouse clickhouse://ch-1:9000/tpflow\n" +
			"tpflow rollup backfill --from now-6h --to now-1h --system pay --app api --dry-run",
		Common: true,
		Flags: func(fs *flag.FlagSet) {
			fs.StringVar(&o.from, "from", "", "start of the range, `TIME` (rounded down to 5 minutes); required")
			fs.StringVar(&o.to, "to", "", "end of the range (exclusive), `TIME` (rounded up to 5 minutes); required")
			labelFlags(fs, o.labels[:])
			fs.BoolVar(&o.dryRun, "dry-run", false, "read and count the panes and rollups, write nothing")
			fs.BoolVar(&o.force, "force", false, "allow a range ending less than 10 minutes ago")
		},
		Role: func(ctx context.Context, env *cli.Env, cfg *cli.Config, args []string) error {
			if len(args) != 1 || args[0] != "backfill" {
				return cli.UsageError("want the action: tpflow rollup backfill --from TIME --to TIME [flags]")
			}
			return runRollupBackfill(ctx, env, cfg, o)
		},
	}
}

// backfillJob checks the flags and returns the job they ask for.
func (o rollupOptions) backfillJob(now time.Time) (backfill.Job, error) {
	j := backfill.Job{DryRun: o.dryRun, ProgressEvery: o.progressEvery}
	if o.from == "" || o.to == "" {
		return j, cli.UsageError("--from and --to are required: the range of panes to build rollups of")
	}
	var err error
	if j.From, err = report.ParseTime("from", o.from, now); err != nil {
		return j, cli.UsageError("--%s", badReason(err))
	}
	if j.To, err = report.ParseTime("to", o.to, now); err != nil {
		return j, cli.UsageError("--%s", badReason(err))
	}
	if !j.From.Before(j.To) {
		return j, cli.UsageError("--from %s is not before --to %s", j.From.UTC().Format(time.RFC3339), j.To.UTC().Format(time.RFC3339))
	}
	if err := backfill.Settled(j.To, now); err != nil && !o.force {
		return j, cli.UsageError("%v, or pass --force", err)
	}
	if j.Selector, err = report.SelectorFrom(labelValues(o.labels[:]), true); err != nil {
		return j, cli.UsageError("--%s", badReason(err))
	}
	return j, nil
}

// runRollupBackfill is `tpflow rollup backfill`.
func runRollupBackfill(ctx context.Context, env *cli.Env, cfg *cli.Config, o rollupOptions) error {
	j, err := o.backfillJob(o.now())
	if err != nil {
		return err
	}
	j.ClickHouse, j.Logger = cfg.ClickHouse, env.Logger
	j.Compression, j.RollupOff = cfg.Aggregator.RollupCompression, cfg.Aggregator.Rollup == 0
	return backfill.Run(ctx, j, env.Stdout, env.Stderr)
}
