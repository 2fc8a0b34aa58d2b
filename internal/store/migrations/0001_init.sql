-- Initial schema. Times are Unix nanoseconds (UTC); maps are JSON text.

CREATE TABLE apps (
    name            TEXT PRIMARY KEY,
    live_generation INTEGER,            -- revision serving production; NULL before the first deployment
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    version         INTEGER NOT NULL
) STRICT;

CREATE TABLE revisions (
    app        TEXT NOT NULL REFERENCES apps(name),
    generation INTEGER NOT NULL CHECK (generation > 0),
    source     TEXT NOT NULL,           -- "bundle:sha256:<hex>", later an image reference
    spec       BLOB NOT NULL,           -- bluegreen.yaml as deployed
    params     TEXT NOT NULL,           -- {"/app/NAME": version}
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    message    TEXT NOT NULL,
    PRIMARY KEY (app, generation)
) STRICT;

-- Revisions are immutable: what was deployed must stay what it was.
CREATE TRIGGER revisions_immutable BEFORE UPDATE ON revisions
BEGIN
    SELECT RAISE(ABORT, 'revisions are immutable');
END;

CREATE TABLE deployments (
    id              TEXT PRIMARY KEY,
    app             TEXT NOT NULL REFERENCES apps(name),
    from_generation INTEGER,            -- NULL for an app's first deployment
    to_generation   INTEGER NOT NULL,
    phase           TEXT NOT NULL,
    step            INTEGER NOT NULL,
    deadlines       TEXT NOT NULL,      -- {"name": unix nanos}
    outcome         TEXT NOT NULL,      -- '' while active
    reason          TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    finished_at     INTEGER,
    version         INTEGER NOT NULL,
    FOREIGN KEY (app, to_generation) REFERENCES revisions(app, generation),
    FOREIGN KEY (app, from_generation) REFERENCES revisions(app, generation)
) STRICT;

-- At most one active (unfinished) deployment per app, enforced here rather
-- than trusted to callers.
CREATE UNIQUE INDEX deployments_one_active ON deployments(app) WHERE outcome = '';
CREATE INDEX deployments_app ON deployments(app, created_at);

CREATE TABLE events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused, so readers can resume after a seq
    time          INTEGER NOT NULL,
    app           TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    kind          TEXT NOT NULL,
    message       TEXT NOT NULL,
    fields        TEXT NOT NULL
) STRICT;
CREATE INDEX events_app ON events(app, seq);
CREATE INDEX events_deployment ON events(deployment_id, seq);

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

-- One row per version of a parameter. A delete appends a tombstone
-- (type 'deleted') so that revisions pinned to older versions still resolve.
CREATE TABLE params (
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL CHECK (version > 0),
    type       TEXT NOT NULL CHECK (type IN ('string', 'secure', 'deleted')),
    value      BLOB NOT NULL,           -- plain text, or nonce||AES-GCM ciphertext for 'secure'
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (name, version)
) STRICT;

CREATE TRIGGER params_immutable BEFORE UPDATE ON params
BEGIN
    SELECT RAISE(ABORT, 'parameter versions are immutable');
END;
