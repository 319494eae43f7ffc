#!/usr/bin/env bash
# test.sh runs every test once (no cache). The packages that run goroutines
# (aggregator, collectors, pipeline, alerting, control and cmd/tpflow, with their
# subpackages) run under the race detector; the others (the end-to-end tests,
# which run tpflow as processes, the benchmark harnesses, report, schemas,
# internal) run without it, so that .ci/run stays within 20 minutes on two
# cores. The race run builds with -tags nodeploy, as the container image
# is built (without the Helm renderer of `tpflow deploy render`, whose
# libraries would be compiled a second time under the race detector); the
# deploy command's own tests then run in a third, short run of the full
# build. Every run always happens; the exit status is 1 when any failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

GO=${GO:-go}
race_patterns=(./aggregator/... ./collectors/... ./pipeline/... ./alerting/... ./control/... ./cmd/tpflow/)

race=$("$GO" list "${race_patterns[@]}") || exit 1
all=$("$GO" list ./...) || exit 1
rest=$(grep -vxF -f <(printf '%s\n' "$race") <<<"$all")

status=0
begin=$SECONDS
echo "test.sh: go test -race: $(wc -l <<<"$race") packages"
# shellcheck disable=SC2086 # one package per word
"$GO" test -race -tags nodeploy -timeout 15m -count=1 $race || status=1
raced=$((SECONDS - begin))
echo "test.sh: go test without -race: $(wc -l <<<"$rest") packages"
# shellcheck disable=SC2086
"$GO" test -timeout 25m -count=1 $rest || status=1
echo "test.sh: the deploy command of the full build"
"$GO" test -timeout 10m -count=1 -run 'Deploy' ./cmd/tpflow/ || status=1
echo "test.sh: race run ${raced}s, other run $((SECONDS - begin - raced))s, total $((SECONDS - begin))s; $([ $status = 0 ] && echo PASS || echo FAIL)"
exit $status
