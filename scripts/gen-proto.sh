#!/usr/bin/env bash
# gen-proto.sh regenerates schemas/tpflowpb/tpflow.pb.go from schemas/tpflow.proto.
#
# Usage: scripts/gen-proto.sh [OUTDIR]
#
# With OUTDIR the generated file is written to OUTDIR/schemas/tpflowpb/tpflow.pb.go
# instead of the repository (schemas/gen_test.go uses that to check that the
# committed file is up to date). The generator versions are pinned so that the
# output is byte-for-byte reproducible: protoc-gen-go v1.36.12 (installed into
# ./bin) and protoc 3.21.12 (Debian 12's protobuf-compiler).
set -euo pipefail

PROTOC_GEN_GO_VERSION=v1.36.12

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

out="."
if [[ $# -gt 1 ]]; then
	echo "usage: $0 [OUTDIR]" >&2
	exit 2
fi
if [[ $# -eq 1 ]]; then
	out="$1"
	mkdir -p "$out"
fi

if [[ ! -x bin/protoc-gen-go ]] || ! bin/protoc-gen-go --version 2>/dev/null | grep -qx "protoc-gen-go ${PROTOC_GEN_GO_VERSION}"; then
	echo "installing protoc-gen-go ${PROTOC_GEN_GO_VERSION} into ./bin" >&2
	GOBIN="$root/bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@${PROTOC_GEN_GO_VERSION}"
fi

if ! command -v protoc >/dev/null 2>&1; then
	echo "protoc not found; installing protobuf-compiler with apt-get" >&2
	sudo=""
	if [[ $(id -u) -ne 0 ]]; then
		sudo="sudo"
	fi
	$sudo apt-get update
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y protobuf-compiler
fi

protoc --plugin=protoc-gen-go=bin/protoc-gen-go --go_out="$out" \
	--go_opt=module=github.com/tpflow/tpflow -I schemas schemas/tpflow.proto
