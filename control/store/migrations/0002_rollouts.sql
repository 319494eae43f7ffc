CREATE TABLE rollouts (
    id           {{.Serial}},
    scope        TEXT NOT NULL,
    version      BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    waves        TEXT NOT NULL,
    state        TEXT NOT NULL,
    wave         INTEGER NOT NULL,
    wave_started BIGINT NOT NULL,
    failures     INTEGER NOT NULL,
    reason       TEXT NOT NULL
);
CREATE INDEX rollouts_state ON rollouts (state, id);
CREATE TABLE rollout_members (
    rollout_id BIGINT NOT NULL,
    agent      TEXT NOT NULL,
    wave       INTEGER NOT NULL,
    PRIMARY KEY (rollout_id, agent)
);
CREATE TABLE bad_versions (
    scope     TEXT NOT NULL,
    version   BIGINT NOT NULL,
    reason    TEXT NOT NULL,
    marked_at BIGINT NOT NULL,
    PRIMARY KEY (scope, version)
)
