-- Bearer tokens of the HTTP API. A token is "ftk_" + public_id + "_" +
-- secret: the row is found by its public id, and only the SHA-256 of the
-- secret is stored (the secret is shown once, when the token is created). A
-- worker token serves one study and goes with it; the other scopes serve no
-- study in particular. Times are microseconds since the Unix epoch, from the
-- database's clock.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL UNIQUE CHECK (name <> ''),
    public_id    TEXT NOT NULL UNIQUE CHECK (public_id <> ''),
    secret_hash  BLOB NOT NULL CHECK (typeof(secret_hash) = 'blob' AND length(secret_hash) = 32), -- sha256(secret)
    scope        TEXT NOT NULL CHECK (scope IN ('admin', 'read', 'worker')),
    study_id     INTEGER REFERENCES studies (id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER,
    last_used_at INTEGER,
    CHECK ((scope = 'worker') = (study_id IS NOT NULL))
);
-- For the cascade when a study is deleted.
CREATE INDEX api_tokens_study ON api_tokens (study_id) WHERE study_id IS NOT NULL;
