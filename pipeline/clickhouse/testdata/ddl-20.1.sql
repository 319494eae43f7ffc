-- call_panes
CREATE TABLE IF NOT EXISTS tpflow.call_panes
(
    pane_start       DateTime CODEC(DoubleDelta, ZSTD(1)),
    pane_seconds     UInt32,
    system           LowCardinality(String),
    app              LowCardinality(String),
    group_name       LowCardinality(String),
    idc              LowCardinality(String),
    method           LowCardinality(String),
    count            UInt64,
    errors           UInt64,
    sum_us           Float64,
    min_us           Float64,
    max_us           Float64,
    p50_us           Float64,
    p90_us           Float64,
    p99_us           Float64,
    p999_us          Float64,
    centroid_means   Array(Float64) CODEC(ZSTD(1)),
    centroid_weights Array(Float64) CODEC(ZSTD(1)),
    version          UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(pane_start)
ORDER BY (system, app, group_name, idc, method, pane_start)
TTL pane_start + INTERVAL 400 DAY;

-- logs
CREATE TABLE IF NOT EXISTS tpflow.logs
(
    ts        DateTime64(9) CODEC(DoubleDelta, ZSTD(1)),
    ts_ns     UInt32,
    system    LowCardinality(String),
    app       LowCardinality(String),
    group_name LowCardinality(String),
    idc       LowCardinality(String),
    env       LowCardinality(String),
    host      LowCardinality(String),
    namespace LowCardinality(String),
    pod       LowCardinality(String),
    container LowCardinality(String),
    stream    LowCardinality(String),
    level     LowCardinality(String),
    message   String CODEC(ZSTD(3)),
    source    LowCardinality(String),
    source_id UInt64,
    offset    UInt64,
    unparsed  UInt8,
    truncated UInt8
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (system, app, source_id, offset)
TTL toDateTime(ts) + INTERVAL 7 DAY;

-- metric_samples
CREATE TABLE IF NOT EXISTS tpflow.metric_samples
(
    ts         DateTime CODEC(DoubleDelta, ZSTD(1)),
    system     LowCardinality(String),
    app        LowCardinality(String),
    group_name LowCardinality(String),
    idc        LowCardinality(String),
    env        LowCardinality(String),
    host       LowCardinality(String),
    namespace  LowCardinality(String),
    pod        LowCardinality(String),
    container  LowCardinality(String),
    name       LowCardinality(String),
    value      Float64 CODEC(Gorilla, ZSTD(1)),
    kind       LowCardinality(String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (name, system, app, group_name, idc, host, container, namespace, pod, env, ts);

-- resource_panes
CREATE TABLE IF NOT EXISTS tpflow.resource_panes
(
    pane_start   DateTime CODEC(DoubleDelta, ZSTD(1)),
    pane_seconds UInt32,
    system       LowCardinality(String),
    app          LowCardinality(String),
    group_name   LowCardinality(String),
    idc          LowCardinality(String),
    host         LowCardinality(String),
    container    LowCardinality(String),
    name         LowCardinality(String),
    count        UInt64,
    avg          Float64,
    max          Float64,
    p95          Float64,
    version      UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(pane_start)
ORDER BY (system, app, group_name, idc, name, host, container, pane_start)
TTL pane_start + INTERVAL 30 DAY;

-- alerts
CREATE TABLE IF NOT EXISTS tpflow.alerts
(
    ts                DateTime CODEC(DoubleDelta, ZSTD(1)),
    rule              LowCardinality(String),
    state             LowCardinality(String),
    value             Float64,
    system            LowCardinality(String),
    app               LowCardinality(String),
    group_name        LowCardinality(String),
    idc               LowCardinality(String),
    label_names       Array(String),
    label_values      Array(String),
    annotation_names  Array(String),
    annotation_values Array(String),
    fingerprint       UInt64,
    active_at         DateTime,
    fired_at          DateTime,
    resolved_at       DateTime
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (rule, fingerprint, ts, state);

-- call_rollups
CREATE TABLE IF NOT EXISTS tpflow.call_rollups
(
    pane_start       DateTime CODEC(DoubleDelta, ZSTD(1)),
    pane_seconds     UInt32,
    system           LowCardinality(String),
    app              LowCardinality(String),
    group_name       LowCardinality(String),
    idc              LowCardinality(String),
    method           LowCardinality(String),
    count            UInt64,
    errors           UInt64,
    sum_us           Float64,
    min_us           Float64,
    max_us           Float64,
    p50_us           Float64,
    p90_us           Float64,
    p99_us           Float64,
    p999_us          Float64,
    centroid_means   Array(Float64) CODEC(ZSTD(1)),
    centroid_weights Array(Float64) CODEC(ZSTD(1)),
    version          UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(pane_start)
ORDER BY (system, app, group_name, idc, method, pane_start);

-- late_marks
ALTER TABLE tpflow.call_panes ADD COLUMN IF NOT EXISTS late_partition Int32 DEFAULT -1;

-- late_marks
ALTER TABLE tpflow.call_panes ADD COLUMN IF NOT EXISTS late_offset Int64 DEFAULT -1;

-- late_marks
ALTER TABLE tpflow.call_rollups ADD COLUMN IF NOT EXISTS late_partition Int32 DEFAULT -1;

-- late_marks
ALTER TABLE tpflow.call_rollups ADD COLUMN IF NOT EXISTS late_offset Int64 DEFAULT -1;

-- logs_flags
ALTER TABLE tpflow.logs ADD COLUMN flags Array(String);

-- operations
CREATE TABLE IF NOT EXISTS tpflow.operations
(
    id         UInt64,
    ts         DateTime CODEC(DoubleDelta, ZSTD(1)),
    who        LowCardinality(String),
    target     String,
    action     LowCardinality(String),
    system     LowCardinality(String),
    app        LowCardinality(String),
    group_name LowCardinality(String),
    before     String,
    after      String,
    result     LowCardinality(String),
    reason     String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY id;

