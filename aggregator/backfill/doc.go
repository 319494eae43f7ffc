// Package backfill rebuilds the 5-minute rollups of call_rollups from the
// 10-s panes of call_panes: what `tpflow rollup backfill` runs.
//
// # When to run it
//
// The aggregator writes a key's rollup once a bucket has closed. Panes
// stored before a release with rollups have none, and rollups go missing
// while aggregator.rollup is 0, under a bad configuration, or when rollup
// messages were lost. Dashboards and /api/v1/tp read call_rollups for long
// ranges up to each key's newest rollup, so a missing rollup there is a
// gap. Back-fill the affected range:
//
//	tpflow rollup backfill --from 2026-11-20 --to 2026-11-27 [--system S --app A ...] [--dry-run]
//
// # What it does
//
// For every bucket in the range (rounded outward to 5 minutes) it reads the
// selected panes FINAL, ordered by key and start, and merges each key's
// panes with aggregator.MergeRollup at the configured rollup_compression:
// the engine's own merge, so a rollup of complete panes equals the one the
// aggregator published, centroid for centroid. Rows stream through; one
// key's panes of one bucket are held at a time, and rollups are written in
// batches of clickhouse.batch_rows. Empty stretches before the first pane
// and after the last are skipped with one query.
//
// A rollup's version is its event count, as the aggregator's is. Running a
// back-fill again stores the same rows, which collapse; a back-filled
// rollup never replaces an aggregator rollup that holds more events (a late
// correction, or a pane missing from call_panes). The aggregator folds late
// events straight into an emitted rollup, so after corrections its
// centroids may differ slightly from a merge of the corrected panes; the
// counts, errors, sums, minimum and maximum agree.
//
// A pane whose centroid arrays differ in length, or whose values are
// impossible (NaN means, fractional or zero weights, errors above count,
// centroids out of order), is reported with its key and start and left
// out of its rollup; that rollup then holds fewer events than the
// aggregator's would, so a rollup the aggregator wrote wins over it.
//
// The CLI refuses ranges ending less than 10 minutes ago without --force:
// the aggregator is still filling those buckets, and a back-fill would
// store partial rollups that are read until the aggregator's replace them.
//
// # What it costs
//
// About one read of the range's panes with their centroids, plus a
// ClickHouse sort of one bucket's panes per query (server memory grows
// with the keys of a bucket, not with the range). The centroid arrays are
// read as text: clickhouse-go decodes Array(Float64) one reflected element
// at a time, which halved the throughput. Measured on the 2-core test
// machine (shared with other work, load average about 4; ClickHouse
// 18.16.1 on the same cores), over panes of the real engine at its default
// compression, one bucket per query (the default):
//
//	go test ./aggregator/backfill -run '^$' -bench Backfill -benchtime 3x
//
//	dataset                          centroids/pane  panes/s  rollups/s  run
//	4 keys × 40 min, 400 calls/pane  218              6 807      227     0.14 s
//	1000 keys × 1 h, 100 calls/pane  100             23 339      778     15.4 s
//
// The small run is mostly the fixed cost of a query per bucket. Reading an
// hour per query (BucketsPerRead 12) gave 25 355 panes/s on the large
// one. At about 23 000 panes/s a day of 1000 such keys (8.6 M panes) takes
// about 6 minutes; panes with more centroids take longer.
package backfill
