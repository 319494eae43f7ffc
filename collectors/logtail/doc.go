// Package logtail follows log files on a node: it finds them (Discover, with
// Kubernetes and Docker layouts), tails each one across rename and
// copytruncate rotation (Tailer), and remembers how far the caller has made
// the lines durable (Checkpoints), so that a restart resumes without losing
// acknowledged progress.
//
// The invariants — what a file identity is, when a checkpoint may advance,
// how rotation is drained — are in DESIGN.md.
package logtail
