// Package parse turns log lines into fields and fields into calls.
//
// A Parser (JSON, logfmt or a regular expression with named groups, with
// presets for nginx and Apache access logs) splits one line into a Record of
// fields that point into the line. A Mapper picks the method, latency,
// status or ok flag, timestamp and the optional system/app/group/idc labels
// out of a Record and fills a Call. Container runtimes wrap lines first:
// UnwrapDocker and ParseCRI take the wrapper off, a Joiner joins partial
// fragments and a Multiline joins continuation lines to their first line.
//
// Nothing taken from a line is ever used as a path, a topic or a key; line
// content only ever becomes field values.
//
// The perf-json path (JSON parser plus the default mapping) does not allocate
// per line in steady state: records reuse their slices and repeated label
// and method strings are interned.
package parse
