-- API tokens. Only the SHA-256 of a token's secret is kept: the secret is
-- shown once, when the token is created. A revoked token keeps its row (and
-- its hash, so the same secret can never become valid again).
CREATE TABLE tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('viewer', 'deployer', 'admin')),
    hash         BLOB NOT NULL UNIQUE CHECK (length(hash) = 32),
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER,
    last_used_at INTEGER
) STRICT;
