#!/usr/bin/env bash
# Runs the sparse benchmark family (BenchmarkSparse in sparse_test.go) on one
# core and prints, per case, the medians over COUNT repetitions of ns/event
# (ingest and flush; wall and the process's CPU time), the mean flush time
# (wall and CPU), the flush's share of the wall time and the live heap per
# key.
#
#   bash benchmarks/sparse.sh [COUNT] [CASES]
#
# COUNT (default 5) repetitions run in one process per case, after one
# warm-up (about ten minutes of event time; the 100 000-key cases take
# minutes and several GiB of heap). CASES is an extended regular expression
# over the case names "keys=K/ev=E/parts=P" (default: all twelve).
# SPARSE_BIN names a test binary of ./benchmarks built elsewhere (go test
# -c), for example from an older commit, to run instead of building one.
# The machine is shared and noisy: compare runs made in the same period.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-5}
cases=${2:-.}
out=$(mktemp)
bin=${SPARSE_BIN:-}
if [ -z "$bin" ]; then
	bin=$(mktemp)
	trap 'rm -f "$out" "$bin"' EXIT
	go test -c -o "$bin" ./benchmarks/
else
	trap 'rm -f "$out"' EXIT
fi
# Events per repetition: a few seconds each, whole panes of event time
# (keys × events per key per pane).
events() {
	case "$1/$2" in
	10000/2) echo 1200000 ;;  # 60 panes
	10000/20) echo 6000000 ;; # 30 panes: one rollup cycle
	10000/100) echo 6000000 ;; # 6 panes
	100000/2) echo 3000000 ;;  # 15 panes
	100000/20) echo 6000000 ;; # 3 panes
	100000/100) echo 10000000 ;; # 1 pane
	esac
}
for keys in 10000 100000; do
	for ev in 2 20 100; do
		for parts in 1 8; do
			name="keys=$keys/ev=$ev/parts=$parts"
			echo "$name" | grep -Eq -- "$cases" || continue
			GOMAXPROCS=1 "$bin" -test.run '^$' -test.benchmem -test.count "$count" \
				-test.benchtime "$(events "$keys" "$ev")x" \
				-test.bench "^BenchmarkSparse\$/^keys=$keys\$/^ev=$ev\$/^parts=$parts\$" |
				grep '^Benchmark' | tee -a "$out"
		done
	done
done
echo
awk '
function median(s,   a, k, i, j, x) {
	k = split(s, a, " ")
	for (i = 2; i <= k; i++) { x = a[i]+0; j = i-1; while (j > 0 && a[j]+0 > x) { a[j+1] = a[j]; j-- } a[j+1] = x }
	return (k % 2) ? a[(k+1)/2] : (a[k/2] + a[k/2+1]) / 2
}
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name); sub(/^BenchmarkSparse\//, "", name)
	if (!(name in n)) order[++m] = name
	n[name]++
	for (i = 3; i < NF; i += 2) v[name, $(i+1)] = v[name, $(i+1)] " " $i
}
END {
	printf "%-28s %5s %9s %9s %9s %9s %8s %8s\n", "case", "runs", "ns/event", "cpu-ns", "flush-ms", "flush-cpu", "flush-%", "B/key"
	for (i = 1; i <= m; i++) {
		c = order[i]
		printf "%-28s %5d %9.1f %9.1f %9.2f %9.2f %8.1f %8.0f\n", c, n[c], median(v[c, "ns/op"]), median(v[c, "cpu-ns/event"]), median(v[c, "flush-ms"]), median(v[c, "flush-cpu-ms"]), median(v[c, "flush-%"]), median(v[c, "B/key"])
	}
}' "$out"
