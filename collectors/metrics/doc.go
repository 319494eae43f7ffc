// Package metrics reads resource usage on a node: per-container cgroup
// statistics (v1 and v2), node CPU, memory, load, disk and network from
// /proc, file-system usage from statfs, and kernel log records from
// /dev/kmsg with a filter that tags hardware and file-system errors.
//
// Every reader takes a root directory, so tests read fixed trees under
// testdata/. Results are plain structs and Samples (name, value, kind,
// labels) that the collect role maps to MetricSample and LogEvent.
// Malformed lines are skipped and counted, never fatal.
package metrics
