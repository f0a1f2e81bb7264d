-- Studies and their trials. Times come from the database's clock.
CREATE TABLE studies (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    direction   TEXT NOT NULL CHECK (direction IN ('minimize', 'maximize')),
    spec        JSONB NOT NULL DEFAULT '{}',
    budget      INTEGER NOT NULL DEFAULT 0 CHECK (budget >= 0), -- 0: no budget
    seed        BIGINT NOT NULL DEFAULT 0,
    next_number INTEGER NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE study_attrs (
    study_id BIGINT NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    kind     TEXT NOT NULL CHECK (kind IN ('user', 'system')),
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (study_id, kind, key)
);

CREATE TABLE trials (
    id           BIGSERIAL PRIMARY KEY,
    study_id     BIGINT NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    number       INTEGER NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('waiting', 'running', 'complete', 'pruned', 'fail')),
    value        DOUBLE PRECISION,
    started_at   TIMESTAMPTZ,
    completed_at TIMESTAMPTZ,
    worker       TEXT NOT NULL DEFAULT '',
    heartbeat_at TIMESTAMPTZ,
    attempt      INTEGER NOT NULL DEFAULT 0,
    retry_of     BIGINT REFERENCES trials (id) ON DELETE SET NULL,
    retried_by   BIGINT REFERENCES trials (id) ON DELETE SET NULL,
    UNIQUE (study_id, number)
);
CREATE INDEX trials_study_state ON trials (study_id, state, number);
CREATE INDEX trials_running_heartbeat ON trials (heartbeat_at) WHERE state = 'running';

CREATE TABLE trial_params (
    trial_id     BIGINT NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    value        DOUBLE PRECISION NOT NULL, -- Goptuna's internal representation
    distribution JSONB NOT NULL,
    PRIMARY KEY (trial_id, name)
);

CREATE TABLE trial_values (
    trial_id BIGINT NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
    step     INTEGER NOT NULL,
    value    DOUBLE PRECISION, -- NULL: NaN
    PRIMARY KEY (trial_id, step)
);

CREATE TABLE trial_attrs (
    trial_id BIGINT NOT NULL REFERENCES trials (id) ON DELETE CASCADE,
    kind     TEXT NOT NULL CHECK (kind IN ('user', 'system')),
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (trial_id, kind, key)
);
