-- Training checkpoints of a study, so that a worker on any machine can start
-- a run from the state another one stored. They go with their study.
CREATE TABLE checkpoints (
    study_id   BIGINT NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    epoch      INTEGER NOT NULL CHECK (epoch > 0),
    meta       TEXT NOT NULL DEFAULT '',
    bytes      BIGINT NOT NULL, -- the length of data
    data       BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (study_id, key, epoch)
);
