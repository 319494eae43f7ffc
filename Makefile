# tpflow build, test and lint entry points. `make test` and `make run` work on
# a fresh Debian 12 machine as root with Go installed: they install the
# Debian packages the tests need first (scripts/install-deps.sh, a fast
# no-op when everything is there).

GO      ?= go
BIN     ?= bin/tpflow
# git describe fails in a repository without commits; fall back to "dev".
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: run test bench bench-pipeline bench-report bench-collect lint generate build deps

## deps: install the Debian packages and Go modules the build and tests need
deps:
	bash scripts/install-deps.sh

## build: build ./bin/tpflow with the version from git describe
build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/tpflow

## run: install deps, build, start a private ClickHouse in .data/clickhouse
## (it keeps running; stop it with scripts/clickhouse.sh stop .data/clickhouse)
## and run the whole pipeline with demo traffic; Ctrl-C stops tpflow.
## RUN_FLAGS adds flags, e.g. make run RUN_FLAGS='--listen 127.0.0.1:8081'
run: deps build
	@mkdir -p .data
	@port=$$(bash scripts/clickhouse.sh start "$(CURDIR)/.data/clickhouse") || exit 1; \
	echo "ClickHouse on 127.0.0.1:$$port (data in .data/clickhouse; stop it with scripts/clickhouse.sh stop .data/clickhouse)"; \
	exec ./$(BIN) run --demo --clickhouse "clickhouse://127.0.0.1:$$port/tpflow" --data-dir .data $(RUN_FLAGS)

## test: install deps, then run every test once (no cache): the packages with
## goroutines (aggregator, collectors, pipeline, alerting, cmd/tpflow) under
## the race detector, the rest (e2e, benchmarks, report, schemas) without it
## (scripts/test.sh; about 7 minutes on 2 cores)
test: deps
	GO=$(GO) bash scripts/test.sh

## bench: the aggregator benchmarks in 6 interleaved rounds on one core (medians
## and the ratio to the t-digest floor), then the codec benchmarks
bench:
	bash benchmarks/aggregate.sh 6
	GOMAXPROCS=1 $(GO) test -run '^$$' -bench . -benchmem -count 6 ./schemas/codec/

## bench-pipeline: end-to-end throughput: broker, aggregate, sink and loadgen as
## processes against a private ClickHouse, then raw events in ClickHouse instead
## (about 7 minutes). BENCH_PIPELINE_FLAGS adds flags, e.g. '-duration 10s -skip-raw'
bench-pipeline: deps
	$(GO) run ./benchmarks/pipeline $(BENCH_PIPELINE_FLAGS)

## bench-collect: the collect role's budget (CPU share and peak RSS at 10 000
## perf-json lines/s) and its one-core ceiling, a real collect process
## against a broker process, 3 rounds (about 3 minutes).
## BENCH_COLLECT_FLAGS adds flags, e.g. '-rounds 5 -duration 60s'
bench-collect:
	$(GO) run ./benchmarks/collect $(BENCH_COLLECT_FLAGS)

## bench-report: the one-day TP99 panel query of one app's 50 methods over
## 10 000 keys of panes and their 5-minute rollups, generated inside a
## private ClickHouse (about 5 minutes). BENCH_REPORT_FLAGS adds flags, e.g. '-runs 11 -centroids 64'
bench-report: deps
	$(GO) run ./benchmarks/report $(BENCH_REPORT_FLAGS)

## lint: gofmt, go vet and staticcheck
lint:
	bash scripts/lint.sh

## generate: regenerate the protobuf code and run go generate (which also
## rebuilds the Grafana provisioning in deploy/grafana from internal/dashboards)
generate: deps
	bash scripts/gen-proto.sh
	$(GO) generate ./...
