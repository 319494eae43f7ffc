#!/usr/bin/env bash
# lint.sh: gofmt (any unformatted file fails), go vet, staticcheck.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

STATICCHECK_VERSION=v0.8.2 # staticcheck 2026.2.2, which supports Go 1.26

status=0

unformatted=$(gofmt -l .)
if [[ -n $unformatted ]]; then
	echo "gofmt: these files need formatting (run gofmt -w):"
	echo "$unformatted"
	status=1
fi

echo "go vet ./..."
go vet ./... || status=1
# The container image's build leaves the Helm renderer out (-tags nodeploy).
go vet -tags nodeploy ./cmd/... || status=1

echo "staticcheck ./..."
go run "honnef.co/go/tools/cmd/staticcheck@${STATICCHECK_VERSION}" ./... || status=1

exit $status
