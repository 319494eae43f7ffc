CREATE TABLE systems (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL
);
CREATE TABLE apps (
    system      TEXT NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    PRIMARY KEY (system, name)
);
CREATE TABLE app_groups (
    system TEXT NOT NULL,
    app    TEXT NOT NULL,
    name   TEXT NOT NULL,
    env    TEXT NOT NULL,
    idc    TEXT NOT NULL,
    PRIMARY KEY (system, app, name)
);
CREATE TABLE instances (
    id             TEXT PRIMARY KEY,
    system         TEXT NOT NULL,
    app            TEXT NOT NULL,
    group_name     TEXT NOT NULL,
    cluster        TEXT NOT NULL,
    namespace      TEXT NOT NULL,
    pod_uid        TEXT NOT NULL,
    pod            TEXT NOT NULL,
    container      TEXT NOT NULL,
    container_id   TEXT NOT NULL,
    host_ip        TEXT NOT NULL,
    node           TEXT NOT NULL,
    image          TEXT NOT NULL,
    status         TEXT NOT NULL,
    started_at     BIGINT NOT NULL,
    config_version TEXT NOT NULL
);
CREATE INDEX instances_group ON instances (system, app, group_name);
CREATE INDEX instances_node ON instances (node);
CREATE TABLE topology_file (
    id   INTEGER PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE config_versions (
    scope      TEXT NOT NULL,
    version    BIGINT NOT NULL,
    sha256     TEXT NOT NULL,
    parent     BIGINT NOT NULL,
    author     TEXT NOT NULL,
    message    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (scope, version)
);
CREATE TABLE config_files (
    scope        TEXT NOT NULL,
    version      BIGINT NOT NULL,
    name         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    body         TEXT NOT NULL,
    PRIMARY KEY (scope, version, name)
);
CREATE TABLE operations (
    id        {{.Serial}},
    at        BIGINT NOT NULL,
    who       TEXT NOT NULL,
    target    TEXT NOT NULL,
    action    TEXT NOT NULL,
    before_   TEXT NOT NULL,
    after_    TEXT NOT NULL,
    result    TEXT NOT NULL,
    reason    TEXT NOT NULL
);
CREATE INDEX operations_target ON operations (target, id);
CREATE TABLE operations_outbox (
    id BIGINT PRIMARY KEY
)
