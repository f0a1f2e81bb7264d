-- Training checkpoints of a study, so that a worker on any machine can start
-- a run from the state another one stored. They go with their study. Times
-- are microseconds since the Unix epoch, from the database's clock.
CREATE TABLE checkpoints (
    study_id   INTEGER NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    epoch      INTEGER NOT NULL CHECK (epoch > 0),
    meta       TEXT NOT NULL DEFAULT '',
    bytes      INTEGER NOT NULL, -- the length of data
    data       BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (study_id, key, epoch)
);
