#!/usr/bin/env bash
# install-deps.sh installs what tpflow's build and tests need on Debian 12:
# protoc (make generate), clickhouse-server/-client (storage tests) and
# prometheus-alertmanager (alerting tests), prometheus (promtool checks
# every role's /metrics), chromium (the HTML report test
# screenshots the report headless), curl (SECURITY.md's examples run
# against a hardened listener), postgresql (the control plane's
# store tests run a private server), plus
# the Go modules of go.mod. It is idempotent and a fast no-op when all is
# installed: apt-get runs only when a package is missing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages=(protobuf-compiler clickhouse-server clickhouse-client prometheus-alertmanager prometheus chromium curl postgresql)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if ((${#missing[@]} > 0)); then
	echo "install-deps: installing ${missing[*]}"
	sudo=()
	if ((EUID != 0)); then
		if ! command -v sudo >/dev/null 2>&1; then
			echo "install-deps: need root (or sudo) to install ${missing[*]}" >&2
			exit 1
		fi
		sudo=(sudo)
	fi
	export DEBIAN_FRONTEND=noninteractive
	"${sudo[@]}" apt-get update -q
	"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v go >/dev/null 2>&1; then
	echo "install-deps: go not found; install Go $(sed -n 's/^go //p' go.mod) from https://go.dev/dl/ and put it on PATH" >&2
	exit 1
fi
go mod download
