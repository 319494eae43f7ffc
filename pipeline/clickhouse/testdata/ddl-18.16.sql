-- call_panes
CREATE TABLE IF NOT EXISTS tpflow.call_panes
(
    pane_start       DateTime,
    pane_seconds     UInt32,
    system           String,
    app              String,
    group_name       String,
    idc              String,
    method           String,
    count            UInt64,
    errors           UInt64,
    sum_us           Float64,
    min_us           Float64,
    max_us           Float64,
    p50_us           Float64,
    p90_us           Float64,
    p99_us           Float64,
    p999_us          Float64,
    centroid_means   Array(Float64),
    centroid_weights Array(Float64),
    version          UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(pane_start)
ORDER BY (system, app, group_name, idc, method, pane_start);

-- logs
CREATE TABLE IF NOT EXISTS tpflow.logs
(
    ts        DateTime,
    ts_ns     UInt32,
    system    String,
    app       String,
    group_name String,
    idc       String,
    env       String,
    host      String,
    namespace String,
    pod       String,
    container String,
    stream    String,
    level     String,
    message   String,
    source    String,
    source_id UInt64,
    offset    UInt64,
    unparsed  UInt8,
    truncated UInt8
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (system, app, source_id, offset);

-- metric_samples
CREATE TABLE IF NOT EXISTS tpflow.metric_samples
(
    ts         DateTime,
    system     String,
    app        String,
    group_name String,
    idc        String,
    env        String,
    host       String,
    namespace  String,
    pod        String,
    container  String,
    name       String,
    value      Float64,
    kind       String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (name, system, app, group_name, idc, host, container, namespace, pod, env, ts);

-- resource_panes
CREATE TABLE IF NOT EXISTS tpflow.resource_panes
(
    pane_start   DateTime,
    pane_seconds UInt32,
    system       String,
    app          String,
    group_name   String,
    idc          String,
    host         String,
    container    String,
    name         String,
    count        UInt64,
    avg          Float64,
    max          Float64,
    p95          Float64,
    version      UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(pane_start)
ORDER BY (system, app, group_name, idc, name, host, container, pane_start);

-- alerts
CREATE TABLE IF NOT EXISTS tpflow.alerts
(
    ts                DateTime,
    rule              String,
    state             String,
    value             Float64,
    system            String,
    app               String,
    group_name        String,
    idc               String,
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
    pane_start       DateTime,
    pane_seconds     UInt32,
    system           String,
    app              String,
    group_name       String,
    idc              String,
    method           String,
    count            UInt64,
    errors           UInt64,
    sum_us           Float64,
    min_us           Float64,
    max_us           Float64,
    p50_us           Float64,
    p90_us           Float64,
    p99_us           Float64,
    p999_us          Float64,
    centroid_means   Array(Float64),
    centroid_weights Array(Float64),
    version          UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(pane_start)
ORDER BY (system, app, group_name, idc, method, pane_start);

-- late_marks
ALTER TABLE tpflow.call_panes ADD COLUMN late_partition Int32 DEFAULT -1;

-- late_marks
ALTER TABLE tpflow.call_panes ADD COLUMN late_offset Int64 DEFAULT -1;

-- late_marks
ALTER TABLE tpflow.call_rollups ADD COLUMN late_partition Int32 DEFAULT -1;

-- late_marks
ALTER TABLE tpflow.call_rollups ADD COLUMN late_offset Int64 DEFAULT -1;

-- logs_flags
ALTER TABLE tpflow.logs ADD COLUMN flags Array(String);

-- operations
CREATE TABLE IF NOT EXISTS tpflow.operations
(
    id         UInt64,
    ts         DateTime,
    who        String,
    target     String,
    action     String,
    system     String,
    app        String,
    group_name String,
    before     String,
    after      String,
    result     String,
    reason     String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY id;

