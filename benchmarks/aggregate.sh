#!/usr/bin/env bash
# Runs the aggregator benchmarks in interleaved rounds on one core and prints
# the medians and the ratio to the bare t-digest floor measured in the same
# rounds. The machine is shared and noisy: interleaving keeps the floor and
# the engine under the same load.
#
#   bash benchmarks/aggregate.sh [ROUNDS]   (default 6)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-6}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for i in $(seq "$rounds"); do
	GOMAXPROCS=1 go test -run '^$' -benchmem -count 1 -benchtime 4000000x \
		-bench 'TDigestAdd|AggregatePreDecoded|AggregateNoRollups|DecodeAndAggregate|AggregateMultiPartition|AggregateOutOfOrder|AggregateLateEvents' ./benchmarks/ |
		grep '^Benchmark' | tee -a "$out"
done
echo
awk '
/^Benchmark/ { name=$1; sub(/-[0-9]+$/, "", name); v[name]=v[name] " " $3 }
END {
	for (n in v) {
		k = split(v[n], a, " ")
		# insertion sort, then the median
		for (i = 2; i <= k; i++) { x = a[i]+0; j = i-1; while (j > 0 && a[j]+0 > x) { a[j+1] = a[j]; j-- } a[j+1] = x }
		med[n] = (k % 2) ? a[(k+1)/2] : (a[k/2] + a[k/2+1]) / 2
		printf "%-32s median %8.1f ns/event over %d rounds (min %s, max %s)\n", n, med[n], k, a[1], a[k]
	}
	f = med["BenchmarkTDigestAdd"]
	if (f > 0) {
		printf "ratio AggregatePreDecoded / TDigestAdd = %.2f (target <= 1.5)\n", med["BenchmarkAggregatePreDecoded"] / f
		if (med["BenchmarkAggregateNoRollups"] > 0) printf "ratio AggregatePreDecoded / AggregateNoRollups = %.2f (the cost of 5-minute rollups)\n", med["BenchmarkAggregatePreDecoded"] / med["BenchmarkAggregateNoRollups"]
		printf "DecodeAndAggregate = %.2f M events/s on one core (target >= 2)\n", 1000 / med["BenchmarkDecodeAndAggregate"]
	}
}' "$out"
